package sink

import (
	"context"
	"testing"
	"time"

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
