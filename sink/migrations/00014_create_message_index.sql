-- +goose Up
-- +goose NO TRANSACTION
-- message_index: what the sync engine needs to know of each archived message, sorted by
-- (conversation_id, message_id) so that its per-page question "which of these 100 ids are
-- archived, with what status?" reads a granule or two whatever the size of the archive.
-- `messages` is sorted by time and cannot answer it without reading a whole conversation in
-- every month. Filled by the materialized view message_index_mv on every insert into
-- messages (and from the archive by 00016). The highest version per message wins; read it
-- with argMax(..., version) or FINAL.
CREATE TABLE IF NOT EXISTS message_index
(
    conversation_id String COMMENT 'As in messages.',
    message_id      String COMMENT 'As in messages.',
    sent_at         DateTime('UTC') COMMENT 'As in messages: with conversation_id and message_id, the sorting key of the message''s rows there.',
    status          String COMMENT 'The status of this version.',
    updated_at      Nullable(DateTime('UTC')) COMMENT 'The updated_at of this version.',
    enriched        UInt8 COMMENT 'The enriched flag of this version.',
    version         UInt64 COMMENT 'The version of the messages row; the highest wins.'
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (conversation_id, message_id);
