package purge_test

// The retention purge and erasure against the simulator over real HTTP and
// an archive from archivetest.Open: in memory, or ClickHouse in the
// integration run.

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/zap/zaptest"

	"github.com/cekat-archiver/cekat-archiver/sink"
	"github.com/cekat-archiver/cekat-archiver/syncer"
	"github.com/cekat-archiver/cekat-archiver/syncer/archivetest"
	"github.com/cekat-archiver/cekat-archiver/syncer/cekat"
	"github.com/cekat-archiver/cekat-archiver/syncer/cekatsim"
	"github.com/cekat-archiver/cekat-archiver/syncer/purge"
)

// retention of the tests: the simulator's conversations end from a minute
// to 60 days before its start, the wall clock.
const retention = 10 * 24 * time.Hour

type harness struct {
	t       *testing.T
	sim     *cekatsim.Server
	archive archivetest.Archive
	engine  *syncer.Engine
	client  *cekat.Client
	hook    atomic.Pointer[func(r *http.Request)]
	lists   atomic.Int64
	listsOf sync.Map // conversation id -> *atomic.Int64
}

// listed is how many list calls asked for the conversation.
func (h *harness) listed(id string) int64 {
	n, _ := h.listsOf.LoadOrStore(id, new(atomic.Int64))
	return n.(*atomic.Int64).Load()
}

func newHarness(t *testing.T, counts []int, change ...func(*cekatsim.Options)) *harness {
	t.Helper()
	h := &harness{t: t}
	so := cekatsim.Options{Seed: 11, MessageCounts: counts, Start: time.Now().UTC().Truncate(time.Second)}
	for _, f := range change {
		f(&so)
	}
	sim, err := cekatsim.New(so)
	if err != nil {
		t.Fatal(err)
	}
	h.sim = sim
	api := sim.Handler()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/messages" {
			h.lists.Add(1)
			n, _ := h.listsOf.LoadOrStore(r.URL.Query().Get("conversation_id"), new(atomic.Int64))
			n.(*atomic.Int64).Add(1)
			if hook := h.hook.Load(); hook != nil {
				(*hook)(r)
			}
		}
		api.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	bo := httptest.NewServer(sim.BackofficeHandler())
	t.Cleanup(bo.Close)

	h.archive = archivetest.Open(t)
	h.client, err = cekat.New(cekat.Options{BaseURL: srv.URL, APIKey: cekatsim.DefaultAPIKey, BackofficeURL: bo.URL,
		BackofficeToken: cekatsim.DefaultBackofficeToken, BackofficeAuth: cekat.BackofficeBearer, MaxRetries: 2,
		BackoffInitial: time.Millisecond, BackoffMax: 5 * time.Millisecond, ThrottleWait: 10 * time.Millisecond,
		OnRequest: syncer.NewRequestStats(nil).Observe, Limiter: syncer.RecordingLimiter(nil)})
	if err != nil {
		t.Fatal(err)
	}
	h.engine = syncer.New(h.client, h.archive, syncer.Options{ConversationIDs: sim.ConversationIDs(), Logger: zaptest.NewLogger(t)})
	return h
}

func (h *harness) sync(ids ...string) {
	h.t.Helper()
	sum := h.engine.SyncWith(context.Background(), syncer.SyncOptions{Only: ids, All: len(ids) == 0})
	if err := sum.Failure(); err != nil {
		h.t.Fatalf("sync: %v %v", err, sum.Errors)
	}
}

// SyncConversations is the Syncer the purge calls for conversations found
// with new messages.
func (h *harness) SyncConversations(ctx context.Context, ids []string) error {
	return h.engine.Sync(ctx, ids).Failure()
}

func (h *harness) purger(dryRun bool, change ...func(*purge.Options)) *purge.Purger {
	h.t.Helper()
	o := purge.Options{PurgeAfter: retention, BatchSize: 2, DryRun: dryRun, Syncer: h, Logger: zaptest.NewLogger(h.t)}
	for _, f := range change {
		f(&o)
	}
	p, err := purge.New(h.client, h.archive, o)
	if err != nil {
		h.t.Fatal(err)
	}
	return p
}

