-- +goose Up
-- +goose NO TRANSACTION
-- Column comments, so that DESCRIBE TABLE sync_state explains the table (see 00003).
ALTER TABLE sync_state
    COMMENT COLUMN conversation_id 'The conversation; one logical row per conversation, the highest version winning (read with FINAL).',
    COMMENT COLUMN gone 'The API answered 404 for the conversation: it is asked about again only a day later.',
    COMMENT COLUMN head_message_id 'The newest message archived by a walk from the top of the conversation: the next walk stops there.',
    COMMENT COLUMN head_sent_at 'The send time of head_message_id, UTC.',
    COMMENT COLUMN head_sent_at_ns 'Nanoseconds within head_sent_at''s second.',
    COMMENT COLUMN gap_before 'Backfill gaps not yet walked, newest first: page the list with before = gap_before[i] ...',
    COMMENT COLUMN gap_stop '... until the message gap_stop[i] (already archived), or the start of the history when empty.',
    COMMENT COLUMN backfill_complete '1 once the history has been fetched back to its first message.',
    COMMENT COLUMN last_attempt_at 'When a run last worked on the conversation, UTC.',
    COMMENT COLUMN last_success_at 'When a run last finished it without error, UTC.',
    COMMENT COLUMN last_error 'The error of the last failed attempt; empty after a success.',
    COMMENT COLUMN next_due_at 'When it is due to be polled again (quiet conversations are polled less often), UTC.',
    COMMENT COLUMN idle_runs 'Runs in a row that found nothing new (drives the polling back-off).',
    COMMENT COLUMN updated_at 'When this version of the state was written, UTC.',
    COMMENT COLUMN version 'Grows with every new version of the state; the highest wins.',
    COMMENT COLUMN purged_at 'When the retention purge deleted the conversation upstream after archiving it completely; 1970-01-01 00:00:00 while not purged.';
