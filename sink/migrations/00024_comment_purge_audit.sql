-- +goose Up
-- +goose NO TRANSACTION
-- Column comments, so that DESCRIBE TABLE purge_audit explains the table (see 00010).
ALTER TABLE purge_audit
    COMMENT COLUMN at 'When the row was written, UTC.',
    COMMENT COLUMN run_id 'The purge or erase run that made the decision.',
    COMMENT COLUMN action 'purge or erase.',
    COMMENT COLUMN event 'intent, deleted, gone, failed, skipped, would_delete or erased.',
    COMMENT COLUMN conversation_id 'The conversation.',
    COMMENT COLUMN archived_messages 'Messages archived for it when the decision was made.',
    COMMENT COLUMN newest_sent_at 'Its newest archived message, UTC (1970 when none).',
    COMMENT COLUMN dry_run '1 for the rows of a dry run.',
    COMMENT COLUMN reason 'Why it qualifies, why it was skipped, or what was done.',
    COMMENT COLUMN api_answer 'The API''s answer to a failed call: HTTP status and error envelope.',
    COMMENT COLUMN operator 'Who ran it: the operator named on the command line (else the OS user), or schedule for the daemon.',
    COMMENT COLUMN operator_reason 'The reason given on the command line.';
