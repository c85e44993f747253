-- +goose Up
-- +goose NO TRANSACTION
-- Rolls the archive up again for read_after_delivery_seconds_state (00061), and the messages
-- inserted while 00063 had dropped message_rollup_mv. Every measure is a set, so rows already
-- rolled up, and a second run, add nothing.
INSERT INTO message_rollup (bucket, direction, type, sender_role, messages_state, delivered_state, read_state, failed_state,
    delivery_seconds_state, read_seconds_state, read_after_delivery_seconds_state)
SELECT
    toStartOfFifteenMinutes(sent_at) AS bucket,
    direction,
    type,
    sender_role,
    uniqExactState(cityHash64(conversation_id, message_id)),
    uniqExactIfState(cityHash64(conversation_id, message_id), toUInt8(delivered_at IS NOT NULL OR status IN ('delivered', 'read'))),
    uniqExactIfState(cityHash64(conversation_id, message_id), toUInt8(read_at IS NOT NULL OR status = 'read')),
    uniqExactIfState(cityHash64(conversation_id, message_id), toUInt8(status = 'failed')),
    groupUniqArrayIfState((cityHash64(conversation_id, message_id), toInt64(assumeNotNull(delivered_at)) - toInt64(sent_at)), toUInt8(delivered_at IS NOT NULL)),
    groupUniqArrayIfState((cityHash64(conversation_id, message_id), toInt64(assumeNotNull(read_at)) - toInt64(sent_at)), toUInt8(read_at IS NOT NULL)),
    groupUniqArrayIfState((cityHash64(conversation_id, message_id), toInt64(assumeNotNull(read_at)) - toInt64(assumeNotNull(delivered_at))), toUInt8(delivered_at IS NOT NULL AND read_at IS NOT NULL))
FROM messages
GROUP BY bucket, direction, type, sender_role;
