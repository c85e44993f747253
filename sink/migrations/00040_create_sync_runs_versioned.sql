-- +goose Up
-- +goose NO TRANSACTION
-- sync_runs, versioned (created here under a temporary name; 00041 copies the runs into it,
-- 00042 gives it the name `sync_runs` and 00043 drops the table of 00006).
--
-- A run's row is written when the run starts and again as it goes, before its API requests
-- are sent: each version records as spent the requests made so far and the next few the run
-- may make before it writes again. A run killed (SIGKILL, a lost machine) leaves its last
-- version, which counts every request it made, and at most that few more. The version of a
-- run that ends is its summary, with the exact count. ReplacingMergeTree keeps the highest
-- version of each (started_at, run_id) when it merges parts: read with FINAL.
--
-- One table, not a log beside it: the daily API budget is the sum of one column of it. The
-- requests of a purge or an erasure are recorded here too (kind), as runs without messages.
CREATE TABLE IF NOT EXISTS sync_runs_versioned
(
    run_id        String COMMENT 'The run''s id (also in quarantine.run_id and on every log line of the run).',
    kind          String DEFAULT 'sync' COMMENT 'What made the requests: sync (a run on schedule or sync --once), webhook (the run webhook events asked for, with the look-ups that found their conversations), purge, erase.',
    shard         String DEFAULT '' COMMENT 'The archiver shard that made the run, index/count (2/3); empty when not sharded. A shard''s daily API budget counts its own runs.',
    started_at    DateTime('UTC') COMMENT 'When the run started, UTC.',
    finished_at   DateTime('UTC') COMMENT 'When it ended, UTC; while result is running, when this version was written.',
    result        String COMMENT 'ok; partial (the API budget or the backfill time ran out); stopped (a signal or deadline); failed; running (in progress, or killed: its requests are counted all the same).',
    conversations UInt32 COMMENT 'Conversations worked on.',
    new_messages  UInt64 COMMENT 'Messages archived for the first time.',
    enriched      UInt64 COMMENT 'Messages enriched with their detail answer.',
    rechecked     UInt64 COMMENT 'Archived messages whose status was fetched again.',
    quarantined   UInt64 COMMENT 'Records sent to quarantine.',
    requests      UInt64 COMMENT 'API requests made; while result is running, made or about to be (at most a step more). The day''s sum is what the daily budget counts.',
    error         String COMMENT 'The error that ended or marred the run; empty when none.',
    version       UInt64 COMMENT 'Grows with every row of the run; the highest wins (read with FINAL).'
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (started_at, run_id);
