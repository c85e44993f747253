-- +goose Up
-- +goose NO TRANSACTION
-- A view's column list is fixed when it is created: messages_current is made again (00018)
-- to show sender_role.
DROP TABLE IF EXISTS messages_current;
