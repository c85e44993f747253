-- +goose Up
-- +goose NO TRANSACTION
-- Column comments, so that DESCRIBE TABLE explains conversations (00030) and webhook_events (00031).
ALTER TABLE conversations
    COMMENT COLUMN conversation_id 'The conversation, as in messages; one logical row per conversation, the highest version winning (read with FINAL).',
    COMMENT COLUMN inbox_id 'The inbox (channel) the conversation came in on.',
    COMMENT COLUMN inbox_name 'The inbox''s name.',
    COMMENT COLUMN contact_id 'The customer''s contact id.',
    COMMENT COLUMN contact_name 'The customer''s name as the workspace knows it.',
    COMMENT COLUMN contact_phone 'The customer''s phone number: digits, no +.',
    COMMENT COLUMN platform_type 'whatsapp, livechat, messenger, instagram, ...',
    COMMENT COLUMN stage_status 'assigned, resolved or pending, as last listed.',
    COMMENT COLUMN handled_by_id 'The agent handling the conversation; empty when none.',
    COMMENT COLUMN handled_by_name 'That agent''s name.',
    COMMENT COLUMN labels 'Label names.',
    COMMENT COLUMN last_message_at 'When its newest message was created, UTC; NULL when the list did not say.',
    COMMENT COLUMN created_at 'When the conversation was created, UTC.',
    COMMENT COLUMN resolved_at 'When it was resolved, UTC; NULL while not resolved.',
    COMMENT COLUMN raw 'The list item, verbatim JSON.',
    COMMENT COLUMN listed_at 'When the conversation list last said this, UTC.',
    COMMENT COLUMN activity 'last_message.created_at as listed and a hash of its text: changes when the conversation gains a message.',
    COMMENT COLUMN synced_activity 'The activity listed before the archiver''s last complete walk of the conversation''s new messages; while the list says the same, the conversation is not polled.',
    COMMENT COLUMN version 'Grows with every new row for the conversation; the highest wins.';
ALTER TABLE webhook_events
    COMMENT COLUMN event_id 'The envelope''s id, or a hash of the body when it has none (a duplicate delivery collapses into the same event); the highest version wins.',
    COMMENT COLUMN received_at 'When the archiver received the event, UTC; stored before it answered 202.',
    COMMENT COLUMN event 'The event''s name: message.received, message.read, conversation.created, ...',
    COMMENT COLUMN conversation_id 'The conversation the event names; empty when it names none (the message is then fetched to find it).',
    COMMENT COLUMN message_id 'The message the event names; empty for conversation events.',
    COMMENT COLUMN raw 'The body, verbatim.',
    COMMENT COLUMN processed '1 once the archiver acted on the event (events are hints: the archive is written only from the API).',
    COMMENT COLUMN outcome 'What was done, or why nothing was.',
    COMMENT COLUMN version 'Grows with every new row for the event; the highest wins.';