// oldAndNew splits the simulator's conversations with messages into those
// past retention and the others, each in creation order.
func (h *harness) oldAndNew() (old, recent []string) {
	h.t.Helper()
	newest := map[string]time.Time{}
	for _, m := range h.sim.Truth() {
		if m.Timestamp.After(newest[m.ConversationID]) {
			newest[m.ConversationID] = m.Timestamp
		}
	}
	cutoff := time.Now().Add(-retention)
	for _, id := range h.sim.ConversationIDs() {
		switch t, ok := newest[id]; {
		case !ok:
		case t.Before(cutoff.Add(-time.Hour)):
			old = append(old, id)
		case t.After(cutoff.Add(time.Hour)):
			recent = append(recent, id)
		}
	}
	if len(old) < 5 || len(recent) < 2 {
		h.t.Fatalf("the simulator's seed gives %d conversations past retention and %d recent; the test needs 5 and 2", len(old), len(recent))
	}
	return old, recent
}

func (h *harness) states() map[string]sink.State {
	h.t.Helper()
	st, err := h.archive.LoadStates(context.Background())
	if err != nil {
		h.t.Fatal(err)
	}
	return st
}

// setState writes a new version of a conversation's state.
func (h *harness) setState(id string, change func(*sink.State)) {
	h.t.Helper()
	st := h.states()[id]
	change(&st)
	st.Version++
	ctx := context.Background()
	if err := h.archive.AddState(ctx, st); err != nil {
		h.t.Fatal(err)
	}
	if err := h.archive.Flush(ctx); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) audit(conv string) []sink.AuditRow {
	h.t.Helper()
	rows, err := h.archive.AuditRows(context.Background(), conv)
	if err != nil {
		h.t.Fatal(err)
	}
	return rows
}

// events is the audit of a run as conversation -> events, sorted.
func (h *harness) events(runID string) map[string][]string {
	out := map[string][]string{}
	for _, r := range h.audit("") {
		if r.RunID == runID {
			out[r.ConversationID] = append(out[r.ConversationID], r.Event)
		}
	}
	for _, ev := range out {
		sort.Strings(ev)
	}
	return out
}

// deletedUpstream is every id the simulator's delete endpoint removed, and
// how often each was asked for while already deleted.
func (h *harness) deletedUpstream() (deleted []string, askedWhenGone int) {
	gone := map[string]bool{}
	for _, d := range h.sim.Deletions() {
		for _, id := range d.Asked {
			if gone[id] {
				askedWhenGone++
			}
		}
		for _, id := range d.Deleted {
			gone[id] = true
			deleted = append(deleted, id)
		}
	}
	sort.Strings(deleted)
	return deleted, askedWhenGone
}

// rowCounts counts the rows of the simulator's conversations in every table
// that holds conversations.
func (h *harness) rowCounts() map[string]uint64 {
	h.t.Helper()
	ctx := context.Background()
	tables, err := h.archive.ConversationTables(ctx)
	if err != nil {
		h.t.Fatal(err)
	}
	rows, err := h.archive.ConversationRows(ctx, sink.EraseScope{Tables: tables, Conversations: h.sim.ConversationIDs()})
	if err != nil {
		h.t.Fatal(err)
	}
	out := map[string]uint64{}
	for _, byTable := range rows {
		for table, n := range byTable {
			out[table] += n
		}
	}
	return out
}

func run(t *testing.T, p *purge.Purger, ro purge.RunOptions) purge.Summary {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return p.Run(ctx, ro)
}

