package sink

import (
	"context"
	"io/fs"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/cekat-archiver/cekat-archiver/sink/sinktest"
)

func TestMigrateStopsAtFailingMigration(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := Open(ctx, Options{Addr: []string{sinktest.Addr(t)}, Database: sinktest.FreshDatabase(t)})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer st.Close()

	head := "-- +goose Up\n-- +goose NO TRANSACTION\n"
	fsys := fstest.MapFS{
		"00001_a.sql": {Data: []byte(head + "CREATE TABLE IF NOT EXISTS a (x UInt8) ENGINE = MergeTree ORDER BY x;\n")},
		"00002_b.sql": {Data: []byte(head + "CREATE TABLE b (x NoSuchType) ENGINE = MergeTree ORDER BY x;\n")},
		"00003_c.sql": {Data: []byte(head + "CREATE TABLE IF NOT EXISTS c (x UInt8) ENGINE = MergeTree ORDER BY x;\n")},
	}
	applied, err := st.migrate(ctx, fsys)
	if err == nil {
		t.Fatal("migrate succeeded, want the error of 00002_b.sql")
	}
	if !strings.Contains(err.Error(), "00002_b.sql") {
		t.Errorf("error %q does not name the failing file", err)
	}
	if len(applied) != 1 || applied[0] != "00001_a.sql" {
		t.Errorf("applied %v, want [00001_a.sql]", applied)
	}
	t.Logf("error: %v", err)

	// Fixing the file lets the next run go on from where it stopped.
	fsys["00002_b.sql"] = &fstest.MapFile{Data: []byte(head + "CREATE TABLE IF NOT EXISTS b (x UInt8) ENGINE = MergeTree ORDER BY x;\n")}
	applied, err = st.migrate(ctx, fsys)
	if err != nil {
		t.Fatalf("second migrate: %v", err)
	}
	if strings.Join(applied, ",") != "00002_b.sql,00003_c.sql" {
		t.Errorf("second migrate applied %v, want [00002_b.sql 00003_c.sql]", applied)
	}
}

// An archive made before status_checks existed gets its moving statuses put
// on the re-check schedule by the migration that seeds it.
func TestSeedStatusChecksFromAnOlderArchive(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := Open(ctx, Options{Addr: []string{sinktest.Addr(t)}, Database: sinktest.FreshDatabase(t)})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer st.Close()
	older := fstest.MapFS{}
	entries, err := fs.ReadDir(migrationFiles, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() < "00007" {
			data, err := fs.ReadFile(migrationFiles, "migrations/"+e.Name())
			if err != nil {
				t.Fatal(err)
			}
			older[e.Name()] = &fstest.MapFile{Data: data}
		}
	}
	if _, err := st.migrate(ctx, older); err != nil {
		t.Fatal(err)
	}
	a := NewArchive(st, ArchiveOptions{})
	defer a.Close(ctx)
	now := time.Now().UTC()
	row := func(id, status string, sent time.Time, version uint64) MessageRow {
		return MessageRow{ConversationID: "c", MessageID: id, Status: status, SentAt: sent, Enriched: true, FetchedAt: sent, Version: version}
	}
	if err := a.AddMessages(ctx,
		row("moving", "delivered", now.Add(-time.Hour), 1),
		row("read-now", "delivered", now.Add(-time.Hour), 1), row("read-now", "read", now.Add(-time.Hour), 2),
		row("old", "delivered", now.Add(-30*24*time.Hour), 1),
	); err != nil {
		t.Fatal(err)
	}
	if err := a.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	due, err := a.DueChecks(ctx, now.Add(time.Minute), 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(due) != 1 || due[0].MessageID != "moving" || !due[0].Open {
		t.Errorf("due after the seed: %+v; want only the moving status", due)
	}
}
