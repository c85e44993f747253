-- +goose Up
-- +goose NO TRANSACTION
-- conversation_summary: one row per archived conversation. Every aggregate reads all of a
-- message's versions and counts the message once (sets, min, max), so no FINAL is needed.
--
-- Columns:
--   conversation_id
--   messages, inbound, outbound         messages archived, and of those from and to the customer
--   customer_messages, agent_messages, bot_messages, system_messages, unknown_messages
--                                       messages by sender_role
--   first_sent_at, last_sent_at         send times of the first and the newest message, UTC
--   first_message_id, last_message_id   their ids
--   first_message_text, last_message_text   their text (or caption)
--   agents                              the names (id when nameless) of the agents and bots
--                                       that wrote in it, and of outbound senders of unknown
--                                       role (documented shape), sorted
--   customer_name                       a name the customer wrote under
CREATE VIEW IF NOT EXISTS conversation_summary AS
SELECT
    conversation_id,
    uniqExact(message_id) AS messages,
    uniqExactIf(message_id, direction = 'inbound') AS inbound,
    uniqExactIf(message_id, direction = 'outbound') AS outbound,
    uniqExactIf(message_id, sender_role = 'customer') AS customer_messages,
    uniqExactIf(message_id, sender_role = 'agent') AS agent_messages,
    uniqExactIf(message_id, sender_role = 'bot') AS bot_messages,
    uniqExactIf(message_id, sender_role = 'system') AS system_messages,
    uniqExactIf(message_id, sender_role = 'unknown') AS unknown_messages,
    min(sent_at) AS first_sent_at,
    max(sent_at) AS last_sent_at,
    argMin(message_id, (sent_at, sent_at_ns, message_id)) AS first_message_id,
    argMax(message_id, (sent_at, sent_at_ns, message_id)) AS last_message_id,
    argMin(if(text != '', text, caption), (sent_at, sent_at_ns, message_id)) AS first_message_text,
    argMax(if(text != '', text, caption), (sent_at, sent_at_ns, message_id)) AS last_message_text,
    arraySort(groupUniqArrayIf(if(sender_name != '', sender_name, sender_id),
        sender_role IN ('agent', 'bot') OR (direction = 'outbound' AND sender_role = 'unknown'))) AS agents,
    anyIf(sender_name, sender_role = 'customer' AND sender_name != '') AS customer_name
FROM messages
GROUP BY conversation_id;
