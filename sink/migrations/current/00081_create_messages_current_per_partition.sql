-- +goose Up
-- +goose NO TRANSACTION
-- messages_current (see 00055) on a current release: FINAL within each month, never across
-- months, which is exact because a message's month comes from its send time, part of its key.
-- A month merged into one part (00080) is then read without merging at query time, so a
-- week's count of a settled month costs what the raw table's does.
CREATE OR REPLACE VIEW messages_current AS SELECT * FROM messages FINAL SETTINGS do_not_merge_across_partitions_select_final = 1;
