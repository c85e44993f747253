package syncer_test

import (
	"context"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cekat-archiver/cekat-archiver/syncer"
	"github.com/cekat-archiver/cekat-archiver/syncer/cekatsim"
	"github.com/cekat-archiver/cekat-archiver/syncer/shard"
)

// Two shards share the stored webhook events: each acts on the events of
// its own conversations and leaves the others pending for their shard. An
// event that names only a message is resolved by that message's shard
// alone (one detail call, never two), and handed over, naming its
// conversation, when the conversation is the other shard's.
func TestShardsShareWebhookEvents(t *testing.T) {
	sim, err := cekatsim.New(cekatsim.Options{Seed: 33, MessageCounts: []int{3, 4, 5, 6, 7, 8, 9, 10}, Shape: cekatsim.ShapeDocumented,
		Start: time.Date(2026, 11, 2, 8, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	ids := sim.ConversationIDs()
	var shards [2]*memHarness
	for i := range shards {
		shards[i] = newMemHarnessFor(t, sim, syncer.Options{ConversationIDs: ids, Shard: shard.Shard{Index: i, Count: 2}})
		if sum := shards[i].sync(context.Background()); sum.Conversations != len(shard.Shard{Index: i, Count: 2}.Filter(ids)) {
			t.Fatalf("shard %d synced %d conversations", i, sum.Conversations)
		}
	}
	// A new message everywhere; one event names the conversation, another
	// only the message.
	sim.Advance(time.Minute)
	events := &memEvents{}
	newest := map[string]string{}
	for _, id := range ids {
		sim.AddMessages(id, 1)
	}
	for _, m := range sim.Truth() {
		newest[m.ConversationID] = m.ID // the truth lists each conversation oldest first
	}
	resolves := [2]int{} // message-only events each shard must resolve for the other
	for _, id := range ids {
		events.add("message.received", id, "")
		events.add("message.sent", "", newest[id])
		if by := shard.Of(newest[id], 2); by != shard.Of(id, 2) {
			resolves[by]++
		}
	}
	pending := func() (n int) {
		got, _ := events.PendingWebhookEvents(context.Background(), time.Time{}, 1000)
		return len(got)
	}
	var (
		mu     sync.Mutex
		listed [2]map[string]bool // conversations each shard listed messages of
	)
	var details [2]int64
	var acted [2]int
	for i, h := range shards {
		listed[i] = map[string]bool{}
		h.setHook(func(w http.ResponseWriter, r *http.Request) bool {
			if c := r.URL.Query().Get("conversation_id"); c != "" {
				mu.Lock()
				listed[i][c] = true
				mu.Unlock()
			}
			return false
		})
		details[i] = h.details.Load()
	}
	// Two rounds: what one shard hands over to the other after the other's
	// turn is taken up in the next.
	for round := range 2 {
		for i, h := range shards {
			out, err := h.engine.ApplyEvents(context.Background(), events)
			if err != nil || out.Sync.Failure() != nil {
				t.Fatalf("round %d, shard %d: %v %+v", round, i, err, out)
			}
			acted[i] += out.Events
			t.Logf("round %d, shard %d: acted on %d events, %d pending", round, i, out.Events, pending())
		}
	}
	if n := pending(); n != 0 {
		t.Errorf("%d events left pending after two rounds", n)
	}
	for i, h := range shards {
		own := shard.Shard{Index: i, Count: 2}.Filter(ids)
		if acted[i] != 2*len(own) {
			t.Errorf("shard %d acted on %d events; it owns %d conversations, with two events each", i, acted[i], len(own))
		}
		for c := range listed[i] {
			if !slices.Contains(own, c) {
				t.Errorf("shard %d listed messages of %s, shard %d's", i, c, shard.Of(c, 2))
			}
		}
		// One detail call per new message of its own (the answer that
		// resolves an event of its own enriches the message too), and one
		// per event it resolves for the other shard.
		if got, want := h.details.Load()-details[i], int64(len(own)+resolves[i]); got != want {
			t.Errorf("shard %d: %d detail calls, want %d to enrich and %d to resolve events for the other shard", i, got, len(own), resolves[i])
		}
	}
	for _, id := range ids {
		found := false
		for _, r := range shards[shard.Of(id, 2)].archive.Messages() {
			found = found || r.MessageID == newest[id]
		}
		if !found {
			t.Errorf("the new message of %s is not in its shard's archive", id)
		}
	}
}
