-- +goose Up
-- +goose NO TRANSACTION
-- sweep_state: where the archiver's listings of a whole inbox (the New Open API's
-- GET /api/messages) got to, one current row per scope (the highest `version` wins: read with
-- FINAL). A run that lists the inbox reads back to `mark` (less a margin); a conversation synced
-- since `chain_start` (its sync_state.last_success_at not before it) then holds every message
-- created up to `mark`, so one the listing shows nothing of needs no call of its own. A row is
-- written only after the rows and states of the run that listed it are stored.
CREATE TABLE IF NOT EXISTS sweep_state
(
    scope          String COMMENT 'The shard and inbox the listing covers: shard|inbox_id (empty: all).',
    mark           DateTime('UTC') COMMENT 'The newest created_at the listings showed (the API''s clock), UTC, whole seconds.',
    mark_ns        UInt32 COMMENT 'The nanoseconds of mark.',
    chain_start    DateTime('UTC') COMMENT 'Conversations synced since then (the archiver''s clock) hold every message up to mark, UTC.',
    chain_start_ns UInt32 COMMENT 'The nanoseconds of chain_start.',
    list_order     String COMMENT 'The order the listing was found in (newest or oldest first, by created_at or updated_at).',
    updated_at     DateTime('UTC') COMMENT 'When the row was written (the archiver''s clock), UTC.',
    version        UInt64 COMMENT 'Grows with every row of a scope; the highest wins.'
)
ENGINE = ReplacingMergeTree(version)
ORDER BY scope;
