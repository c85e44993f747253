-- +goose Up
-- +goose NO TRANSACTION
-- The runs were copied into the versioned sync_runs (00041); the old table holds nothing else.
DROP TABLE IF EXISTS sync_runs_unversioned;
