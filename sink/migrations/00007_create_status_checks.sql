-- +goose Up
-- +goose NO TRANSACTION
-- status_checks: the re-check schedule of message statuses that can still change (not read,
-- not failed, or not enriched for a transient reason). One logical row per message, the highest
-- `version` winning; the archiver reads it grouped by message with argMax, never with FINAL,
-- and only the entries whose `until` has not passed, so the partitions by month of `until`
-- bound every query to the re-check window.
--
-- A message is checked again when its age has doubled since it was last fetched (the first
-- time about a minute after it was sent): at most about log2(window / 1 minute) checks over the
-- window, however often runs start.
--
-- Columns:
--   conversation_id, message_id   the message (as in messages)
--   sent_at                       its send time (UTC); never changes for a message
--   until                         when the message leaves the schedule (the end of the re-check
--                                 window, later for a retry of a failed enrichment); never
--                                 decreases for a message, so its newest row is always read
--   checked_at                    when its status was last fetched (detail or list answer)
--   next_check_at                 when it is due again
--   checks                        how many times it was fetched again
--   open                          1 while it is on the schedule; 0 once its status is final
--                                 (read, failed) or the window has ended
--   version                       grows with every new row for the message
CREATE TABLE IF NOT EXISTS status_checks
(
    conversation_id String,
    message_id      String,
    sent_at         DateTime('UTC'),
    until           DateTime('UTC'),
    checked_at      DateTime('UTC'),
    next_check_at   DateTime('UTC'),
    checks          UInt16,
    open            UInt8,
    version         UInt64
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(until)
ORDER BY (conversation_id, message_id);
