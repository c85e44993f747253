-- +goose Up
-- +goose NO TRANSACTION
-- The comment of sync_runs.shard (see 00033), so that DESCRIBE TABLE sync_runs explains it.
ALTER TABLE sync_runs
    COMMENT COLUMN shard 'The archiver shard that made the run, index/count (2/3); empty when not sharded. A shard''s daily API budget counts its own runs.';
