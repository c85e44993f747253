package sink

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"path"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/database"
	"go.uber.org/zap"
)

// Migrations are versioned SQL files, applied in version order by goose and recorded in the
// table MigrationsTable of the archive's database. Rules for new files:
//   - name them NNNNN_what.sql with the next version number;
//   - start with "-- +goose Up" and "-- +goose NO TRANSACTION" (ClickHouse has none);
//   - exactly ONE statement per file, so that a failure leaves nothing half-applied;
//   - forward-only: no "-- +goose Down" section;
//   - make the statement idempotent where ClickHouse allows (CREATE ... IF NOT EXISTS), since
//     a version is recorded after its statement ran and a process killed between the two runs
//     it again; a statement that cannot run twice (ADD COLUMN, RENAME) carries a
//     "-- done when: <query>" line that tells that it took effect (recordInterrupted;
//     TestMigrateKilledBeforeEachRecord runs every file twice);
//   - use unqualified table names (the migration connection selects the archive's database);
//   - stay within what ClickHouse 18.16 and current releases both support: no DateTime64, TTL,
//     CODEC, LowCardinality, table comments, nor ADD COLUMN IF NOT EXISTS;
//   - what only current releases can do goes in migrations/current/ under the same rules (one
//     statement, a version number of its own, after every file it builds on): Migrate runs
//     those files on a current release (CurrentRelease) and records them as done, without
//     running them, on older servers, which keep the forms of migrations/. Their numbers are
//     the highest given out so far, so that they see every column earlier files add; a file
//     added later after them must give its own columns their current types and codecs;
//   - stay within the statements that have a cluster form (clusterDDL, which rewrites every
//     file when Options.Cluster is set): CREATE TABLE IF NOT EXISTS with a (Replacing,
//     Aggregating, Summing) MergeTree engine, CREATE [MATERIALIZED] VIEW IF NOT EXISTS, ALTER
//     TABLE, RENAME TABLE, DROP TABLE IF EXISTS and INSERT; TestClusterFormOfEveryMigration
//     fails on any other.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

//go:embed migrations/current/*.sql
var currentMigrationFiles embed.FS

// dropEmptyUnpartitionedVersion is the version of the Go migration dropEmptyUnpartitioned.
const dropEmptyUnpartitionedVersion = 60

// MigrationsTable is the table, in the archive's database, that records applied migrations.
const MigrationsTable = "schema_migrations"

// Migrate creates the archive's database if needed, then applies the pending migrations in
// version order, gives the archive its identity (ArchiveID) if it has none, and makes the view
// DailyView in the zone of Options.AnalyticsTimezone. It
// returns the file names of the migrations it applied, in order: an empty list when the schema
// was already up to date. When a migration fails, the names applied before it are returned
// along with the error.
//
// Calls are serialized within the process. Two processes migrating at once would at worst both
// run an idempotent statement and record its version twice, which the version store tolerates.
func (s *Store) Migrate(ctx context.Context) ([]string, error) {
	s.migrateMu.Lock()
	defer s.migrateMu.Unlock()

	fsys, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		return []string{}, fmt.Errorf("sink: migrations: %w", err)
	}
	current, err := s.CurrentRelease(ctx)
	if err != nil {
		return []string{}, err
	}
	goMigrations, err := s.goMigrations(current)
	if err != nil {
		return []string{}, err
	}
	applied, err := s.migrate(ctx, fsys, migrateRun{goMigrations: goMigrations})
	if err != nil {
		return applied, err
	}
	// Not a migration: a random id, one per database.
	if err := s.ensureArchiveID(ctx); err != nil {
		return applied, fmt.Errorf("sink: %w", err)
	}
	// Not a migration: its zone is configuration, and may change.
	return applied, s.ensureDailyView(ctx)
}

// goMigration is a migration that goose runs as Go code, with the name Migrate reports.
type goMigration struct {
	name string
	*goose.Migration
}

