-- +goose Up
-- +goose NO TRANSACTION
-- quarantine: records the archiver received but could not decode, kept verbatim for a human
-- to look at. Append-only.
--
-- Columns:
--   received_at      when the record was received (UTC)
--   run_id           the sync run that received it (see sync_runs)
--   endpoint         which API endpoint answered with it
--   conversation_id, message_id   as far as they could be made out; empty otherwise
--   error            why decoding failed
--   raw              the record as received
CREATE TABLE IF NOT EXISTS quarantine
(
    received_at     DateTime('UTC'),
    run_id          String,
    endpoint        String,
    conversation_id String,
    message_id      String,
    error           String,
    raw             String
)
ENGINE = MergeTree
ORDER BY (conversation_id, received_at);