func TestDryRunDeletesNothing(t *testing.T) {
	t.Parallel()
	h := newHarness(t, []int{3, 5, 8, 2, 13, 4, 6, 9, 1, 7, 3, 5, 11, 2, 4, 6})
	h.sync()
	old, _ := h.oldAndNew()
	h.setState(old[0], func(st *sink.State) { st.BackfillComplete = false })
	rowsBefore, statesBefore := h.rowCounts(), h.states()
	lists := h.lists.Load()

	sum := run(t, h.purger(true), purge.RunOptions{Operator: "tester", Reason: "preview"})
	if err := sum.Failure(); err != nil {
		t.Fatal(err)
	}
	if !sum.DryRun || sum.WouldDelete != len(old)-1 || sum.Deleted != 0 || sum.SkippedBy[purge.SkipBackfill] != 1 {
		t.Errorf("dry run summary: %+v; want %d would_delete and %s skipped", sum, len(old)-1, old[0])
	}
	if d := h.sim.Deletions(); len(d) != 0 {
		t.Errorf("a dry run called the delete endpoint: %+v", d)
	}
	if n := h.lists.Load() - lists; n != 0 {
		t.Errorf("a dry run made %d list calls", n)
	}
	if diff := cmp.Diff(rowsBefore, h.rowCounts()); diff != "" {
		t.Errorf("a dry run changed the archive's rows (-before +after):\n%s", diff)
	}
	if diff := cmp.Diff(statesBefore, h.states()); diff != "" {
		t.Errorf("a dry run changed sync states (-before +after):\n%s", diff)
	}
	want := map[string][]string{old[0]: {sink.EventSkipped}}
	for _, id := range old[1:] {
		want[id] = []string{sink.EventWouldDelete}
	}
	if diff := cmp.Diff(want, h.events(sum.RunID)); diff != "" {
		t.Errorf("dry run audit (-want +got):\n%s", diff)
	}
	for _, r := range h.audit("") {
		if !r.DryRun || r.Operator != "tester" || r.OperatorReason != "preview" || r.ArchivedMessages == 0 || r.NewestSentAt.IsZero() {
			t.Errorf("audit row of a dry run: %+v", r)
		}
	}
}