// goMigrations returns the migrations that are Go code: dropEmptyUnpartitioned, and those of
// migrations/current/, which run their statement only when current is true.
func (s *Store) goMigrations(current bool) ([]goMigration, error) {
	out := []goMigration{{
		name:      fmt.Sprintf("%05d_drop_empty_messages_unpartitioned.go", dropEmptyUnpartitionedVersion),
		Migration: goose.NewGoMigration(dropEmptyUnpartitionedVersion, &goose.GoFunc{RunDB: s.dropEmptyUnpartitioned}, nil),
	}}
	sub, err := fs.Sub(currentMigrationFiles, "migrations/current")
	if err != nil {
		return nil, fmt.Errorf("sink: migrations: %w", err)
	}
	names, err := fs.Glob(sub, "*.sql")
	if err != nil {
		return nil, fmt.Errorf("sink: migrations: %w", err)
	}
	for _, name := range names {
		var version int64
		if _, err := fmt.Sscanf(name, "%05d_", &version); err != nil || version <= 0 {
			return nil, fmt.Errorf("sink: migration current/%s: no version number", name)
		}
		b, err := fs.ReadFile(sub, name)
		if err != nil {
			return nil, fmt.Errorf("sink: migrations: %w", err)
		}
		file := string(b)
		if s.opts.Cluster != "" {
			if file, err = s.clusterDDL().rewrite(file); err != nil {
				return nil, fmt.Errorf("sink: migration current/%s for cluster %s: %w", name, s.opts.Cluster, err)
			}
		}
		_, body := leadingComments(file)
		stmts := splitStatements(body)
		if len(stmts) != 1 {
			return nil, fmt.Errorf("sink: migration current/%s: %d statements, want one", name, len(stmts))
		}
		stmt := strings.TrimSuffix(strings.TrimSpace(stmts[0]), ";")
		run := func(ctx context.Context, db *sql.DB) error {
			if !current {
				return nil
			}
			if _, err := db.ExecContext(ctx, stmt); err != nil {
				return fmt.Errorf("current/%s: %w", name, err)
			}
			return nil
		}
		out = append(out, goMigration{
			name:      "current/" + name,
			Migration: goose.NewGoMigration(version, &goose.GoFunc{RunDB: run}, nil),
		})
	}
	return out, nil
}

// dropEmptyUnpartitioned drops the table 00013 sets aside when it holds nothing: in a database
// made by this release's migrations it is the empty table of 00001. An archive made before
// messages was partitioned keeps its copy there until its owner drops it.
func (s *Store) dropEmptyUnpartitioned(ctx context.Context, db *sql.DB) error {
	var n uint64
	if err := db.QueryRowContext(ctx, "SELECT count() FROM system.tables WHERE database = currentDatabase() AND name = 'messages_unpartitioned'").Scan(&n); err != nil {
		return fmt.Errorf("look up messages_unpartitioned: %w", err)
	}
	if n == 0 {
		return nil
	}
	if err := db.QueryRowContext(ctx, "SELECT count() FROM messages_unpartitioned").Scan(&n); err != nil {
		return fmt.Errorf("count messages_unpartitioned: %w", err)
	}
	if n > 0 {
		return nil
	}
	stmt := "DROP TABLE IF EXISTS messages_unpartitioned"
	if s.opts.Cluster != "" {
		var err error
		if stmt, err = s.clusterDDL().statement(stmt); err != nil {
			return fmt.Errorf("drop messages_unpartitioned: %w", err)
		}
	}
	if _, err := db.ExecContext(ctx, stmt); err != nil {
		return fmt.Errorf("drop messages_unpartitioned: %w", err)
	}
	return nil
}

// migrateRun is what one migrate applies besides the files of fsys.
type migrateRun struct {
	goMigrations []goMigration
	// upTo stops after this version; 0 applies every migration.
	upTo int64
	// store, when set, wraps the version store: tests lose a record as a killed process does.
	store func(database.Store) database.Store
}

