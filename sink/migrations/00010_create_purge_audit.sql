-- +goose Up
-- +goose NO TRANSACTION
-- purge_audit: every decision of the retention purge and of erasure, the record that proves what
-- was removed upstream and from the archive, and why. It holds no message content: ids, counts,
-- times and reasons only.
--
-- A purge run writes, per conversation past retention: `skipped` (with the reason) when it is
-- not completely archived or upstream has messages the archive lacks; `would_delete` in a dry
-- run; otherwise an `intent` row BEFORE the delete call and, after the answer, `deleted`,
-- `failed` (with the API's answer) or, when the conversation was already absent upstream (404),
-- `gone`. An intent with no outcome (a crash between the call and its answer) is confirmed by
-- the next run, which asks the API and writes the outcome under the intent's run_id.
-- An erase writes `intent`, then `erased` once every archive row is gone, or `failed`.
--
-- One logical row per (conversation_id, run_id, event): a repeated insert of the same fact
-- collapses (read with FINAL, or count distinct).
--
-- Columns:
--   at                  when the row was written (UTC)
--   run_id              the purge or erase run that made the decision
--   action              purge or erase
--   event               intent, deleted, gone, failed, skipped, would_delete, erased
--   conversation_id     the conversation
--   archived_messages   messages archived for it when the decision was made
--   newest_sent_at      its newest archived message (UTC; 1970 when none)
--   dry_run             1 for the rows of a dry run
--   reason              why it qualifies, why it was skipped, or what was done
--   api_answer          the API's answer to a failed call: HTTP status and error envelope
--   operator            who ran it: --operator or the OS user on the command line, "schedule"
--                       for the daemon
--   operator_reason     the --reason text given on the command line
CREATE TABLE IF NOT EXISTS purge_audit
(
    at                DateTime('UTC'),
    run_id            String,
    action            String,
    event             String,
    conversation_id   String,
    archived_messages UInt64,
    newest_sent_at    DateTime('UTC'),
    dry_run           UInt8,
    reason            String,
    api_answer        String,
    operator          String,
    operator_reason   String
)
ENGINE = ReplacingMergeTree(at)
ORDER BY (conversation_id, run_id, event);
