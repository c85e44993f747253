-- +goose Up
-- +goose NO TRANSACTION
-- messages, partitioned by month of the send time and sorted by it (created here under a
-- temporary name; 00012 copies the archive into it and 00013 gives it the name `messages`).
--
-- One logical row per archived message: every fetch of a message that changed something
-- inserts a whole new row with a higher `version`, and ReplacingMergeTree keeps the highest
-- version of each sorting key when it merges parts. The sorting key is (sent_at,
-- conversation_id, message_id): a message's send time never changes, so its versions share
-- the key, and a filter on sent_at skips whole months (partitions) and, inside a month, the
-- granules outside the range, also through FINAL. Merges happen in the background: read
-- messages_current, or FINAL, for exactly one row per message.
--
-- The sync engine looks messages up by (conversation_id, message_id), which this key cannot
-- serve: it asks message_index (00014), sorted that way, and reads full rows here by the send
-- times the index gives.
--
-- Every column carries a COMMENT, so DESCRIBE TABLE messages explains it.
CREATE TABLE IF NOT EXISTS messages_partitioned
(
    conversation_id String COMMENT 'The conversation the message belongs to (the API''s conversation_id).',
    message_id      String COMMENT 'The message''s id as the API gives it: an opaque string (UUIDs are not ordered).',
    direction       String COMMENT 'inbound (from the customer) or outbound (to the customer); empty when the answer did not say.',
    type            String COMMENT 'text, image, video, document, audio, or whatever else the API sent (sticker, location, interactive...).',
    status          String COMMENT 'As last fetched: sent, delivered, read, failed (outbound); received or delivered until read (inbound); empty when not given.',
    text            String COMMENT 'The text of a text message; empty otherwise.',
    media_url       String COMMENT 'The URL of a media message''s file; empty otherwise.',
    caption         String COMMENT 'The caption of a media message; empty otherwise.',
    filename        String COMMENT 'The file name of a document; empty otherwise.',
    sender_name     String COMMENT 'The sender''s display name (the customer, an agent, a bot, the system).',
    sender_phone    String COMMENT 'The customer''s phone number when the customer sent it; empty otherwise.',
    sender_id       String COMMENT 'The id of the account that sent it (agent, bot or contact id); empty when not given.',
    sender_type     String COMMENT 'The sender type exactly as the API said it (sent_by_type: agent, user, system); empty in the documented shape.',
    sender_role     String DEFAULT multiIf(lower(sender_type) IN ('user', 'customer', 'contact'), 'customer', lower(sender_type) = 'agent', 'agent', lower(sender_type) IN ('bot', 'ai'), 'bot', lower(sender_type) = 'system', 'system', sender_type = '' AND direction = 'inbound', 'customer', 'unknown') COMMENT 'Who sent it: customer, agent, bot, system, or unknown when the answer does not say (an outbound message of the documented shape names no sender type). From sender_type, else direction; never from the spelling of ids.',
    recipient_phone String COMMENT 'The customer''s phone number when the message went to the customer; empty otherwise.',
    reply_to        String COMMENT 'The id of the message this one replies to; empty when none.',
    is_template     UInt8 COMMENT '1 if sent from a WhatsApp template.',
    sent_at         DateTime('UTC') COMMENT 'When the message was sent, UTC, to the second. Never changes for a message (it is in the sorting key).',
    sent_at_ns      UInt32 COMMENT 'Nanoseconds within sent_at''s second: orders messages sharing a second (no DateTime64 on ClickHouse 18.16).',
    delivered_at    Nullable(DateTime('UTC')) COMMENT 'When it reached the customer''s phone (outbound), UTC; NULL while unknown.',
    read_at         Nullable(DateTime('UTC')) COMMENT 'When it was read (by the customer for outbound, by an agent for inbound), UTC; NULL while unknown.',
    updated_at      Nullable(DateTime('UTC')) COMMENT 'When the API last changed the message (flat shape), UTC; NULL when not given.',
    enriched        UInt8 COMMENT '1 once the detail answer (GET /messages/{id}) is merged in.',
    enrich_error    String COMMENT 'Why the detail answer is missing or incomplete; starts with transient: when it will be asked again, warning: for unusable optional fields.',
    raw             String COMMENT 'The message JSON of the list answer, verbatim.',
    detail_raw      String COMMENT 'The detail answer JSON, verbatim; empty until enriched.',
    fetched_at      DateTime('UTC') COMMENT 'When this version was fetched, UTC.',
    version         UInt64 COMMENT 'Grows with every new version of the message; the highest wins.'
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(sent_at)
ORDER BY (sent_at, conversation_id, message_id);
