-- +goose Up
-- +goose NO TRANSACTION
-- archive_identity: the identity of this archive, one id made once per database by `migrate`
-- (a database dropped and made again, or restored from a backup taken before it was filled,
-- has another). A spool file names the archive it was written for, and a replay into another
-- keeps the rows and drops the sync states, which only the first archive's rows make true.
-- Two processes migrating at once may both insert: the earliest row is the identity.
CREATE TABLE IF NOT EXISTS archive_identity
(
    archive_id String COMMENT 'A random UUID made by migrate when the table was empty; the row created first is the archive''s identity.',
    created_at DateTime('UTC') COMMENT 'When migrate made it, UTC.'
)
ENGINE = MergeTree
ORDER BY (created_at, archive_id);
