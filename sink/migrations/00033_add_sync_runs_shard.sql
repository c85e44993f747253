-- +goose Up
-- +goose NO TRANSACTION
-- sync_runs.shard: the archiver shard that made the run, as "index/count" (e.g. "2/3"); empty
-- for an archiver that is not sharded, and in the rows written before this column. Shards
-- share one archive and one upstream rate limit, each with its part of the daily budget: a
-- shard's day starts from the requests of its own runs, not of all of them.
--
-- ClickHouse 18.16 has no ADD COLUMN IF NOT EXISTS: this statement fails if run twice, which a
-- recorded version prevents. It also ignores a COMMENT here: 00034 sets it.
ALTER TABLE sync_runs ADD COLUMN shard String DEFAULT '' AFTER run_id;
