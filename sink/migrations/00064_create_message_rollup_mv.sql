-- +goose Up
-- +goose NO TRANSACTION
-- Feeds message_rollup from every block inserted into messages (see 00025 for the measures,
-- 00061 for read_after_delivery_seconds_state).
CREATE MATERIALIZED VIEW IF NOT EXISTS message_rollup_mv TO message_rollup AS
SELECT
    toStartOfFifteenMinutes(sent_at) AS bucket,
    direction,
    type,
    sender_role,
    uniqExactState(cityHash64(conversation_id, message_id)) AS messages_state,
    uniqExactIfState(cityHash64(conversation_id, message_id), toUInt8(delivered_at IS NOT NULL OR status IN ('delivered', 'read'))) AS delivered_state,
    uniqExactIfState(cityHash64(conversation_id, message_id), toUInt8(read_at IS NOT NULL OR status = 'read')) AS read_state,
    uniqExactIfState(cityHash64(conversation_id, message_id), toUInt8(status = 'failed')) AS failed_state,
    groupUniqArrayIfState((cityHash64(conversation_id, message_id), toInt64(assumeNotNull(delivered_at)) - toInt64(sent_at)), toUInt8(delivered_at IS NOT NULL)) AS delivery_seconds_state,
    groupUniqArrayIfState((cityHash64(conversation_id, message_id), toInt64(assumeNotNull(read_at)) - toInt64(sent_at)), toUInt8(read_at IS NOT NULL)) AS read_seconds_state,
    groupUniqArrayIfState((cityHash64(conversation_id, message_id), toInt64(assumeNotNull(read_at)) - toInt64(assumeNotNull(delivered_at))), toUInt8(delivered_at IS NOT NULL AND read_at IS NOT NULL)) AS read_after_delivery_seconds_state
FROM messages
GROUP BY bucket, direction, type, sender_role;