// migrate applies the migrations in fsys and run's Go migrations; tests give it files of
// their own.
func (s *Store) migrate(ctx context.Context, fsys fs.FS, run migrateRun) ([]string, error) {
	applied := []string{}
	// Only when missing: on a cluster, ON CLUSTER waits for every replica, and
	// an archiver starting while one is down must not wait for it here.
	var exists uint64
	if err := s.conn.QueryRow(ctx, "SELECT count() FROM system.databases WHERE name = ?", s.database).Scan(&exists); err != nil {
		return applied, fmt.Errorf("sink: look up database %s: %w", s.database, err)
	}
	if exists == 0 {
		if err := s.conn.Exec(ctx, "CREATE DATABASE IF NOT EXISTS "+quoteIdent(s.database)+s.onCluster()); err != nil {
			return applied, fmt.Errorf("sink: create database %s: %w", s.database, err)
		}
	}
	versions := versionStore{}
	if s.opts.Cluster != "" {
		ddl := s.clusterDDL()
		versions.ddl = &ddl
		var err error
		if fsys, err = ddl.migrations(fsys); err != nil {
			return applied, fmt.Errorf("sink: migrations for cluster %s: %w", s.opts.Cluster, err)
		}
	}

	// goose needs a *sql.DB; this one selects the archive's database, which now exists.
	db := clickhouse.OpenDB(s.clickhouseOptions(s.database))
	defer db.Close()

	var store database.Store = versions
	if run.store != nil {
		store = run.store(versions)
	}
	names := map[int64]string{}
	var registered []*goose.Migration
	for _, m := range run.goMigrations {
		names[m.Version] = m.name
		registered = append(registered, m.Migration)
	}
	name := func(r *goose.MigrationResult) string {
		if r.Source.Path == "" {
			return names[r.Source.Version]
		}
		return path.Base(r.Source.Path)
	}
	provider, err := goose.NewProvider(goose.DialectCustom, db, fsys,
		goose.WithStore(store),
		goose.WithGoMigrations(registered...),
		// Never wrap anything in a transaction: clickhouse-go's Begin is a no-op and its
		// Rollback closes the connection.
		goose.WithIsolateDDL(true),
		goose.WithDisableGlobalRegistry(true),
		goose.WithVerbose(true),
		goose.WithSlog(slogAtDebug(s.log, "goose")),
	)
	if err != nil {
		return applied, fmt.Errorf("sink: migrations: %w", err)
	}

	if err := s.recordInterrupted(ctx, db, provider, fsys, store); err != nil {
		return applied, fmt.Errorf("sink: migrate database %s: %w", s.database, err)
	}
	upTo := run.upTo
	if upTo == 0 {
		upTo = math.MaxInt64
	}
	results, err := provider.UpTo(ctx, upTo)
	if err != nil {
		var partial *goose.PartialError
		if errors.As(err, &partial) {
			for _, r := range partial.Applied {
				applied = append(applied, name(r))
			}
			failed := "?"
			if partial.Failed != nil && partial.Failed.Source != nil {
				failed = name(partial.Failed)
			}
			return applied, fmt.Errorf("sink: migrate database %s: %s: %w", s.database, failed, partial.Err)
		}
		return applied, fmt.Errorf("sink: migrate database %s: %w", s.database, err)
	}
	for _, r := range results {
		applied = append(applied, name(r))
	}
	if len(applied) > 0 {
		s.log.Info("applied migrations", zap.String("database", s.database), zap.Strings("migrations", applied))
	} else {
		s.log.Debug("schema up to date", zap.String("database", s.database))
	}
	return applied, nil
}

// doneWhenPrefix starts a comment line of a migration whose statement cannot run twice (ADD
// COLUMN, which 18.16 has without IF NOT EXISTS; RENAME): the rest of the line is a query whose
// non-zero answer says the statement has taken effect.
const doneWhenPrefix = "-- done when:"

// recordInterrupted records the first pending migration as applied when its statement ran but
// its version was never recorded: a process killed between the two leaves exactly that, and
// running such a statement again fails for ever. Only the first pending one can be in that
// state, and only a file with a done-when line is asked; any other is safe to run again.
func (s *Store) recordInterrupted(ctx context.Context, db *sql.DB, provider *goose.Provider, fsys fs.FS, store database.Store) error {
	ext, ok := store.(database.StoreExtender)
	if !ok {
		return nil
	}
	ready, err := ext.TableExists(ctx, db)
	if err != nil || !ready {
		return err
	}
	current, err := provider.GetDBVersion(ctx)
	if err != nil {
		return err
	}
	var next *goose.Source
	for _, src := range provider.ListSources() {
		if src.Version > current && (next == nil || src.Version < next.Version) {
			next = src
		}
	}
	if next == nil || next.Type != goose.TypeSQL {
		return nil
	}
	b, err := fs.ReadFile(fsys, next.Path)
	if err != nil {
		return fmt.Errorf("read %s: %w", next.Path, err)
	}
	var query string
	for _, line := range strings.Split(string(b), "\n") {
		if q, ok := strings.CutPrefix(strings.TrimSpace(line), doneWhenPrefix); ok {
			query = strings.TrimSpace(q)
		}
	}
	if query == "" {
		return nil
	}
	var done uint64
	if err := db.QueryRowContext(ctx, "SELECT toUInt64(("+query+"))").Scan(&done); err != nil {
		return fmt.Errorf("%s: done-when query: %w", path.Base(next.Path), err)
	}
	if done == 0 {
		return nil
	}
	if err := store.Insert(ctx, db, database.InsertRequest{Version: next.Version}); err != nil {
		return fmt.Errorf("%s: %w", path.Base(next.Path), err)
	}
	s.log.Warn("recorded a migration whose statement had run but whose version was not recorded (a process stopped between the two)",
		zap.String("database", s.database), zap.String("migration", path.Base(next.Path)))
	return nil
}

// versionStore is goose's version bookkeeping, written for ClickHouse 18.16 as much as for
// current releases. goose's built-in ClickHouse dialect does not work on 18.16: its
// `INSERT ... VALUES ($1, $2)` with arguments hangs through clickhouse-go, and its delete uses
// `SETTINGS mutations_sync`, which 18.16 lacks. Here the insert is `INSERT ... SELECT` and the
// delete a plain mutation.
//
// Rows are only ever appended (a version may appear twice if two processes migrate at once);
// queries group by version.
type versionStore struct {
	// ddl makes the table replicated on a cluster; nil on a single server.
	ddl *clusterDDL
}

var _ database.StoreExtender = versionStore{}

