-- +goose Up
-- +goose NO TRANSACTION
-- The comment of messages.status_source (see 00052), so that DESCRIBE TABLE messages explains it.
ALTER TABLE messages
    COMMENT COLUMN status_source 'Where status, delivered_at and read_at come from: empty for the API''s answer (confirmed); webhook:<event> for the time a webhook event told, provisional until a detail call confirms it.';
