-- +goose Up
-- +goose NO TRANSACTION
-- Column comments, so that DESCRIBE TABLE sync_runs explains the table (see 00006).
ALTER TABLE sync_runs
    COMMENT COLUMN run_id 'The run''s id (also in quarantine.run_id and on every log line of the run).',
    COMMENT COLUMN started_at 'When the run started, UTC.',
    COMMENT COLUMN finished_at 'When it ended, UTC.',
    COMMENT COLUMN result 'ok; partial (the API budget or the backfill time ran out); stopped (a signal or deadline); failed.',
    COMMENT COLUMN conversations 'Conversations worked on.',
    COMMENT COLUMN new_messages 'Messages archived for the first time.',
    COMMENT COLUMN enriched 'Messages enriched with their detail answer.',
    COMMENT COLUMN rechecked 'Archived messages whose status was fetched again.',
    COMMENT COLUMN quarantined 'Records sent to quarantine.',
    COMMENT COLUMN requests 'API requests made; the day''s sum is what the daily budget counts.',
    COMMENT COLUMN error 'The error that ended or marred the run; empty when none.';
