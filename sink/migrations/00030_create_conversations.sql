-- +goose Up
-- +goose NO TRANSACTION
-- conversations: what the New Open API's conversation list says of each conversation, one
-- current row per conversation (the highest `version` wins: read with FINAL), for analysts to
-- join with messages, and the archiver's change detection.
--
-- Columns:
--   conversation_id               as in messages
--   inbox_id, inbox_name          the channel it came in on
--   contact_id, contact_name, contact_phone   the customer (phone: digits, no +)
--   platform_type                 whatsapp, livechat, messenger, instagram, ...
--   stage_status                  assigned, resolved or pending
--   handled_by_id, handled_by_name            the agent handling it
--   labels                        label names
--   last_message_at               when its newest message was created (NULL: not said)
--   created_at, resolved_at       UTC; resolved_at NULL while not resolved
--   raw                           the list item, verbatim
--   listed_at                     when the list last said this (UTC)
--   activity                      last_message.created_at as listed, and a hash of its text
--   synced_activity               the activity listed before the archiver's last complete walk
--                                 of the conversation's new messages: while the list says the
--                                 same, the conversation has nothing new and is not polled
--   version                       grows with every new row for the conversation
CREATE TABLE IF NOT EXISTS conversations
(
    conversation_id String,
    inbox_id        String,
    inbox_name      String,
    contact_id      String,
    contact_name    String,
    contact_phone   String,
    platform_type   String,
    stage_status    String,
    handled_by_id   String,
    handled_by_name String,
    labels          Array(String),
    last_message_at Nullable(DateTime('UTC')),
    created_at      Nullable(DateTime('UTC')),
    resolved_at     Nullable(DateTime('UTC')),
    raw             String,
    listed_at       DateTime('UTC'),
    activity        String,
    synced_activity String,
    version         UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY conversation_id;
