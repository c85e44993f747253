-- +goose Up
-- +goose NO TRANSACTION
-- tracked_conversations: conversation ids that operators and analysts want archived. The
-- newest row per conversation_id wins (by updated_at; read with FINAL). To track:
--
--   INSERT INTO tracked_conversations (conversation_id) VALUES ('c1')
--
-- To stop tracking, insert the id again with active = 0:
--
--   INSERT INTO tracked_conversations (conversation_id, active) VALUES ('c1', 0)
--
-- updated_at has second precision: rows for one id inserted within the same second tie, and
-- then the one inserted last normally wins.
--
-- Columns:
--   active      1 to archive the conversation, 0 to stop
--   source      who added the row ('manual' unless said otherwise)
--   updated_at  when the row was inserted (UTC); the version of the row
CREATE TABLE IF NOT EXISTS tracked_conversations
(
    conversation_id String,
    active          UInt8 DEFAULT 1,
    source          String DEFAULT 'manual',
    updated_at      DateTime('UTC') DEFAULT now()
)
ENGINE = ReplacingMergeTree(updated_at)
ORDER BY conversation_id;
