-- +goose Up
-- +goose NO TRANSACTION
-- sync_state: the archiver's per-conversation sync state; one logical row per conversation,
-- the highest `version` winning (read it with FINAL).
--
-- Columns:
--   gone                   1 once the API says the conversation no longer exists
--   head_message_id, head_sent_at, head_sent_at_ns
--                          the newest message archived so far (the resume point)
--   gap_before, gap_stop   pending backfill gaps: fetch older messages before gap_before[i]
--                          until gap_stop[i] is reached (parallel arrays)
--   backfill_complete      1 once history has been fetched back to the first message
--   last_attempt_at, last_success_at, last_error
--                          the latest sync attempt and the latest success (UTC), the last error
--   next_due_at            when the conversation should be synced next
--   idle_runs              consecutive runs that found nothing new (drives back-off)
--   updated_at, version    when and which version of the state this row is
CREATE TABLE IF NOT EXISTS sync_state
(
    conversation_id   String,
    gone              UInt8,
    head_message_id   String,
    head_sent_at      DateTime('UTC'),
    head_sent_at_ns   UInt32,
    gap_before        Array(String),
    gap_stop          Array(String),
    backfill_complete UInt8,
    last_attempt_at   DateTime('UTC'),
    last_success_at   DateTime('UTC'),
    last_error        String,
    next_due_at       DateTime('UTC'),
    idle_runs         UInt32,
    updated_at        DateTime('UTC'),
    version           UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY conversation_id;
