package sink_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cekat-archiver/cekat-archiver/sink"

	"github.com/cekat-archiver/cekat-archiver/sink/sinktest"
)

func renameTable(t *testing.T, st *sink.Store, from, to string) {
	t.Helper()
	if err := st.Conn().Exec(testContext(t), "RENAME TABLE "+st.TableName(from)+" TO "+st.TableName(to)); err != nil {
		t.Fatal(err)
	}
}

func archivedCount(t *testing.T, a *sink.Archive, conv string, ids ...string) int {
	t.Helper()
	got, err := a.Archived(testContext(t), conv, ids)
	if err != nil {
		t.Fatal(err)
	}
	return len(got)
}

// A background flush that failed while ClickHouse could not take the rows
// must not fail a write once a later flush has stored them: the next run
// would fail on a repaired error and /readyz would stay unready longer.
func TestBackgroundErrorClearsOnceAFlushSucceeds(t *testing.T) {
	a, st := newArchive(t, sink.ArchiveOptions{BatchInterval: 20 * time.Millisecond})
	ctx := testContext(t)
	renameTable(t, st, "messages", "messages_away")
	if err := a.AddMessages(ctx, msgRow("c", "1", ts("2025-03-27T15:00:00Z"), 1)); err != nil {
		t.Fatal(err)
	}
	sinktest.WaitFor(t, "a failed background flush", func() bool { return a.Stats().FailedWrites > 0 })
	renameTable(t, st, "messages_away", "messages")
	sinktest.WaitFor(t, "a successful background flush", func() bool { return a.Stats().MessageRows > 0 })

	if err := a.AddMessages(ctx, msgRow("c", "2", ts("2025-03-27T15:00:01Z"), 1)); err != nil {
		t.Fatalf("a write failed on a background error already repaired: %v", err)
	}
	if err := a.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if n := archivedCount(t, a, "c", "1", "2"); n != 2 {
		t.Errorf("%d of 2 rows archived", n)
	}
}

// After a failed background flush a write retries the buffer: it fails
// while ClickHouse still fails (saying the rows are kept), and succeeds,
// writing everything, once it works again.
func TestWriteRetriesAfterBackgroundFailure(t *testing.T) {
	a, st := newArchive(t, sink.ArchiveOptions{BatchInterval: 20 * time.Millisecond})
	ctx := testContext(t)
	renameTable(t, st, "messages", "messages_away")
	if err := a.AddMessages(ctx, msgRow("c", "1", ts("2025-03-27T15:00:00Z"), 1)); err != nil {
		t.Fatal(err)
	}
	sinktest.WaitFor(t, "a failed background flush", func() bool { return a.Stats().FailedWrites > 0 })

	err := a.AddMessages(ctx, msgRow("c", "2", ts("2025-03-27T15:00:01Z"), 1))
	if err == nil || !strings.Contains(err.Error(), "rows kept in the spool") {
		t.Fatalf("write while ClickHouse still fails: %v; want an error saying the rows are kept", err)
	}

	renameTable(t, st, "messages_away", "messages")
	// Whether a background flush or this write's retry stores the buffer,
	// the write does not fail on the error of before.
	if err := a.AddMessages(ctx, msgRow("c", "3", ts("2025-03-27T15:00:02Z"), 1)); err != nil {
		t.Fatalf("write after ClickHouse came back: %v", err)
	}
	if err := a.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if n := archivedCount(t, a, "c", "1", "2", "3"); n != 3 {
		t.Errorf("%d of 3 rows archived: a write that failed lost its rows", n)
	}
}

// Close must return when its context ends, even while a background flush
// waits for a ClickHouse that stopped answering (the flush itself would
// wait a minute).
func TestCloseHonoursItsContext(t *testing.T) {
	st, proxy, _ := proxiedStore(t)
	a, err := sink.OpenArchive(context.Background(), st, sink.ArchiveOptions{BatchInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}

	proxy.Stall()
	if err := a.AddMessages(testContext(t), msgRow("c", "1", ts("2025-03-27T15:00:00Z"), 1)); err != nil {
		t.Fatal(err)
	}
	sinktest.WaitFor(t, "a background flush stuck on the stalled server", func() bool { return proxy.Held() > 0 })

	ctx, cancel := context.WithCancel(context.Background())
	closed := make(chan error, 1)
	go func() { closed <- a.Close(ctx) }()
	cancel()
	select {
	case err := <-closed:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Close after its context ended = %v, want context.Canceled", err)
		}
	case <-time.After(30 * time.Second):
		// Not a measure of speed: without the fix Close waits for the
		// background flush's own one-minute timeout.
		t.Fatal("Close did not return when its context ended")
	}
}

// Close with a live context still flushes what waits.
func TestCloseFlushes(t *testing.T) {
	st := migratedStore(t)
	a, err := sink.OpenArchive(context.Background(), st, sink.ArchiveOptions{BatchInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ctx := testContext(t)
	for i := range 3 {
		if err := a.AddMessages(ctx, msgRow("c", fmt.Sprint(i), ts("2025-03-27T15:00:00Z"), 1)); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if n := archivedCount(t, a, "c", "0", "1", "2"); n != 3 {
		t.Errorf("%d of 3 rows archived by Close", n)
	}
}
