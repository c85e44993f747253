package sink

import (
	"context"
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
