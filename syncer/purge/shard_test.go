package purge_test

import (
	"slices"
	"testing"

	"github.com/cekat-archiver/cekat-archiver/sink"
	"github.com/cekat-archiver/cekat-archiver/syncer/purge"
	"github.com/cekat-archiver/cekat-archiver/syncer/shard"
)

// Each shard purges its own conversations only, checking them upstream
// itself; together the shards purge exactly what one purge would.
func TestShardsPurgeTheirOwnConversations(t *testing.T) {
	t.Parallel()
	h := newHarness(t, []int{3, 5, 8, 2, 13, 4, 6, 9, 1, 7, 3, 5, 11, 2, 4, 6})
	h.sync()
	old, _ := h.oldAndNew()
	ids := h.sim.ConversationIDs()
	for i := range 3 {
		sh := shard.Shard{Index: i, Count: 3}
		listedBefore := map[string]int64{}
		for _, id := range ids {
			listedBefore[id] = h.listed(id)
		}
		sum := run(t, h.purger(false, func(o *purge.Options) { o.Shard = sh }), purge.RunOptions{Operator: "tester"})
		if err := sum.Failure(); err != nil {
			t.Fatal(err)
		}
		var deleted []string
		for _, d := range sum.Decisions {
			if !sh.Owns(d.ConversationID) {
				t.Errorf("shard %d decided about %s (%s), shard %d's", i, d.ConversationID, d.Event, shard.Of(d.ConversationID, 3))
			}
			if d.Event == sink.EventDeleted {
				deleted = append(deleted, d.ConversationID)
			}
		}
		slices.Sort(deleted)
		want := sh.Filter(old)
		slices.Sort(want)
		if !slices.Equal(deleted, want) {
			t.Errorf("shard %d deleted %v, want its conversations past retention %v", i, deleted, want)
		}
		for _, id := range ids {
			if h.listed(id) != listedBefore[id] && !sh.Owns(id) {
				t.Errorf("shard %d fetched %s again before deleting, shard %d's", i, id, shard.Of(id, 3))
			}
		}
	}
	deleted, _ := h.deletedUpstream()
	want := slices.Clone(old)
	slices.Sort(want)
	if !slices.Equal(deleted, want) {
		t.Errorf("the shards deleted %v upstream, want %v", deleted, want)
	}
}
