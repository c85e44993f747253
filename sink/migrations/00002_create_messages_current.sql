-- +goose Up
-- +goose NO TRANSACTION
-- messages_current: exactly one row per message, the one with the highest version, whatever
-- the state of background merges. Query this view rather than `messages` for analysis.
--
-- ClickHouse resolves `messages` to this database when the view is created, and fixes the
-- view's column list then: a later migration that adds a column to `messages` must drop and
-- recreate this view to expose it.
CREATE VIEW IF NOT EXISTS messages_current AS SELECT * FROM messages FINAL;
