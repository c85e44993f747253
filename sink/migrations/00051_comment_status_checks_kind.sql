-- +goose Up
-- +goose NO TRANSACTION
-- The comment of status_checks.kind (see 00050), so that DESCRIBE TABLE status_checks explains it.
ALTER TABLE status_checks
    COMMENT COLUMN kind 'Why it is on the schedule: 0 its status may still change (or a failed detail call is retried), 1 a new message waiting for its detail call, 2 a message of the history waiting for its detail call. Served 1, 0, 2.';