// A real run deletes exactly the conversations past retention that are
// completely archived: not one with a backfill left, gaps, or a message
// unenriched for a reason that may pass, nor one that receives a message
// after the run planned it; that one is synced instead. The archive keeps
// every row; purged conversations are not polled again.
func TestPurgeDeletesOnlyCompleteOldConversations(t *testing.T) {
	t.Parallel()
	h := newHarness(t, []int{3, 5, 8, 2, 13, 4, 6, 9, 1, 7, 3, 5, 11, 2, 4, 6})
	h.sync()
	old, recent := h.oldAndNew()
	noBackfill, gaps, unenriched, active := old[0], old[1], old[2], old[3]
	h.setState(noBackfill, func(st *sink.State) { st.BackfillComplete = false })
	h.setState(gaps, func(st *sink.State) { st.Gaps = []sink.Gap{{Before: st.HeadMessageID}} })
	ctx := context.Background()
	var msgs []sink.MessageRow
	for _, r := range h.archive.Messages() {
		if r.ConversationID == unenriched {
			msgs = append(msgs, r)
		}
	}
	broken := msgs[0]
	broken.Enriched, broken.EnrichError, broken.Version = false, "transient: HTTP 503", broken.Version+1
	if err := h.archive.AddMessages(ctx, broken); err != nil {
		t.Fatal(err)
	}
	if err := h.archive.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	// A message arrives in one of them after planning, before its delete.
	h.hook.Store(ptr(func(r *http.Request) {
		if r.URL.Query().Get("conversation_id") == active {
			h.sim.AddMessages(active, 1)
			h.hook.Store(nil)
		}
	}))
	rowsBefore := h.rowCounts()

	sum := run(t, h.purger(false), purge.RunOptions{Operator: "tester"})
	if err := sum.Failure(); err != nil {
		t.Fatalf("purge: %v", err)
	}
	want := slices.Clone(old[4:])
	sort.Strings(want)
	deleted, twice := h.deletedUpstream()
	if diff := cmp.Diff(want, deleted); diff != "" || twice != 0 {
		t.Errorf("deleted upstream (-want +got), %d asked again when gone:\n%s", twice, diff)
	}
	if sum.Deleted != len(want) || sum.Synced != 1 || sum.SkippedBy[purge.SkipNewMessages] != 1 ||
		sum.SkippedBy[purge.SkipBackfill] != 1 || sum.SkippedBy[purge.SkipGaps] != 1 || sum.SkippedBy[purge.SkipUnenriched] != 1 {
		t.Errorf("summary: %+v", sum)
	}
	wantEvents := map[string][]string{noBackfill: {sink.EventSkipped}, gaps: {sink.EventSkipped},
		unenriched: {sink.EventSkipped}, active: {sink.EventSkipped}}
	for _, id := range want {
		wantEvents[id] = []string{sink.EventDeleted, sink.EventIntent}
	}
	if diff := cmp.Diff(wantEvents, h.events(sum.RunID)); diff != "" {
		t.Errorf("audit (-want +got):\n%s", diff)
	}
	for id, why := range map[string]string{noBackfill: purge.SkipBackfill, gaps: purge.SkipGaps, unenriched: purge.SkipUnenriched,
		active: purge.SkipNewMessages} {
		if rows := h.audit(id); len(rows) != 1 || !strings.HasPrefix(rows[0].Reason, why+":") {
			t.Errorf("audit of %s: %+v; want skipped for %s", id, rows, why)
		}
	}
	// The archive keeps everything it had, plus the new message of the
	// conversation synced instead.
	after := h.rowCounts()
	if after["messages"] != rowsBefore["messages"]+1 {
		t.Errorf("messages: %d before, %d after; want one more (the one synced instead)", rowsBefore["messages"], after["messages"])
	}
	states := h.states()
	for _, id := range h.sim.ConversationIDs() {
		if purged := !states[id].PurgedAt.IsZero(); purged != slices.Contains(want, id) {
			t.Errorf("%s purged: %v", id, purged)
		}
	}
	for _, id := range recent {
		if slices.Contains(deleted, id) {
			t.Errorf("recent conversation %s deleted", id)
		}
	}

	// A second purge has nothing more to delete, and purged conversations
	// are left alone by the next sync.
	again := run(t, h.purger(false), purge.RunOptions{})
	if again.Deleted != 0 || again.Skipped != 3 || again.Failure() != nil {
		t.Errorf("second purge: %+v; want the three incomplete ones skipped again, nothing deleted", again)
	}
	if d, _ := h.deletedUpstream(); len(d) != len(want) {
		t.Errorf("second purge deleted more upstream: %v", d)
	}
	listed := map[string]int64{}
	for _, id := range want {
		listed[id] = h.listed(id)
	}
	next := h.engine.Sync(ctx, nil)
	if next.Gone != 0 || next.Failed != 0 || len(next.Errors) != 0 {
		t.Errorf("sync after the purge: gone %d, failed %d, errors %v", next.Gone, next.Failed, next.Errors)
	}
	for _, id := range want {
		if n := h.listed(id) - listed[id]; n != 0 {
			t.Errorf("purged conversation %s listed %d times by the next sync", id, n)
		}
	}
	for _, id := range recent {
		if h.listed(id) == 0 {
			t.Errorf("recent conversation %s never listed", id)
		}
	}
}

func ptr[T any](v T) *T { return &v }

