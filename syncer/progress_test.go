package syncer_test

import (
	"context"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/cekat-archiver/cekat-archiver/syncer"
	"github.com/cekat-archiver/cekat-archiver/syncer/cekat"
	"github.com/cekat-archiver/cekat-archiver/syncer/cekatsim"
	"github.com/cekat-archiver/cekat-archiver/syncer/memarchive"
)

// A run's progress tells the messages found of those archived, the
// backfill's conversations done of those to do, and the tracked
// conversations whose whole history is archived.
func TestProgressCountsWhatIsKnown(t *testing.T) {
	sim, client := newSimClient(t, cekatsim.Options{Seed: 26, Shape: cekatsim.ShapeReal, Conversations: 10, MeanMessages: 12,
		Start: time.Date(2026, 11, 2, 8, 0, 0, 0, time.UTC)}, cekat.Options{Location: jakarta(t)})
	e := syncer.New(client, memarchive.New(), syncer.Options{ConversationIDs: sim.ConversationIDs(), Now: sim.Now,
		Logger: zaptest.NewLogger(t), PageSize: 5})
	sum := e.Sync(context.Background(), nil)
	if sum.Failure() != nil || sum.LeftForLater != 0 {
		t.Fatalf("%v, %d left for later", sum.Failure(), sum.LeftForLater)
	}
	p := e.Progress()
	if p.Found.Load() != p.NewMessages.Load() || p.Found.Load() != int64(len(sim.Truth())) {
		t.Errorf("found %d, archived %d, upstream %d", p.Found.Load(), p.NewMessages.Load(), len(sim.Truth()))
	}
	if p.Backlog.Load() == 0 || p.BackfillDone.Load() != p.Backlog.Load() {
		t.Errorf("backfill: %d of %d conversations done; want all, and some", p.BackfillDone.Load(), p.Backlog.Load())
	}
	if p.Tracked.Load() != 10 || p.HistoryComplete.Load() != 10 {
		t.Errorf("history complete in %d of %d tracked, want 10 of 10", p.HistoryComplete.Load(), p.Tracked.Load())
	}
	// The next run starts from the stored states.
	if sum := e.Sync(context.Background(), nil); sum.Failure() != nil {
		t.Fatal(sum.Failure())
	}
	if p := e.Progress(); p.HistoryComplete.Load() != 10 || p.Found.Load() != 0 {
		t.Errorf("idle run: history complete in %d, %d found", p.HistoryComplete.Load(), p.Found.Load())
	}
}
