-- +goose Up
-- +goose NO TRANSACTION
-- message_rollup: messages per quarter hour of send time (UTC), direction, type and sender
-- role, kept by message_rollup_mv as every version is inserted into messages. Dashboards and
-- daily reports read it instead of the archive: a day is 96 small rows per combination.
--
-- Quarter hours, so that days can be cut in any time zone (every zone's offset is a whole
-- number of quarter hours): the view messages_daily cuts them in the zone of the archiver's
-- analytics.timezone, and any query can cut them in another with toDate(bucket, 'Zone').
--
-- Every measure is a mergeable state that a message's later versions cannot count twice:
-- counts are sets of message keys (uniqExact of cityHash64(conversation_id, message_id)), and
-- latencies are sets of (message key, seconds) pairs, so a message seen delivered in three
-- versions still adds one delivery time. Merge them with the -Merge functions
-- (uniqExactMerge, uniqExactIfMerge, groupUniqArrayIfMerge), then take quantiles of the
-- seconds, e.g. arrayReduce('quantilesExact(0.5, 0.95)', arrayMap(p -> p.2,
-- groupUniqArrayIfMerge(delivery_seconds_state))).
--
-- Statuses only move forward, so the rollup counts the messages that have REACHED a status
-- (delivered, read, failed) rather than splitting them by their current one, which a
-- materialized view of versioned rows cannot know: a message delivered and later read is in
-- delivered_state and read_state. Its dimensions are taken from each version: a message
-- whose type or sender role changed between versions would be counted under both (the
-- archiver does not change them).
CREATE TABLE IF NOT EXISTS message_rollup
(
    bucket                 DateTime('UTC') COMMENT 'Start of the quarter hour of sent_at, UTC.',
    direction              String COMMENT 'As messages.direction.',
    type                   String COMMENT 'As messages.type.',
    sender_role            String COMMENT 'As messages.sender_role: customer, agent, bot, system or unknown.',
    messages_state         AggregateFunction(uniqExact, UInt64) COMMENT 'Messages sent in the bucket: uniqExactMerge(messages_state).',
    delivered_state        AggregateFunction(uniqExactIf, UInt64, UInt8) COMMENT 'Of those, delivered or read (delivered_at known, or status delivered or read): uniqExactIfMerge.',
    read_state             AggregateFunction(uniqExactIf, UInt64, UInt8) COMMENT 'Of those, read (read_at known, or status read): uniqExactIfMerge.',
    failed_state           AggregateFunction(uniqExactIf, UInt64, UInt8) COMMENT 'Of those, failed (status failed): uniqExactIfMerge.',
    delivery_seconds_state AggregateFunction(groupUniqArrayIf, Tuple(UInt64, Int64), UInt8) COMMENT 'Per delivered message (key, delivered_at - sent_at in seconds): groupUniqArrayIfMerge, then quantiles of the .2 elements.',
    read_seconds_state     AggregateFunction(groupUniqArrayIf, Tuple(UInt64, Int64), UInt8) COMMENT 'Per read message (key, read_at - sent_at in seconds): groupUniqArrayIfMerge, then quantiles of the .2 elements.'
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(bucket)
ORDER BY (bucket, direction, type, sender_role);