// The backoffice's answers: a partial delete is read per id and the rest is
// retried by a later run; 429 and 5xx are retried within the budget; 401
// stops the purge with a clear message; nothing is deleted twice.
func TestPurgeBackofficeFaults(t *testing.T) {
	t.Parallel()
	h := newHarness(t, []int{3, 5, 8, 2, 13, 4, 6, 9, 1, 7, 3, 5, 11, 2, 4, 6})
	h.sync()
	old, _ := h.oldAndNew()
	one := func(change ...func(*purge.Options)) purge.Summary {
		return run(t, h.purger(false, append(change, func(o *purge.Options) { o.MaxPerRun = 2; o.BatchSize = 2 })...), purge.RunOptions{})
	}

	// 401: nothing deleted, the run stops at once and says why.
	h.sim.QueueDeleteFaults(cekatsim.DeleteFault{Status: http.StatusUnauthorized})
	sum := one()
	if err := sum.Failure(); err == nil || !strings.Contains(err.Error(), "backoffice refused the token") {
		t.Errorf("purge with a refused token: %v; want it to name the backoffice token", err)
	}
	if sum.Deleted != 0 || sum.Failed != 2 {
		t.Errorf("refused: %+v", sum)
	}
	refusedAudit := h.events(sum.RunID)
	for id, ev := range refusedAudit {
		if !cmp.Equal(ev, []string{sink.EventFailed, sink.EventIntent}) {
			t.Errorf("audit of %s after a 401: %v", id, ev)
		}
	}
	if len(refusedAudit) != 2 {
		t.Errorf("audit after a 401: %v; want the batch of two", refusedAudit)
	}

	// Partial: one of two deleted; the other is still upstream and failed.
	h.sim.QueueDeleteFaults(cekatsim.DeleteFault{Keep: 1})
	sum = one()
	if sum.Deleted != 1 || sum.Failed != 1 {
		t.Errorf("partial delete: %+v", sum)
	}
	// 429: refused before it was handled, so sent again when the server
	// says; then done.
	h.sim.QueueDeleteFaults(cekatsim.DeleteFault{Status: http.StatusTooManyRequests, RetryAfter: time.Second})
	sum = one()
	if sum.Deleted != 2 || sum.Failed != 0 {
		t.Errorf("429 retried: %+v", sum)
	}
	// 5xx: the request reached the server, so it is never sent again; the
	// conversations, still upstream, failed, and the rest waits for a
	// later run.
	h.sim.QueueDeleteFaults(cekatsim.DeleteFault{Status: 502})
	sum = one(func(o *purge.Options) {})
	if sum.Deleted != 0 || sum.Failed != 2 || sum.StoppedBy == "" {
		t.Errorf("5xx: %+v", sum)
	}
	// Without faults, the rest goes.
	for range 10 {
		if s := one(); s.Deleted == 0 && s.Failed == 0 {
			break
		}
	}
	want := slices.Clone(old)
	sort.Strings(want)
	deleted, twice := h.deletedUpstream()
	if diff := cmp.Diff(want, deleted); diff != "" || twice != 0 {
		t.Errorf("deleted upstream (-want +got), %d asked again when gone:\n%s", twice, diff)
	}
	for _, id := range old {
		if h.states()[id].PurgedAt.IsZero() {
			t.Errorf("%s deleted but not marked purged", id)
		}
		var deletedRows int
		for _, r := range h.audit(id) {
			if r.Event == sink.EventDeleted {
				deletedRows++
			}
		}
		if deletedRows != 1 {
			t.Errorf("%s: %d deleted rows in the audit, want 1: %+v", id, deletedRows, h.audit(id))
		}
	}
}

// A crash between a delete call and its outcome leaves an intent; the next
// run asks upstream and writes the outcome under the intent's run id: done
// if the conversation is gone, else it plans it again. Nothing is deleted
// twice.
func TestIntentsOfAnInterruptedRunAreConfirmed(t *testing.T) {
	t.Parallel()
	h := newHarness(t, []int{3, 5, 8, 2, 13, 4, 6, 9, 1, 7, 3, 5, 11, 2, 4, 6})
	h.sync()
	old, _ := h.oldAndNew()
	ctx := context.Background()
	at := time.Now().UTC()
	if err := h.archive.AddAudit(ctx,
		sink.AuditRow{At: at, RunID: "crashed", Action: sink.AuditPurge, Event: sink.EventIntent, ConversationID: old[0], Operator: "cron"},
		sink.AuditRow{At: at, RunID: "crashed", Action: sink.AuditPurge, Event: sink.EventIntent, ConversationID: old[1], Operator: "cron"},
	); err != nil {
		t.Fatal(err)
	}
	// The crashed run's call deleted old[0]; old[1]'s was never sent.
	if _, err := h.client.DeleteConversations(ctx, old[:1]); err != nil {
		t.Fatal(err)
	}

	sum := run(t, h.purger(false, func(o *purge.Options) { o.MaxPerRun = 1 }), purge.RunOptions{})
	if err := sum.Failure(); err != nil {
		t.Fatal(err)
	}
	if sum.Resolved != 2 {
		t.Errorf("resolved %d intents, want 2", sum.Resolved)
	}
	crashed := h.events("crashed")
	if !cmp.Equal(crashed[old[0]], []string{sink.EventDeleted, sink.EventIntent}) ||
		!cmp.Equal(crashed[old[1]], []string{sink.EventFailed, sink.EventIntent}) {
		t.Errorf("outcomes of the crashed run: %v", crashed)
	}
	for _, r := range h.audit(old[0]) {
		if r.RunID == "crashed" && r.Operator != "cron" {
			t.Errorf("outcome written without the intent's operator: %+v", r)
		}
	}
	if h.states()[old[0]].PurgedAt.IsZero() {
		t.Error("the confirmed conversation is not marked purged")
	}
	// old[1] is still there: this run (one a run) deletes it.
	if ev := h.events(sum.RunID)[old[1]]; !cmp.Equal(ev, []string{sink.EventDeleted, sink.EventIntent}) {
		t.Errorf("this run's audit of the conversation still upstream: %v", ev)
	}
	deleted, twice := h.deletedUpstream()
	if want := []string{old[0], old[1]}; !cmp.Equal(deleted, want, cmpSorted) || twice != 0 {
		t.Errorf("deleted upstream %v (%d asked again when gone), want %v", deleted, twice, want)
	}
}

