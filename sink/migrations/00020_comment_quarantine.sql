-- +goose Up
-- +goose NO TRANSACTION
-- Column comments, so that DESCRIBE TABLE quarantine explains the table (see 00004).
ALTER TABLE quarantine
    COMMENT COLUMN received_at 'When the record was received, UTC.',
    COMMENT COLUMN run_id 'The sync run that received it (sync_runs.run_id).',
    COMMENT COLUMN endpoint 'The API endpoint that answered with it.',
    COMMENT COLUMN conversation_id 'The conversation asked for, as far as it could be made out; empty otherwise.',
    COMMENT COLUMN message_id 'The message id, as far as it could be made out; empty otherwise.',
    COMMENT COLUMN error 'Why it was quarantined: why decoding failed, or that it named another conversation.',
    COMMENT COLUMN raw 'The record exactly as received.',
    COMMENT COLUMN raw_hash '64-bit FNV-1a of raw: a record is quarantined once per conversation, endpoint and content.';
