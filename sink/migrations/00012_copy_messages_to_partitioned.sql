-- +goose Up
-- +goose NO TRANSACTION
-- Copies every version of every archived message into the partitioned table; sender_role is
-- computed from each row by its DEFAULT. Running it again inserts the same rows (same key,
-- same version), which collapse into one: harmless.
--
-- It reads and writes the whole archive once: on a large archive this takes a while and needs
-- as much free disk again as the messages table holds. Stop every archiver process (daemon,
-- CronJob) before upgrading, so that nothing writes to messages while it is copied.
INSERT INTO messages_partitioned (conversation_id, message_id, direction, type, status, text, media_url, caption, filename,
    sender_name, sender_phone, sender_id, sender_type, recipient_phone, reply_to, is_template, sent_at, sent_at_ns,
    delivered_at, read_at, updated_at, enriched, enrich_error, raw, detail_raw, fetched_at, version)
SELECT conversation_id, message_id, direction, type, status, text, media_url, caption, filename,
    sender_name, sender_phone, sender_id, sender_type, recipient_phone, reply_to, is_template, sent_at, sent_at_ns,
    delivered_at, read_at, updated_at, enriched, enrich_error, raw, detail_raw, fetched_at, version
FROM messages;
