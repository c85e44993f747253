-- +goose Up
-- +goose NO TRANSACTION
-- The time from delivery to reading, beside read_seconds_state's time from sending to
-- reading: how long a delivered message waits for its reader. 00062 comments it, 00063-00065
-- make message_rollup_mv fill it and roll the archive up again. (18.16 ignores a COMMENT in
-- ADD COLUMN.)
-- done when: SELECT count() FROM system.columns WHERE database = currentDatabase() AND table = 'message_rollup' AND name = 'read_after_delivery_seconds_state'
ALTER TABLE message_rollup
    ADD COLUMN read_after_delivery_seconds_state AggregateFunction(groupUniqArrayIf, Tuple(UInt64, Int64), UInt8);
