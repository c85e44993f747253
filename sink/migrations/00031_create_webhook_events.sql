-- +goose Up
-- +goose NO TRANSACTION
-- webhook_events: every webhook event the archiver accepted, stored before it answered 202, so
-- that a crash loses none. Events are hints (the archive is written only from the API): the
-- archiver acts on each once, then inserts it again with processed = 1. The highest `version`
-- per event wins.
--
-- Columns:
--   event_id         the envelope's id, or a hash of the body when it has none (a duplicate
--                    delivery collapses into the same event)
--   received_at      when the archiver received it (UTC)
--   event            the event's name (message.received, message.read, ...)
--   conversation_id, message_id   as far as the event names them
--   raw              the body, verbatim
--   processed        1 once acted on
--   outcome          what was done, or why nothing was
--   version          grows with every new row for the event
CREATE TABLE IF NOT EXISTS webhook_events
(
    event_id        String,
    received_at     DateTime('UTC'),
    event           String,
    conversation_id String,
    message_id      String,
    raw             String,
    processed       UInt8,
    outcome         String,
    version         UInt64
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(received_at)
ORDER BY event_id;
