-- +goose Up
-- +goose NO TRANSACTION
-- quarantine: records the archiver received but could not decode, kept verbatim for a human
-- to look at. A record is quarantined once per conversation, endpoint and content: the
-- archiver skips a record whose raw_hash is already here, so re-reading a page (an idle run,
-- a run after a crash) does not add it again.
--
-- Columns:
--   received_at      when the record was received (UTC)
--   run_id           the sync run that received it (see sync_runs)
--   endpoint         which API endpoint answered with it
--   conversation_id, message_id   as far as they could be made out; empty otherwise
--   error            why decoding failed
--   raw              the record as received
--   raw_hash         64-bit FNV-1a of "id:" and message_id when the record has an id (its content
--                    may change from one answer to the next), else of raw
CREATE TABLE IF NOT EXISTS quarantine
(
    received_at     DateTime('UTC'),
    run_id          String,
    endpoint        String,
    conversation_id String,
    message_id      String,
    error           String,
    raw             String,
    raw_hash        UInt64
)
ENGINE = ReplacingMergeTree(received_at)
ORDER BY (conversation_id, endpoint, raw_hash);
