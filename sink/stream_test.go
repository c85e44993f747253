package sink_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cekat-archiver/cekat-archiver/sink"
)

// messageCount counts the rows of conv stored in messages (every version).
func messageCount(t *testing.T, st *sink.Store, conv string) uint64 {
	t.Helper()
	var n uint64
	if err := st.Conn().QueryRow(testContext(t), "SELECT count() FROM "+st.TableName("messages")+
		" WHERE conversation_id = ?", conv).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func manyRows(conv string, from, n int) []sink.MessageRow {
	rows := make([]sink.MessageRow, n)
	sent := ts("2025-03-27T15:00:00Z")
	for i := range rows {
		rows[i] = msgRow(conv, fmt.Sprintf("m%06d", from+i), sent.Add(time.Duration(from+i)*time.Second), 1)
		rows[i].Text = "some text to give the row a body"
	}
	return rows
}

// An INSERT that fails halfway (the connection cut while blocks are sent)
// is retried from the spool once ClickHouse is back: every row accepted is
// stored once, the state behind them only after them.
func TestFailedInsertRetriedFromSpool(t *testing.T) {
	st, proxy, db := proxiedStore(t)
	direct := openStore(t, db)
	a, err := sink.OpenArchive(context.Background(), st, sink.ArchiveOptions{BatchInterval: time.Hour, SpoolDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close(context.Background()) })
	ctx := testContext(t)

	accepted := 2500
	if err := a.AddMessages(ctx, manyRows("c", 0, accepted)...); err != nil { // two blocks sent, the INSERT open
		t.Fatal(err)
	}
	proxy.Cut()
	for i := 0; err == nil && i < 10; i++ { // the cut shows at the next block sent
		err = a.AddMessages(ctx, manyRows("c", accepted, 500)...)
		accepted += 500 // failed or not, the rows are in the spool
	}
	if err == nil {
		t.Fatal("writes through a cut connection never failed")
	}
	if err := a.AddState(ctx, sink.State{ConversationID: "c", HeadMessageID: "m000000", Version: 1}); err != nil {
		t.Fatalf("a state queued while ClickHouse fails: %v", err)
	}
	if err := a.Flush(ctx); err == nil {
		t.Fatal("flush through a cut connection succeeded")
	}
	if states, err := direct.Conn().Query(ctx, "SELECT 1 FROM "+direct.TableName("sync_state")); err == nil {
		if states.Next() {
			t.Error("a state stored while its rows were not")
		}
		states.Close()
	}

	proxy.Restore()
	if err := a.Flush(ctx); err != nil {
		t.Fatalf("flush once ClickHouse is back: %v", err)
	}
	// ClickHouse 18.16 may store the blocks an INSERT had received when its
	// connection was cut: the replay stores them again, and the versions
	// collapse.
	var current, distinct uint64
	if err := direct.Conn().QueryRow(ctx, "SELECT count(), uniqExact(message_id) FROM "+direct.TableName("messages")+" FINAL").
		Scan(&current, &distinct); err != nil {
		t.Fatal(err)
	}
	if current != distinct || distinct != uint64(accepted) {
		t.Errorf("%d current rows, %d distinct; want the %d accepted, each once", current, distinct, accepted)
	}
	states, err := a.LoadStates(ctx)
	if err != nil || states["c"].HeadMessageID != "m000000" {
		t.Errorf("state after the retry: %v %v", states, err)
	}
}

// What a killed archiver accepted and ClickHouse never acknowledged is in
// its spool: the next archive opened on the directory writes it, the rows
// first and the state after them, before anything else, and removes the
// file.
func TestSpoolReplayedAfterCrash(t *testing.T) {
	st := migratedStore(t)
	dir := t.TempDir()
	ctx := testContext(t)
	opts := sink.ArchiveOptions{BatchInterval: time.Hour, SpoolDir: dir}
	a, err := sink.OpenArchive(ctx, st, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.AddMessages(ctx, manyRows("c", 0, 1500)...); err != nil { // a block sent, the INSERT open
		t.Fatal(err)
	}
	if err := a.AddState(ctx, sink.State{ConversationID: "c", HeadMessageID: "m001499", Version: 1}); err != nil {
		t.Fatal(err)
	}
	if err := a.AddMessages(ctx, manyRows("c", 1500, 10)...); err != nil {
		t.Fatal(err)
	}
	a.Crash()
	if states, err := a.LoadStates(ctx); err != nil || len(states) != 0 {
		t.Fatalf("a state stored before the crash: %v %v", states, err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, st.Database(), "*.spool"))
	if len(files) != 1 {
		t.Fatalf("spool files after the crash: %v, want one", files)
	}

	b, err := sink.OpenArchive(ctx, st, opts)
	if err != nil {
		t.Fatalf("open after a crash: %v", err)
	}
	defer b.Close(ctx)
	// Stored at open, before any write or flush of b.
	var current uint64
	if err := st.Conn().QueryRow(ctx, "SELECT count() FROM "+st.TableName("messages")+" FINAL").Scan(&current); err != nil {
		t.Fatal(err)
	}
	if current != 1510 {
		t.Errorf("%d messages after the replay, want 1510", current)
	}
	if states, err := b.LoadStates(ctx); err != nil || states["c"].HeadMessageID != "m001499" {
		t.Errorf("state after the replay: %v %v", states, err)
	}
	if _, err := os.Stat(files[0]); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the replayed spool is still there: %v", err)
	}
}

// While ClickHouse fails, the spool fills up to its bound: then a write is
// refused with ErrSpoolFull (the run stops on it), what was accepted before
// stays, and is written once ClickHouse is back.
func TestSpoolFullRefusesWrites(t *testing.T) {
	a, st := newArchive(t, sink.ArchiveOptions{BatchInterval: time.Hour, SpoolMaxBytes: 256 << 10})
	ctx := testContext(t)
	renameTable(t, st, "messages", "messages_away")
	accepted := 0
	var err error
	for i := 0; i < 1000; i++ {
		if err = a.AddMessages(ctx, manyRows("c", accepted, 100)...); errors.Is(err, sink.ErrSpoolFull) {
			break
		}
		accepted += 100
	}
	if !errors.Is(err, sink.ErrSpoolFull) {
		t.Fatalf("writes while ClickHouse fails never filled a 256 KiB spool: %v", err)
	}
	t.Logf("%d rows accepted, then: %v", accepted, err)
	if err := a.AddState(ctx, sink.State{ConversationID: "c", HeadMessageID: "m000000", Version: 1}); !errors.Is(err, sink.ErrSpoolFull) {
		t.Errorf("a state queued into a full spool: %v", err)
	}
	renameTable(t, st, "messages_away", "messages")
	if err := a.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if n := archivedCount(t, a, "c", "m000000", fmt.Sprintf("m%06d", accepted-1), fmt.Sprintf("m%06d", accepted)); n != 2 {
		t.Errorf("%d of the first and last accepted rows and the first refused one archived, want 2", n)
	}
	if err := a.AddMessages(ctx, manyRows("c", accepted, 1)...); err != nil {
		t.Errorf("a write once the spool is emptied: %v", err)
	}
}

// An erasure while an INSERT is open ends it first: the erased
// conversation's rows that were in flight do not land after the mutation
// and survive it, and the other rows of the INSERT are stored.
func TestEraseEndsTheOpenInsert(t *testing.T) {
	a, st := newArchive(t, sink.ArchiveOptions{BatchInterval: time.Hour})
	ctx := testContext(t)
	if err := a.AddMessages(ctx, manyRows("gone", 0, 1200)...); err != nil { // a block sent, the INSERT open
		t.Fatal(err)
	}
	if err := a.AddMessages(ctx, manyRows("kept", 0, 1200)...); err != nil {
		t.Fatal(err)
	}
	tables, err := a.ConversationTables(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.DeleteConversationRows(ctx, sink.EraseScope{Tables: tables, Conversations: []string{"gone"}}); err != nil {
		t.Fatal(err)
	}
	if err := a.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if n := messageCount(t, st, "gone"); n != 0 {
		t.Errorf("%d rows of the erased conversation survived the erasure", n)
	}
	if n := messageCount(t, st, "kept"); n != 1200 {
		t.Errorf("%d of 1200 rows of the other conversation stored", n)
	}
}
