-- +goose Up
-- +goose NO TRANSACTION
-- Puts the messages archived before status_checks existed on the re-check schedule: every
-- message sent in the last 7 days (the default re-check window) whose newest version is
-- enriched and neither read nor failed is due at once, then follows the schedule. Versions
-- are grouped with argMax rather than read with FINAL, so a filter on status never sees an
-- older version. Running it twice inserts rows that collapse into the same ones.
INSERT INTO status_checks (conversation_id, message_id, sent_at, until, checked_at, next_check_at, checks, open, version)
SELECT conversation_id, message_id, any(sent_at), any(sent_at) + 604800, now(), now(), 0, 1, toUInt64(now()) * 1000000000
FROM messages
WHERE sent_at >= now() - 604800
GROUP BY conversation_id, message_id
HAVING argMax(status, version) NOT IN ('read', 'failed') AND argMax(enriched, version) = 1;