func (versionStore) Tablename() string { return MigrationsTable }

func (v versionStore) CreateVersionTable(ctx context.Context, db database.DBTxConn) error {
	q := `CREATE TABLE IF NOT EXISTS ` + MigrationsTable + ` (
    version_id Int64 COMMENT 'A migration applied: the number of its file in sink/migrations (0 is goose''s own start).',
    is_applied UInt8 COMMENT '1: applied. Migrations are forward-only.',
    tstamp     DateTime('UTC') DEFAULT now() COMMENT 'When it was recorded, UTC.'
) ENGINE = MergeTree ORDER BY (version_id, tstamp)`
	if v.ddl != nil {
		var err error
		if q, err = v.ddl.statement(q); err != nil {
			return fmt.Errorf("create table %s: %w", MigrationsTable, err)
		}
	}
	if _, err := db.ExecContext(ctx, q); err != nil {
		return fmt.Errorf("create table %s: %w", MigrationsTable, err)
	}
	return nil
}

func (versionStore) Insert(ctx context.Context, db database.DBTxConn, req database.InsertRequest) error {
	q := `INSERT INTO ` + MigrationsTable + ` (version_id, is_applied) SELECT toInt64(?), 1`
	if _, err := db.ExecContext(ctx, q, req.Version); err != nil {
		return fmt.Errorf("record migration version %d: %w", req.Version, err)
	}
	return nil
}

func (versionStore) Delete(ctx context.Context, db database.DBTxConn, version int64) error {
	// A background mutation; forward-only migrations never call this in practice.
	q := `ALTER TABLE ` + MigrationsTable + ` DELETE WHERE version_id = ?`
	if _, err := db.ExecContext(ctx, q, version); err != nil {
		return fmt.Errorf("delete migration version %d: %w", version, err)
	}
	return nil
}

func (versionStore) GetMigration(ctx context.Context, db database.DBTxConn, version int64) (*database.GetMigrationResult, error) {
	q := `SELECT tstamp, is_applied FROM ` + MigrationsTable + ` WHERE version_id = ? ORDER BY tstamp DESC LIMIT 1`
	var (
		ts      time.Time
		applied uint8
	)
	if err := db.QueryRowContext(ctx, q, version).Scan(&ts, &applied); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("%w: %d", database.ErrVersionNotFound, version)
		}
		return nil, fmt.Errorf("get migration version %d: %w", version, err)
	}
	return &database.GetMigrationResult{Timestamp: ts, IsApplied: applied != 0}, nil
}

func (versionStore) GetLatestVersion(ctx context.Context, db database.DBTxConn) (int64, error) {
	// max() of an empty table is 0 in ClickHouse, not NULL: count the rows too.
	q := `SELECT count(), max(version_id) FROM ` + MigrationsTable
	var (
		n      uint64
		latest int64
	)
	if err := db.QueryRowContext(ctx, q).Scan(&n, &latest); err != nil {
		return -1, fmt.Errorf("get latest migration version: %w", err)
	}
	if n == 0 {
		return -1, fmt.Errorf("latest %w", database.ErrVersionNotFound)
	}
	return latest, nil
}

func (versionStore) ListMigrations(ctx context.Context, db database.DBTxConn) ([]*database.ListMigrationsResult, error) {
	q := `SELECT version_id, max(is_applied) FROM ` + MigrationsTable + ` GROUP BY version_id ORDER BY version_id DESC`
	rows, err := db.QueryContext(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("list migrations: %w", err)
	}
	defer rows.Close()
	var out []*database.ListMigrationsResult
	for rows.Next() {
		var (
			version int64
			applied uint8
		)
		if err := rows.Scan(&version, &applied); err != nil {
			return nil, fmt.Errorf("list migrations: %w", err)
		}
		out = append(out, &database.ListMigrationsResult{Version: version, IsApplied: applied != 0})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list migrations: %w", err)
	}
	return out, nil
}

// TableExists says whether the version table is ready: created and holding
// goose's version 0. A process killed between the two leaves a table
// without it, which goose would refuse for ever; reported as missing, the
// table is created again (a no-op) and version 0 recorded.
func (versionStore) TableExists(ctx context.Context, db database.DBTxConn) (bool, error) {
	q := `SELECT count() FROM system.tables WHERE database = currentDatabase() AND name = ?`
	var n uint64
	if err := db.QueryRowContext(ctx, q, MigrationsTable).Scan(&n); err != nil {
		return false, fmt.Errorf("check table %s: %w", MigrationsTable, err)
	}
	if n == 0 {
		return false, nil
	}
	if err := db.QueryRowContext(ctx, `SELECT count() FROM `+MigrationsTable+` WHERE version_id = 0`).Scan(&n); err != nil {
		return false, fmt.Errorf("check table %s: %w", MigrationsTable, err)
	}
	return n > 0, nil
}
