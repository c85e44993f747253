-- +goose Up
-- +goose NO TRANSACTION
-- The versioned table becomes `sync_runs`; the table of 00006 is kept as sync_runs_unversioned
-- until 00043 drops it.
--
-- A RENAME cannot be repeated: a version left unrecorded by a killed process is recorded
-- when sync_runs_versioned is gone.
-- done when: SELECT count() = 0 FROM system.tables WHERE database = currentDatabase() AND name = 'sync_runs_versioned'
RENAME TABLE sync_runs TO sync_runs_unversioned, sync_runs_versioned TO sync_runs;