var cmpSorted = cmp.Transformer("sorted", func(in []string) []string {
	out := slices.Clone(in)
	sort.Strings(out)
	return out
})

// erase leaves no row of the conversation in any table, deletes it
// upstream, and its audit rows hold no content; without --yes it changes
// nothing.
func TestEraseLeavesNoRow(t *testing.T) {
	t.Parallel()
	h := newHarness(t, []int{6, 9, 4})
	h.sync()
	ctx := context.Background()
	ids := h.sim.ConversationIDs()
	target, other := ids[0], ids[1]
	now := time.Now().UTC()
	if _, err := h.archive.AddQuarantine(ctx, sink.QuarantineRow{ReceivedAt: now, ConversationID: target, Raw: `{"text":"private"}`}); err != nil {
		t.Fatal(err)
	}
	if err := h.archive.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	h.archive.Track(target)
	var phone string
	var contents []string
	for _, m := range h.sim.Truth() {
		if m.ConversationID == target {
			contents = append(contents, m.Text, m.Caption, m.SenderName)
			if m.SenderPhone != "" {
				phone = m.SenderPhone
			}
		}
	}
	if phone == "" {
		t.Fatal("no inbound message in the target conversation")
	}
	before := h.rowCounts()
	p := h.purger(false)

	preview := p.Erase(ctx, h.archive, purge.EraseRequest{Phones: []string{phone}})
	if err := preview.Failure(); err != nil || preview.Done || len(preview.Conversations) != 1 ||
		preview.Conversations[0].ConversationID != target || preview.Conversations[0].Rows["messages"] == 0 {
		t.Fatalf("preview by phone: %+v, %v", preview, err)
	}
	if diff := cmp.Diff(before, h.rowCounts()); diff != "" || len(h.sim.Deletions()) != 0 || len(h.audit("")) != 0 {
		t.Fatalf("erase without yes changed something:\n%s", diff)
	}

	res := p.Erase(ctx, h.archive, purge.EraseRequest{Phones: []string{phone}, Yes: true, Operator: "dpo", Reason: "ticket 42"})
	if err := res.Failure(); err != nil {
		t.Fatalf("erase: %v", err)
	}
	if c := res.Conversations[0]; !c.Erased || c.Upstream != "deleted" {
		t.Errorf("erased: %+v", c)
	}
	tables, err := h.archive.ConversationTables(ctx)
	if err != nil {
		t.Fatal(err)
	}
	left, err := h.archive.ConversationRows(ctx, sink.EraseScope{Tables: tables, Conversations: []string{target, other}})
	if err != nil {
		t.Fatal(err)
	}
	if len(left[target]) != 0 {
		t.Errorf("rows left of the erased conversation: %v", left[target])
	}
	if left[other]["messages"] == 0 || left[other]["sync_state"] == 0 {
		t.Errorf("the other conversation lost rows: %v", left[other])
	}
	if deleted, _ := h.deletedUpstream(); !cmp.Equal(deleted, []string{target}) {
		t.Errorf("deleted upstream: %v", deleted)
	}
	audit := h.audit(target)
	if ev := h.events(res.RunID)[target]; !cmp.Equal(ev, []string{sink.EventErased, sink.EventIntent}) {
		t.Errorf("erase audit: %v", ev)
	}
	for _, r := range audit {
		if r.Action != sink.AuditErase || r.Operator != "dpo" || r.OperatorReason != "ticket 42" {
			t.Errorf("erase audit row: %+v", r)
		}
		all := strings.Join([]string{r.RunID, r.ConversationID, r.Reason, r.APIAnswer, r.Operator, r.OperatorReason}, "\x00")
		for _, c := range append(contents, phone, sink.PhoneDigits(phone), "private") {
			if c != "" && strings.Contains(all, c) {
				t.Errorf("erase audit row holds content %q: %+v", c, r)
			}
		}
	}
	if len(res.PhoneRowsLeft) != 0 {
		t.Errorf("rows still naming the number: %v", res.PhoneRowsLeft)
	}
	// Erasing it again: already gone upstream, nothing left; still recorded.
	again := p.Erase(ctx, h.archive, purge.EraseRequest{ConversationIDs: []string{target}, Yes: true})
	if err := again.Failure(); err != nil || again.Conversations[0].Upstream != "already gone" || !again.Conversations[0].Erased {
		t.Errorf("erasing again: %+v, %v", again, err)
	}
}

