-- +goose Up
-- +goose NO TRANSACTION
-- Copies the recorded runs into the versioned table, as version 0. Running it again inserts
-- the same rows (same key, same version), which collapse into one: harmless.
INSERT INTO sync_runs_versioned (run_id, shard, started_at, finished_at, result, conversations, new_messages, enriched,
    rechecked, quarantined, requests, error, version)
SELECT run_id, shard, started_at, finished_at, result, conversations, new_messages, enriched,
    rechecked, quarantined, requests, error, 0
FROM sync_runs;
