-- +goose Up
-- +goose NO TRANSACTION
-- messages: one logical row per archived message. Every fetch or enrichment of a message
-- inserts a whole new row with a higher `version`; ReplacingMergeTree keeps the row with the
-- highest version per (conversation_id, message_id) when it merges parts. Merges happen in the
-- background, so readers that need exactly one row per message use messages_current (or FINAL).
--
-- Columns:
--   conversation_id, message_id  the message's identity (sorting key)
--   direction, type, status      as the API reports them (e.g. in/out, text/image, read)
--   text, media_url, caption, filename       content; empty when absent
--   sender_*, recipient_phone, reply_to      parties and the replied-to message id
--   is_template                  1 if sent from a template
--   sent_at, sent_at_ns          send time in UTC at second precision, plus the nanoseconds
--                                within that second (orders messages sharing a second; no
--                                DateTime64 on ClickHouse 18.16)
--   delivered_at, read_at, updated_at        NULL when unknown
--   enriched, enrich_error       1 once the detail answer has been merged in; the last error
--   raw                          the message JSON from the list answer
--   detail_raw                   the detail answer JSON; empty until enriched
--   fetched_at                   when this version was fetched
--   version                      grows with every new version of the row
CREATE TABLE IF NOT EXISTS messages
(
    conversation_id String,
    message_id      String,
    direction       String,
    type            String,
    status          String,
    text            String,
    media_url       String,
    caption         String,
    filename        String,
    sender_name     String,
    sender_phone    String,
    sender_id       String,
    sender_type     String,
    recipient_phone String,
    reply_to        String,
    is_template     UInt8,
    sent_at         DateTime('UTC'),
    sent_at_ns      UInt32,
    delivered_at    Nullable(DateTime('UTC')),
    read_at         Nullable(DateTime('UTC')),
    updated_at      Nullable(DateTime('UTC')),
    enriched        UInt8,
    enrich_error    String,
    raw             String,
    detail_raw      String,
    fetched_at      DateTime('UTC'),
    version         UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (conversation_id, message_id);