// An id no table holds and the API does not know (a typo) is reported as
// such, fails, and sends no mutation.
func TestEraseOfAnUnknownIDFailsWithoutMutation(t *testing.T) {
	t.Parallel()
	h := newHarness(t, []int{3, 4})
	h.sync()
	ctx := context.Background()
	// Migrations of a current release change column types by mutations of their own.
	mutations := func() uint64 {
		t.Helper()
		var n uint64
		if ch, ok := h.archive.(*archivetest.ClickHouseArchive); ok {
			store := ch.Store()
			if err := store.Conn().QueryRow(ctx, "SELECT count() FROM system.mutations WHERE database = ?", store.Database()).Scan(&n); err != nil {
				t.Fatal(err)
			}
		}
		return n
	}
	before := mutations()
	res := h.purger(false).Erase(ctx, h.archive, purge.EraseRequest{ConversationIDs: []string{"no-such-conversation"}, Yes: true})
	if err := res.Failure(); err == nil || len(res.Conversations) != 1 || res.Conversations[0].Erased ||
		!strings.Contains(res.Conversations[0].Err.Error(), "no such conversation") {
		t.Errorf("erase of an unknown id: %+v, %v; want it reported as no such conversation", res, err)
	}
	if n := mutations() - before; n != 0 {
		t.Errorf("%d mutations sent for an unknown id", n)
	}
	if len(h.sim.Deletions()) != 0 {
		t.Errorf("delete calls upstream: %v", h.sim.Deletions())
	}
}

// Ids unknown or already deleted are not errors: one deleted by someone
// else between its check and the delete call is recorded as gone, whether
// the backoffice leaves it out of its answer or answers 404.
func TestPurgeAlreadyDeletedIsNotAnError(t *testing.T) {
	t.Parallel()
	h := newHarness(t, []int{3, 5, 8, 2, 13, 4, 6, 9, 1, 7, 3, 5, 11, 2, 4, 6})
	h.sync()
	h.oldAndNew()
	for _, fault := range []*cekatsim.DeleteFault{nil, {Status: http.StatusNotFound}} {
		// When the second conversation of the batch is checked, the first
		// one is deleted in the dashboard.
		var first string
		h.hook.Store(ptr(func(r *http.Request) {
			conv := r.URL.Query().Get("conversation_id")
			switch {
			case first == "":
				first = conv
			case conv != first:
				h.sim.DeleteConversations(first)
				h.hook.Store(nil)
			}
		}))
		if fault != nil {
			h.sim.QueueDeleteFaults(*fault)
		}
		sum := run(t, h.purger(false, func(o *purge.Options) { o.MaxPerRun, o.BatchSize = 2, 2 }), purge.RunOptions{})
		ev := h.events(sum.RunID)
		if !cmp.Equal(ev[first], []string{sink.EventGone, sink.EventIntent}) {
			t.Errorf("fault %v: audit of the conversation deleted by someone else: %v", fault, ev[first])
		}
		if h.states()[first].PurgedAt.IsZero() {
			t.Errorf("fault %v: %s gone but not marked purged", fault, first)
		}
		if fault == nil && (sum.Failure() != nil || sum.Deleted != 1 || sum.Gone != 1) {
			t.Errorf("someone else deleted one: %+v", sum)
		}
		if fault != nil && (sum.Gone != 1 || sum.Failed != 1) {
			t.Errorf("404 answer: %+v; want one gone, the other failed (still upstream)", sum)
		}
	}
}

