package purge_test

import (
	"context"
	"testing"

	"github.com/cekat-archiver/cekat-archiver/sink"
	"github.com/cekat-archiver/cekat-archiver/syncer"
	"github.com/cekat-archiver/cekat-archiver/syncer/cekatsim"
	"github.com/cekat-archiver/cekat-archiver/syncer/purge"
)

// TestPurgeAuditTrueUnderCutAnswers: with 30% of the API's answers cut in
// the middle (the simulator's FaultTruncate: the request is handled, its
// answer lost), purge runs until nothing is left, and then no delete was
// sent twice, and the audit says exactly what happened upstream: every
// conversation the purge deleted has one `deleted` row (never `gone`),
// and no other conversation has one.
func TestPurgeAuditTrueUnderCutAnswers(t *testing.T) {
	t.Parallel()
	counts := []int{3, 5, 8, 2, 13, 4, 6, 9, 1, 7, 3, 5, 11, 2, 4, 6, 3, 8, 2, 5, 7, 4, 6, 2}
	h := newHarness(t, counts, func(o *cekatsim.Options) { o.FaultTruncate = 0.3 })
	// The archive first: cut list answers fail some conversations of a
	// run, which the next run takes up again.
	for i := 0; ; i++ {
		sum := h.engine.SyncWith(context.Background(), syncer.SyncOptions{All: true})
		if sum.Failure() == nil && sum.EnrichFailed == 0 {
			break
		}
		if i == 20 {
			t.Fatalf("sync still failing: %v", sum.Failure())
		}
	}
	old, _ := h.oldAndNew()
	var cut int
	for i := 0; i < 30; i++ {
		sum := run(t, h.purger(false, func(o *purge.Options) { o.Runs = h.engine }), purge.RunOptions{})
		if sum.Err != nil {
			t.Fatalf("purge run %d: %v", i, sum.Err)
		}
		if sum.Deleted+sum.Failed+sum.Resolved+sum.LeftForLater+sum.SkippedBy[purge.SkipPrecheckFailed] == 0 {
			break
		}
	}
	deleted, askedWhenGone := h.deletedUpstream()
	if askedWhenGone > 0 {
		t.Errorf("%d ids sent in a delete after they were deleted", askedWhenGone)
	}
	byUs := map[string]int{}
	for _, id := range deleted {
		byUs[id]++
	}
	untrue := 0
	deletedRows := map[string]int{}
	for _, r := range h.audit("") {
		switch r.Event {
		case sink.EventGone:
			if byUs[r.ConversationID] > 0 {
				untrue++
				t.Errorf("%s recorded gone (%s) by run %s, but a purge request deleted it", r.ConversationID, r.Reason, r.RunID)
			}
		case sink.EventDeleted:
			deletedRows[r.ConversationID]++
			if r.APIAnswer != "" {
				cut++ // deleted by a call whose answer was lost
			}
			if byUs[r.ConversationID] == 0 {
				untrue++
				t.Errorf("%s recorded deleted by run %s, but no request deleted it", r.ConversationID, r.RunID)
			}
		}
	}
	for id, n := range byUs {
		if n > 1 {
			t.Errorf("%s deleted by %d requests", id, n)
		}
		if deletedRows[id] != 1 {
			untrue++
			t.Errorf("%s deleted upstream; %d deleted rows in the audit, want 1", id, deletedRows[id])
		}
	}
	// Every request, the purges' too, is in sync_runs, which the daily
	// budget reads.
	var recorded, purgeRuns int
	for _, r := range h.archive.Runs() {
		recorded += int(r.Requests)
		if r.Kind == sink.RunPurge {
			purgeRuns++
		}
	}
	if served := h.sim.Counts().Total; recorded != served || purgeRuns == 0 {
		t.Errorf("sync_runs records %d requests in all (%d purge runs); the API received %d", recorded, purgeRuns, served)
	}
	t.Logf("%d conversations past retention, %d deleted upstream, %d deleted by a call whose answer was cut; untrue audit rows: %d",
		len(old), len(deleted), cut, untrue)
	if len(deleted) < len(old)/2 || cut == 0 {
		t.Errorf("the test proves little: %d of %d deleted, %d cut delete answers", len(deleted), len(old), cut)
	}
}
