-- +goose Up
-- +goose NO TRANSACTION
-- archive_identity: the identity of this archive, an id made by `migrate` once per database (a
-- database dropped and made again has another), and made anew by `migrate --new-identity`
-- after a restore from a backup, which retires the old one. A spool file names the archive it
-- was written for; a replay into another keeps the rows and drops the sync states, which only
-- the first archive's rows make true. Two processes migrating a new database at once may both
-- make an id: both are the archive's, and the one created first is the one it names.
CREATE TABLE IF NOT EXISTS archive_identity
(
    archive_id String COMMENT 'A random UUID made by migrate; live while its newest row has retired = 0.',
    created_at DateTime('UTC') COMMENT 'When migrate made the id, UTC.',
    retired    UInt8 COMMENT '1: the id no longer names this archive (migrate --new-identity, after a restore from a backup).',
    version    UInt64 COMMENT 'Grows with every row for the id; the highest wins.'
)
ENGINE = ReplacingMergeTree(version)
ORDER BY archive_id;
