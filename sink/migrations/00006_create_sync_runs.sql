-- +goose Up
-- +goose NO TRANSACTION
-- sync_runs: one row per archiver run, inserted when the run ends. Append-only.
--
-- Columns:
--   run_id                  the run's id (also in quarantine.run_id)
--   started_at, finished_at UTC
--   result                  how the run ended (e.g. ok, partial, failed)
--   conversations           conversations visited
--   new_messages, enriched, rechecked, quarantined
--                           messages inserted as new, enriched with their detail, checked again
--                           for updates, and records sent to quarantine
--   requests                API requests made
--   error                   the error that ended the run; empty when none
CREATE TABLE IF NOT EXISTS sync_runs
(
    run_id        String,
    started_at    DateTime('UTC'),
    finished_at   DateTime('UTC'),
    result        String,
    conversations UInt32,
    new_messages  UInt64,
    enriched      UInt64,
    rechecked     UInt64,
    quarantined   UInt64,
    requests      UInt64,
    error         String
)
ENGINE = MergeTree
ORDER BY started_at;
