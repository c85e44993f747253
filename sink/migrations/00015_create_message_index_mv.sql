-- +goose Up
-- +goose NO TRANSACTION
-- Keeps message_index in step with messages: every block inserted into messages is inserted
-- here too, as part of the same INSERT.
CREATE MATERIALIZED VIEW IF NOT EXISTS message_index_mv TO message_index AS
SELECT conversation_id, message_id, sent_at, status, updated_at, enriched, version FROM messages;
