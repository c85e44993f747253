-- +goose Up
-- +goose NO TRANSACTION
-- A month of messages (a partition) that has had no new part for a day is merged into one
-- part: its versions are then settled, and FINAL (messages_current) reads such a month like
-- the raw table, without merging versions at query time. Months still written to (the
-- current one; the previous one while its statuses are re-checked) keep their parts and are
-- merged at query time. A late write to a quiet month costs one rewrite of that month, at
-- most once a day.
ALTER TABLE messages MODIFY SETTING min_age_to_force_merge_seconds = 86400, min_age_to_force_merge_on_partition_only = 1;
