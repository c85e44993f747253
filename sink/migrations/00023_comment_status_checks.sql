-- +goose Up
-- +goose NO TRANSACTION
-- Column comments, so that DESCRIBE TABLE status_checks explains the table (see 00007).
ALTER TABLE status_checks
    COMMENT COLUMN conversation_id 'The message''s conversation (as in messages).',
    COMMENT COLUMN message_id 'The message whose status can still change; the highest version per message wins.',
    COMMENT COLUMN sent_at 'Its send time, UTC; never changes for a message.',
    COMMENT COLUMN until 'When it leaves the schedule (the end of the re-check window, later for a retry of a failed enrichment); never decreases.',
    COMMENT COLUMN checked_at 'When its status was last fetched, UTC.',
    COMMENT COLUMN next_check_at 'When it is due again: when its age has doubled since checked_at (plus a minute).',
    COMMENT COLUMN checks 'How many times it was fetched again.',
    COMMENT COLUMN open '1 while on the schedule; 0 once its status is final (read, failed) or the window has ended.',
    COMMENT COLUMN version 'Grows with every new row for the message; the highest wins.';
