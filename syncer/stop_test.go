package syncer_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/cekat-archiver/cekat-archiver/sink"
	"github.com/cekat-archiver/cekat-archiver/syncer"
	"github.com/cekat-archiver/cekat-archiver/syncer/cekat"
	"github.com/cekat-archiver/cekat-archiver/syncer/cekatsim"
	"github.com/cekat-archiver/cekat-archiver/syncer/memarchive"
)

// readStopArchive is the archive in memory with reads that honour their
// context as ClickHouse's do (they fail with its cause), and that stop the
// run themselves at the nth lookup of archived ids, so that the stop lands
// inside an archive read.
type readStopArchive struct {
	*memarchive.Archive
	lookups atomic.Int64
	stopAt  atomic.Int64
	stop    atomic.Pointer[context.CancelCauseFunc]
}

var errSignal = errors.New("terminated signal received")

func (a *readStopArchive) Archived(ctx context.Context, conv string, ids []string) (map[string]sink.ArchivedMessage, error) {
	if a.lookups.Add(1) == a.stopAt.Load() {
		(*a.stop.Load())(errSignal)
	}
	if ctx.Err() != nil {
		return nil, fmt.Errorf("query archived messages: %w", context.Cause(ctx))
	}
	return a.Archive.Archived(ctx, conv, ids)
}

func (a *readStopArchive) CurrentMessages(ctx context.Context, conv string, ids []string) ([]sink.MessageRow, error) {
	if ctx.Err() != nil {
		return nil, fmt.Errorf("query archived messages: %w", context.Cause(ctx))
	}
	return a.Archive.CurrentMessages(ctx, conv, ids)
}

// A stop that cuts an archive read short is a stop, not a failure of the
// archive: the run writes what it has, says it was stopped and is recorded
// so, and the runs after it lose nothing.
func TestStopDuringAnArchiveReadIsNotAFailure(t *testing.T) {
	sim, client := newSimClient(t, cekatsim.Options{Seed: 11, MessageCounts: []int{150, 30, 0, 260},
		Start: time.Date(2026, 11, 2, 8, 0, 0, 0, time.UTC)},
		cekat.Options{MaxRetries: 3, BackoffInitial: time.Millisecond, BackoffMax: 5 * time.Millisecond, Location: time.UTC})
	archive := &readStopArchive{Archive: memarchive.New()}
	engine := syncer.New(client, archive, syncer.Options{ConversationIDs: sim.ConversationIDs(), Now: sim.Now,
		RecheckWindow: 7 * 24 * time.Hour, PollIdleRuns: 1 << 20, Logger: zaptest.NewLogger(t)})

	stops := 0
	for i := range 6 {
		ctx, cancel := context.WithCancelCause(context.Background())
		archive.stop.Store(&cancel)
		archive.lookups.Store(0)
		archive.stopAt.Store(int64(1 + i%3))
		sum := engine.Sync(ctx, nil)
		stopped := ctx.Err() != nil
		cancel(nil)
		if !stopped {
			continue
		}
		stops++
		if err := sum.Failure(); err != nil || !sum.Stopped {
			t.Errorf("run %d, stopped during a lookup of archived ids: failure %v, stopped %v (%q)", i+1, err, sum.Stopped, sum.StoppedBy)
		}
	}
	if stops == 0 {
		t.Fatal("no run was stopped during an archive read")
	}
	archive.stopAt.Store(0)
	if sum := engine.Sync(context.Background(), nil); sum.Failure() != nil || sum.Stopped {
		t.Fatalf("the clean run: failure %v, stopped %v", sum.Failure(), sum.Stopped)
	}

	want := map[string]bool{}
	for _, m := range sim.Truth() {
		if !m.Malformed {
			want[m.ConversationID+"/"+m.ID] = true
		}
	}
	got := archive.Messages()
	for _, r := range got {
		delete(want, r.ConversationID+"/"+r.MessageID)
	}
	if len(want) > 0 {
		t.Errorf("%d messages missing after the stopped runs and a clean one (%d archived)", len(want), len(got))
	}
	var results []string
	for _, run := range archive.Runs() {
		results = append(results, run.Result)
		if run.Result == "stopped" && run.Error != "stopped: "+errSignal.Error() {
			t.Errorf("stopped run %s recorded with %q", run.RunID, run.Error)
		}
	}
	if n := len(results); n != 7 || results[n-1] != "ok" {
		t.Errorf("runs recorded: %v, want %d stopped and the last ok", results, stops)
	}
	for _, r := range results[:len(results)-1] {
		if r != "stopped" && r != "ok" {
			t.Errorf("runs recorded: %v: a stopped run recorded as %s", results, r)
		}
	}
}
