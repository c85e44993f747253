-- +goose Up
-- +goose NO TRANSACTION
-- archiver_leases: which archiver process works on the archive (or on a shard of it) now. Two
-- processes syncing one archive pay for the same messages twice; the lease lets the second
-- one see the first and refuse to run, naming it.
--
-- Each process that takes a lease writes its own row (holder), then a new version of it at
-- every heartbeat, pushing its expiry on; a process that ends writes a last version with
-- released = 1. A process killed leaves its row until it expires. Times come from the
-- server's clock, so the processes' clocks need not agree.
--
-- ClickHouse 18.16 has no transactions: taking a lease is "insert my row, then read every
-- live row"; a process that finds another live holder besides itself withdraws. Two
-- processes starting within the same moment may both withdraw (neither runs; the next start
-- succeeds); one that read before the other wrote keeps the lease, and the other sees it.
--
-- Columns:
--   lease      what is held: archive, or archive shard index/count
--   holder     host:pid:random, one per process
--   host, pid  of the holder
--   since      when the holder took the lease (server clock, UTC)
--   heartbeat  when it last renewed it
--   expires    when it lapses unless renewed
--   released   1 once the holder let it go
--   version    grows with every row of a holder; the highest wins
CREATE TABLE IF NOT EXISTS archiver_leases
(
    lease     String COMMENT 'What is held: archive, or archive shard index/count.',
    holder    String COMMENT 'The process holding it: host:pid:random.',
    host      String COMMENT 'The holder''s host name.',
    pid       UInt32 COMMENT 'The holder''s process id.',
    since     DateTime('UTC') COMMENT 'When the holder took the lease (server clock), UTC.',
    heartbeat DateTime('UTC') COMMENT 'When the holder last renewed it, UTC.',
    expires   DateTime('UTC') COMMENT 'When it lapses unless renewed, UTC.',
    released  UInt8 COMMENT '1 once the holder let it go.',
    version   UInt64 COMMENT 'Grows with every row of a holder; the highest wins.'
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (lease, holder);
