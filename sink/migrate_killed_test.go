package sink

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pressly/goose/v3/database"

	"github.com/cekat-archiver/cekat-archiver/sink/sinktest"
)

// A first migration killed after it created the version table and before
// it recorded goose's version 0 must not stop every later start.
func TestMigrateAfterAKillBeforeVersionZero(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db := sinktest.FreshDatabase(t)
	st, err := Open(ctx, Options{Addr: []string{sinktest.Addr(t)}, Database: db})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer st.Close()
	if err := st.conn.Exec(ctx, "CREATE TABLE "+st.TableName(MigrationsTable)+
		" (version_id Int64, is_applied UInt8, tstamp DateTime('UTC') DEFAULT now()) ENGINE = MergeTree ORDER BY (version_id, tstamp)"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatalf("Migrate after a kill before version 0: %v", err)
	}
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatalf("Migrate again: %v", err)
	}
}

// killedStore loses the record of one version, as a process killed after the
// migration's statement and before goose recorded it does.
type killedStore struct {
	versionStore
	version int64
}

func (k killedStore) Insert(ctx context.Context, db database.DBTxConn, req database.InsertRequest) error {
	if req.Version == k.version {
		return errors.New("killed before the version was recorded")
	}
	return k.versionStore.Insert(ctx, db, req)
}

// Every migration, killed between its statement and its record, is applied by
// the next migrate, and the schema ends as a migration never killed leaves it.
func TestMigrateKilledBeforeEachRecord(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	st, err := Open(ctx, Options{Addr: []string{sinktest.Addr(t)}, Database: sinktest.FreshDatabase(t)})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer st.Close()
	fsys, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	current, err := st.CurrentRelease(ctx)
	if err != nil {
		t.Fatal(err)
	}
	goMigrations, err := st.goMigrations(current)
	if err != nil {
		t.Fatal(err)
	}
	names, err := fs.Glob(fsys, "*.sql")
	if err != nil {
		t.Fatal(err)
	}
	var versions []int64
	for _, name := range names {
		var v int64
		if _, err := fmt.Sscanf(name, "%05d_", &v); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		versions = append(versions, v)
	}
	for _, m := range goMigrations {
		versions = append(versions, m.Version)
	}
	slices.Sort(versions)

	for _, v := range versions {
		lose := func(s database.Store) database.Store { return killedStore{s.(versionStore), v} }
		if _, err := st.migrate(ctx, fsys, migrateRun{goMigrations: goMigrations, upTo: v, store: lose}); err == nil {
			t.Fatalf("version %d: migrate with its record lost succeeded", v)
		}
		applied, err := st.migrate(ctx, fsys, migrateRun{goMigrations: goMigrations, upTo: v})
		if err != nil {
			t.Fatalf("version %d: migrate after a kill before its record: %v", v, err)
		}
		if len(applied) > 1 {
			t.Fatalf("version %d: migrate after the kill applied %v", v, applied)
		}
	}

	fresh, err := Open(ctx, Options{Addr: []string{sinktest.Addr(t)}, Database: sinktest.FreshDatabase(t)})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer fresh.Close()
	if _, err := fresh.Migrate(ctx); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	if got, want := schemaOf(ctx, t, st), schemaOf(ctx, t, fresh); got != want {
		t.Errorf("schema after a kill before every record:\n%s\nwant, as migrated at once:\n%s", got, want)
	}
}

// schemaOf lists the database's tables and columns with their types, one per line, each
// table's columns in their order (system.columns lists them so; 18.16 has no position).
func schemaOf(ctx context.Context, t *testing.T, st *Store) string {
	t.Helper()
	rows, err := st.conn.Query(ctx, `SELECT table, name, type FROM system.columns
WHERE database = ? AND table NOT IN (?, 'messages_daily')`, st.database, MigrationsTable)
	if err != nil {
		t.Fatalf("columns: %v", err)
	}
	defer rows.Close()
	type column struct{ table, line string }
	var columns []column
	for rows.Next() {
		var table, name, typ string
		if err := rows.Scan(&table, &name, &typ); err != nil {
			t.Fatal(err)
		}
		columns = append(columns, column{table, fmt.Sprintf("%s.%s %s\n", table, name, typ)})
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	slices.SortStableFunc(columns, func(a, b column) int { return strings.Compare(a.table, b.table) })
	var b strings.Builder
	for _, c := range columns {
		b.WriteString(c.line)
	}
	return b.String()
}
