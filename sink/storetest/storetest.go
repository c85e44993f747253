// Package storetest opens sink Stores on the test ClickHouse server with their schema made,
// the start most tests that read or write the archive share. It is apart from sinktest
// because it imports the sink, whose own internal tests import sinktest.
//
// Tests that use it are skipped unless sinktest.EnvAddr is set.
package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/cekat-archiver/cekat-archiver/sink"
	"github.com/cekat-archiver/cekat-archiver/sink/sinktest"
)

// Migrated opens a Store with opts and migrates its database; the Store closes when the test
// ends. An empty opts.Addr is the test server (sinktest.Addr), an empty opts.Database a name
// unique to the test, dropped when it ends (sinktest.DatabaseName).
func Migrated(t testing.TB, opts sink.Options) *sink.Store {
	t.Helper()
	if len(opts.Addr) == 0 {
		opts.Addr = []string{sinktest.Addr(t)}
	}
	if opts.Database == "" {
		opts.Database = sinktest.DatabaseName(t)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := sink.Open(ctx, opts)
	if err != nil {
		t.Fatalf("storetest: open %s: %v", opts.Database, err)
	}
	t.Cleanup(func() {
		if err := st.Close(); err != nil {
			t.Errorf("storetest: close %s: %v", opts.Database, err)
		}
	})
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatalf("storetest: migrate %s: %v", opts.Database, err)
	}
	return st
}
