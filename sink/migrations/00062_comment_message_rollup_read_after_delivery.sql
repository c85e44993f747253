-- +goose Up
-- +goose NO TRANSACTION
-- The comment of message_rollup.read_after_delivery_seconds_state (see 00061).
ALTER TABLE message_rollup
    COMMENT COLUMN read_after_delivery_seconds_state 'Per message both delivered and read (key, read_at - delivered_at in seconds): groupUniqArrayIfMerge, then quantiles of the .2 elements.';
