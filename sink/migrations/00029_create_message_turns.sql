-- +goose Up
-- +goose NO TRANSACTION
-- message_turns: for every customer message, the next reply in its conversation and the time
-- to it. A reply is an outbound message that the system did not send: an agent's, a bot's, or
-- one of unknown role (the documented shape does not tell agents from bots). The first
-- customer message after a reply (or the first of all) opens a turn: the time from it to the
-- reply is the first-response time. So:
--
--   first-response time per agent:  SELECT responder_name, quantile(0.5)(response_seconds)
--                                   FROM message_turns WHERE opens_turn GROUP BY responder_name
--
-- Columns:
--   conversation_id, message_id   the customer message
--   sent_at                       its send time, UTC
--   opens_turn                    1 if it is the first customer message since the last reply
--   reply_message_id              the next reply; empty when none yet
--   reply_sent_at                 its send time, UTC; NULL when none
--   responder_role, responder_id, responder_name   who sent the reply; empty when none
--   response_seconds              from the customer message to the reply, to the nanosecond
--                                 the API gave; NULL when none
--
-- ClickHouse 18.16 has no window functions: each conversation's messages are gathered into
-- one sorted array and walked with array functions, in one pass (replies are found through
-- the running count of replies). It reads every message: filter the result, not the archive.
-- (18.16 drops a subquery's columns that only a lambda uses; the WHERE names them to keep
-- them.)
CREATE VIEW IF NOT EXISTS message_turns AS
SELECT
    conversation_id,
    t.1 AS message_id,
    toDateTime(intDiv(t.2, 1000000000), 'UTC') AS sent_at,
    t.3 AS opens_turn,
    t.4 AS reply_message_id,
    if(t.4 = '', NULL, toNullable(toDateTime(intDiv(t.5, 1000000000), 'UTC'))) AS reply_sent_at,
    t.6 AS responder_role,
    t.7 AS responder_id,
    t.8 AS responder_name,
    if(t.4 = '', NULL, toNullable((t.5 - t.2) / 1e9)) AS response_seconds
FROM
(
    SELECT
        conversation_id,
        arrayMap(k -> (
            ms[cust[k]].2,
            ms[cust[k]].1,
            toUInt8(k = 1 OR replies_before[cust[k - 1]] != replies_before[cust[k]]),
            if(replies_before[cust[k]] < length(replies), ms[replies[replies_before[cust[k]] + 1]].2, ''),
            if(replies_before[cust[k]] < length(replies), ms[replies[replies_before[cust[k]] + 1]].1, ms[cust[k]].1),
            if(replies_before[cust[k]] < length(replies), ms[replies[replies_before[cust[k]] + 1]].3, ''),
            if(replies_before[cust[k]] < length(replies), ms[replies[replies_before[cust[k]] + 1]].5, ''),
            if(replies_before[cust[k]] < length(replies), ms[replies[replies_before[cust[k]] + 1]].6, '')
        ), arrayEnumerate(cust)) AS turns
    FROM
    (
        SELECT
            conversation_id,
            ms,
            arrayMap(x -> toUInt8(x.4 = 'outbound' AND x.3 != 'system' AND x.3 != 'customer'), ms) AS is_reply,
            arrayCumSum(is_reply) AS replies_before,
            arrayFilter((i, r) -> r = 1, arrayEnumerate(ms), is_reply) AS replies,
            arrayFilter((i, x) -> x.3 = 'customer', arrayEnumerate(ms), ms) AS cust
        FROM
        (
            -- (send time in nanoseconds, id, role, direction, sender id, sender name), in order
            SELECT conversation_id,
                arraySort(groupArray((toUInt64(sent_at) * 1000000000 + sent_at_ns, message_id, sender_role, direction,
                    sender_id, sender_name))) AS ms
            FROM messages FINAL
            GROUP BY conversation_id
        )
    )
    WHERE notEmpty(ms) AND notEmpty(replies_before) AND length(replies) >= 0
)
ARRAY JOIN turns AS t;
