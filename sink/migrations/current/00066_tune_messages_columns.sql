-- +goose Up
-- +goose NO TRANSACTION
-- Types and codecs of messages that ClickHouse 18.16 lacks (they apply to new parts at once,
-- and to older ones as merges rewrite them):
--   - LowCardinality for the columns of a few values (a dictionary per part, the rows as
--     small numbers);
--   - ZSTD for the verbatim JSON and the texts, the bulk of a message's bytes: JSON of the
--     same API repeats its keys in every row, which ZSTD packs several times tighter than LZ4;
--     and for the message ids, hexadecimal that LZ4 cannot shrink (no repeats) and ZSTD's
--     entropy coding nearly halves;
--   - Delta for the times: sent_at sorts every part, and the other times stay close to it.
-- A MODIFY COLUMN that names no DEFAULT or COMMENT keeps the column's own.
ALTER TABLE messages
    MODIFY COLUMN direction LowCardinality(String),
    MODIFY COLUMN type LowCardinality(String),
    MODIFY COLUMN status LowCardinality(String),
    MODIFY COLUMN sender_type LowCardinality(String),
    MODIFY COLUMN sender_role LowCardinality(String),
    MODIFY COLUMN enrich_error LowCardinality(String),
    MODIFY COLUMN message_id String CODEC(ZSTD(3)),
    MODIFY COLUMN text String CODEC(ZSTD(3)),
    MODIFY COLUMN media_url String CODEC(ZSTD(3)),
    MODIFY COLUMN raw String CODEC(ZSTD(3)),
    MODIFY COLUMN detail_raw String CODEC(ZSTD(3)),
    MODIFY COLUMN sent_at DateTime('UTC') CODEC(Delta, ZSTD(1)),
    MODIFY COLUMN delivered_at Nullable(DateTime('UTC')) CODEC(Delta, ZSTD(1)),
    MODIFY COLUMN read_at Nullable(DateTime('UTC')) CODEC(Delta, ZSTD(1)),
    MODIFY COLUMN updated_at Nullable(DateTime('UTC')) CODEC(Delta, ZSTD(1)),
    MODIFY COLUMN fetched_at DateTime('UTC') CODEC(Delta, ZSTD(1));
