-- +goose Up
-- +goose NO TRANSACTION
-- Indexes the messages archived before message_index_mv existed. Rows the view already
-- indexed are inserted again and collapse with themselves: harmless, and so is a second run.
INSERT INTO message_index (conversation_id, message_id, sent_at, status, updated_at, enriched, version)
SELECT conversation_id, message_id, sent_at, status, updated_at, enriched, version FROM messages;
