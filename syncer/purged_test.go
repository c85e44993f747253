package syncer_test

import (
	"context"
	"testing"

	"github.com/cekat-archiver/cekat-archiver/syncer"
	"github.com/cekat-archiver/cekat-archiver/syncer/cekatsim"
)

// A conversation the retention purge deleted upstream is never polled
// again, even when named, and shows up neither as lagging nor as gone; the
// others go on as usual.
func TestPurgedConversationsAreLeftAlone(t *testing.T) {
	h := newMemHarness(t, cekatsim.Options{Seed: 5, MessageCounts: []int{30, 12, 4}},
		syncer.Options{PollIdleRuns: 1 << 20})
	ctx := context.Background()
	h.sync(ctx)
	ids := h.sim.ConversationIDs()
	states, err := h.archive.LoadStates(ctx)
	if err != nil {
		t.Fatal(err)
	}
	st := states[ids[0]]
	st.PurgedAt, st.Version = h.sim.Now(), st.Version+1
	if err := h.archive.AddState(ctx, st); err != nil {
		t.Fatal(err)
	}
	if err := h.archive.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	// Deleted upstream, as the purge does.
	h.sim.DeleteConversations(ids[0])

	lists := h.lists.Load()
	for _, only := range [][]string{nil, {ids[0]}} {
		sum := h.engine.Sync(ctx, only)
		if err := sum.Failure(); err != nil {
			t.Fatalf("sync: %v %v", err, sum.Errors)
		}
		if sum.Gone != 0 || len(sum.Errors) != 0 {
			t.Errorf("sync of %v: gone %d, errors %v; want none", only, sum.Gone, sum.Errors)
		}
	}
	if got := h.lists.Load() - lists; got != 2 {
		t.Errorf("%d list calls in the two runs, want 2 (the two conversations not purged, once)", got)
	}
	after, err := h.archive.LoadStates(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := after[ids[0]]; !got.PurgedAt.Equal(st.PurgedAt) || got.Gone || got.Version != st.Version {
		t.Errorf("state of the purged conversation changed: %+v", got)
	}
}
