-- +goose Up
-- +goose NO TRANSACTION
-- message_turns (see 00029 for what it answers), with window functions instead of 18.16's
-- arrays: each conversation's messages in send order, the replies so far and the next reply
-- as running windows, then the customer messages. Same columns and rows as 00029's form, now
-- with comments; it still reads every message: filter the result, not the archive.
CREATE OR REPLACE VIEW message_turns
(
    conversation_id  String COMMENT 'The conversation of the customer message.',
    message_id       String COMMENT 'The customer message.',
    sent_at          DateTime('UTC') COMMENT 'Its send time, UTC.',
    opens_turn       UInt8 COMMENT '1 if it is the first customer message since the last reply (or of all): its response_seconds is a first-response time.',
    reply_message_id String COMMENT 'The next reply in the conversation (an outbound message not sent by the system); empty when none yet.',
    reply_sent_at    Nullable(DateTime('UTC')) COMMENT 'The send time of that reply, UTC; NULL when none.',
    responder_role   String COMMENT 'Who sent the reply: agent, bot or unknown (the documented shape); empty when none.',
    responder_id     String COMMENT 'The sender id of the reply; empty when none.',
    responder_name   String COMMENT 'The sender name of the reply; empty when none.',
    response_seconds Nullable(Float64) COMMENT 'Seconds between the customer message and the reply, to the nanosecond the API gave; NULL when none.'
)
AS SELECT
    conversation_id,
    message_id,
    sent_at,
    toUInt8(isNull(previous_replies) OR assumeNotNull(previous_replies) != replies_before) AS opens_turn,
    ifNull(next_reply_id, '') AS reply_message_id,
    if(isNull(next_reply_ns), NULL, toNullable(toDateTime(intDiv(assumeNotNull(next_reply_ns), 1000000000), 'UTC'))) AS reply_sent_at,
    ifNull(next_reply_role, '') AS responder_role,
    ifNull(next_reply_sender_id, '') AS responder_id,
    ifNull(next_reply_sender_name, '') AS responder_name,
    if(isNull(next_reply_ns), NULL, toNullable((toInt64(assumeNotNull(next_reply_ns)) - toInt64(ns)) / 1e9)) AS response_seconds
FROM
(
    SELECT *,
        lagInFrame(toNullable(replies_before)) OVER (PARTITION BY conversation_id ORDER BY ns, message_id
            ROWS BETWEEN 1 PRECEDING AND CURRENT ROW) AS previous_replies
    FROM
    (
        SELECT conversation_id, message_id, sent_at, ns, sender_role,
            sum(is_reply) OVER upto AS replies_before,
            first_value(if(is_reply = 1, toNullable(message_id), NULL)) OVER after AS next_reply_id,
            first_value(if(is_reply = 1, toNullable(ns), NULL)) OVER after AS next_reply_ns,
            first_value(if(is_reply = 1, toNullable(toString(sender_role)), NULL)) OVER after AS next_reply_role,
            first_value(if(is_reply = 1, toNullable(sender_id), NULL)) OVER after AS next_reply_sender_id,
            first_value(if(is_reply = 1, toNullable(sender_name), NULL)) OVER after AS next_reply_sender_name
        FROM
        (
            SELECT conversation_id, message_id, sent_at, sender_role, sender_id, sender_name,
                toUInt64(sent_at) * 1000000000 + sent_at_ns AS ns,
                toUInt8(direction = 'outbound' AND sender_role != 'system' AND sender_role != 'customer') AS is_reply
            FROM messages FINAL
        )
        WINDOW
            upto AS (PARTITION BY conversation_id ORDER BY ns, message_id ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW),
            after AS (PARTITION BY conversation_id ORDER BY ns, message_id ROWS BETWEEN 1 FOLLOWING AND UNBOUNDED FOLLOWING)
    )
    WHERE sender_role = 'customer'
);
