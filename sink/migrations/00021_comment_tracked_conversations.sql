-- +goose Up
-- +goose NO TRANSACTION
-- Column comments, so that DESCRIBE TABLE tracked_conversations explains the table (see 00005).
ALTER TABLE tracked_conversations
    COMMENT COLUMN conversation_id 'A conversation to archive (or to stop archiving); the newest row per id wins (read with FINAL).',
    COMMENT COLUMN active '1 to archive the conversation, 0 to stop: INSERT INTO tracked_conversations (conversation_id, active) VALUES (''c1'', 0).',
    COMMENT COLUMN source 'Who added the row (manual unless said otherwise).',
    COMMENT COLUMN updated_at 'When the row was inserted, UTC; the version of the row.';