// A delete call cut by a crash may still be applied upstream after the
// next run has begun: a conversation of such a call found still there is
// looked at again once the call's window has passed, and its late
// deletion is confirmed as that call's, never recorded as someone else's.
func TestLateAppliedDeleteIsConfirmedAsTheCalls(t *testing.T) {
	t.Parallel()
	h := newHarness(t, []int{3, 5, 8, 2, 13, 4, 6, 9, 1, 7, 3, 5, 11, 2, 4, 6})
	h.sync()
	old, _ := h.oldAndNew()
	ctx := context.Background()
	if err := h.archive.AddAudit(ctx, sink.AuditRow{At: time.Now().UTC(), RunID: "crashed", Action: sink.AuditPurge,
		Event: sink.EventIntent, ConversationID: old[0], Operator: "cron"}); err != nil {
		t.Fatal(err)
	}
	// The crashed run's call lands upstream only after the next run first
	// looked at the conversation: before it looks a second time.
	var looks atomic.Int32
	h.hook.Store(ptr(func(r *http.Request) {
		if r.URL.Query().Get("conversation_id") == old[0] && looks.Add(1) == 2 {
			h.sim.DeleteConversations(old[0])
		}
	}))
	sum := run(t, h.purger(false, func(o *purge.Options) { o.MaxPerRun = 1; o.CallWindow = 3 * time.Second }), purge.RunOptions{})
	if err := sum.Failure(); err != nil {
		t.Fatal(err)
	}
	if ev := h.events("crashed")[old[0]]; !cmp.Equal(ev, []string{sink.EventDeleted, sink.EventIntent}) {
		t.Errorf("outcomes of the crashed run's intent: %v, want deleted", ev)
	}
	for _, r := range h.audit(old[0]) {
		if r.Event == sink.EventGone || (r.RunID != "crashed" && r.Event == sink.EventDeleted) {
			t.Errorf("the late deletion recorded as %s by run %s", r.Event, r.RunID)
		}
	}
	if h.states()[old[0]].PurgedAt.IsZero() {
		t.Error("the confirmed conversation is not marked purged")
	}
}

// Erasure sends retention.batch_size ids a delete call at most, as the
// purge does.
func TestEraseDeletesInBatches(t *testing.T) {
	t.Parallel()
	h := newHarness(t, []int{2, 3, 4, 5, 6})
	h.sync()
	ids := h.sim.ConversationIDs()
	res := h.purger(false, func(o *purge.Options) { o.BatchSize = 2 }).Erase(context.Background(), h.archive,
		purge.EraseRequest{ConversationIDs: ids, Yes: true})
	if err := res.Failure(); err != nil {
		t.Fatal(err)
	}
	calls := h.sim.Deletions()
	asked := 0
	for _, d := range calls {
		asked += len(d.Asked)
		if len(d.Asked) > 2 {
			t.Errorf("a delete call of %d ids: %v; the batch size is 2", len(d.Asked), d.Asked)
		}
	}
	if asked != len(ids) || len(calls) != 3 {
		t.Errorf("%d delete calls asked for %d ids, want 3 calls for the %d conversations", len(calls), asked, len(ids))
	}
	if deleted, _ := h.deletedUpstream(); len(deleted) != len(ids) {
		t.Errorf("deleted upstream: %v, want all of %v", deleted, ids)
	}
}
