-- +goose Up
-- +goose NO TRANSACTION
-- A view's column list is fixed when it is created: messages_current is made again (00055)
-- to show status_source.
DROP TABLE IF EXISTS messages_current;
