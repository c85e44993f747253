-- +goose Up
-- +goose NO TRANSACTION
-- The comments of conversation_summary's columns (see 00028), which a current release can
-- keep on a view: DESCRIBE TABLE conversation_summary explains them.
ALTER TABLE conversation_summary
    COMMENT COLUMN conversation_id 'The conversation.',
    COMMENT COLUMN messages 'Messages archived, each once however many versions.',
    COMMENT COLUMN inbound 'Of those, from the customer (direction inbound).',
    COMMENT COLUMN outbound 'Of those, to the customer (direction outbound).',
    COMMENT COLUMN customer_messages 'Messages whose sender_role is customer.',
    COMMENT COLUMN agent_messages 'Messages whose sender_role is agent.',
    COMMENT COLUMN bot_messages 'Messages whose sender_role is bot.',
    COMMENT COLUMN system_messages 'Messages whose sender_role is system.',
    COMMENT COLUMN unknown_messages 'Messages whose sender_role is unknown (outbound messages of the documented shape).',
    COMMENT COLUMN first_sent_at 'Send time of the first message, UTC.',
    COMMENT COLUMN last_sent_at 'Send time of the newest message, UTC.',
    COMMENT COLUMN first_message_id 'The first message.',
    COMMENT COLUMN last_message_id 'The newest message.',
    COMMENT COLUMN first_message_text 'The text (or caption) of the first message.',
    COMMENT COLUMN last_message_text 'The text (or caption) of the newest message.',
    COMMENT COLUMN agents 'The names (the id when nameless) of the agents and bots that wrote in it, and of outbound senders of unknown role, sorted.',
    COMMENT COLUMN customer_name 'A name the customer wrote under; empty when none.';
