package syncer_test

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/cekat-archiver/cekat-archiver/sink"
	"github.com/cekat-archiver/cekat-archiver/syncer"
	"github.com/cekat-archiver/cekat-archiver/syncer/budget"
	"github.com/cekat-archiver/cekat-archiver/syncer/cekat"
	"github.com/cekat-archiver/cekat-archiver/syncer/cekatsim"
	"github.com/cekat-archiver/cekat-archiver/syncer/memarchive"
)

// versionArchive counts the rows written of each message.
type versionArchive struct {
	*memarchive.Archive
	mu   sync.Mutex
	rows map[string]int
}

func (a *versionArchive) AddMessages(ctx context.Context, rows ...sink.MessageRow) error {
	a.mu.Lock()
	for _, r := range rows {
		a.rows[r.ConversationID+"/"+r.MessageID]++
	}
	a.mu.Unlock()
	return a.Archive.AddMessages(ctx, rows...)
}

// budgetBed is the engine against the simulator on its clock, with a
// limiter of a daily cap on the same clock, and the in-memory archive.
type budgetBed struct {
	t       testing.TB
	sim     *cekatsim.Server
	archive *versionArchive
	engine  *syncer.Engine
	limiter *budget.Limiter
	callCounts
}

func newBudgetBed(t testing.TB, simOpts cekatsim.Options, perDay int, pace budget.Pace, opts syncer.Options) *budgetBed {
	t.Helper()
	if simOpts.Start.IsZero() {
		simOpts.Start = time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)
	}
	sim, err := cekatsim.New(simOpts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	b := &budgetBed{t: t, sim: sim, archive: &versionArchive{Archive: memarchive.New(), rows: map[string]int{}}}
	url := serveCounted(t, sim, &b.callCounts)
	// The limiter paces on a clock that moves: the simulator's stands
	// still between its steps, and the wall clock adds what the run takes.
	began := time.Now()
	b.limiter = dailyCap(t, perDay, func() time.Time { return sim.Now().Add(time.Since(began)) }, pace)
	client, err := cekat.New(cekat.Options{BaseURL: url, APIKey: cekatsim.DefaultAPIKey, Location: jakarta(t),
		Limiter: b.limiter})
	if err != nil {
		t.Fatal(err)
	}
	opts.ConversationIDs = sim.ConversationIDs()
	if opts.RecheckWindow == 0 {
		opts.RecheckWindow = 7 * 24 * time.Hour
	}
	opts.Now, opts.Logger = sim.Now, zap.NewNop()
	if opts.Discovery != nil && opts.Discovery.API == nil {
		opts.Discovery.API = client
	}
	if perDay > 0 && opts.Budget == nil {
		opts.Budget = b.limiter
	}
	b.engine = syncer.New(client, b.archive, opts)
	return b
}

// completeness compares the archive with the simulator's truth: messages
// missing, messages archived that are not upstream, and the enriched ones.
func (b *budgetBed) completeness() (missing, extra, enriched, total int) {
	got := map[string]sink.MessageRow{}
	for _, r := range b.archive.Messages() {
		got[r.ConversationID+"/"+r.MessageID] = r
	}
	want := map[string]bool{}
	for _, m := range b.sim.Truth() {
		if m.Malformed {
			continue
		}
		k := m.ConversationID + "/" + m.ID
		want[k] = true
		r, ok := got[k]
		switch {
		case !ok:
			missing++
		case r.Enriched:
			enriched++
		}
	}
	for k := range got {
		if !want[k] {
			extra++
		}
	}
	return missing, extra, enriched, len(want)
}

// figureCounts is the workspace of the budget figure: 3,600 messages in
// 30 conversations, most of them within one list page.
var figureCounts = func() []int {
	counts := make([]int, 30)
	for i := range counts {
		counts[i] = 100
		if i < 6 {
			counts[i] = 200
		}
	}
	return counts
}()

// One run at 500 requests a day over 3,600 messages archives every message
// from the list pages and enriches what the rest of the day pays for; the
// next days enrich the rest without listing the history again. Both shapes.
func TestBudgetArchivesEverythingAtListCost(t *testing.T) {
	for _, shape := range []cekatsim.Shape{cekatsim.ShapeDocumented, cekatsim.ShapeReal} {
		t.Run(string(shape), func(t *testing.T) {
			b := newBudgetBed(t, cekatsim.Options{Seed: 21, Shape: shape, MessageCounts: figureCounts}, 500, budget.Pace{},
				syncer.Options{})
			sum := b.engine.Sync(context.Background(), nil)
			if err := sum.Failure(); err != nil {
				t.Fatalf("first run: %v %v", err, sum.Errors)
			}
			missing, extra, enriched, total := b.completeness()
			t.Logf("figure: one run at per_day 500 over %d messages in %d conversations: archived %d, enriched %d, "+
				"missing %d, not upstream %d; calls %d (list %d, detail %d); waiting %d, backlog %v, stopped by %q",
				total, len(figureCounts), total-missing, enriched, missing, extra, b.calls(), b.list.Load(), b.detail.Load(),
				sum.Waiting, sum.Backlog, sum.StoppedBy)
			if missing != 0 || extra != 0 {
				t.Errorf("archive incomplete after one run: %d missing, %d not upstream", missing, extra)
			}
			if b.calls() > 500 {
				t.Errorf("%d calls with a daily cap of 500", b.calls())
			}
			if enriched < 460 || int64(enriched) != sum.Enriched {
				t.Errorf("enriched %d (summary %d), want at least 460", enriched, sum.Enriched)
			}
			if int64(total) != sum.NewMessages {
				t.Errorf("summary says %d messages archived, want %d", sum.NewMessages, total)
			}
			waiting := sum.Backlog["new"] + sum.Backlog["history"]
			if waiting != uint64(total-enriched) || sum.Drained.IsZero() {
				t.Errorf("backlog %v at the end of the run, want %d waiting, and when it is drained (%v)", sum.Backlog,
					total-enriched, sum.Drained)
			}
			for k, n := range b.archive.rows {
				if n > 2 {
					t.Errorf("%s written %d times", k, n)
				}
			}
			// The next days: each lists every conversation's newest page
			// once (nothing new arrived) and enriches from the backlog.
			for day := 2; ; day++ {
				b.sim.Advance(24 * time.Hour)
				l0 := b.list.Load()
				sum := b.engine.Sync(context.Background(), nil)
				if err := sum.Failure(); err != nil {
					t.Fatalf("day %d: %v", day, err)
				}
				if got := b.list.Load() - l0; got > int64(len(figureCounts)) {
					t.Errorf("day %d: %d list calls, want at most one a conversation (the history is not listed again)", day, got)
				}
				missing, _, enriched, total := b.completeness()
				if missing != 0 {
					t.Fatalf("day %d: %d missing", day, missing)
				}
				if enriched == total {
					t.Logf("figure: the rest enriched by day %d", day)
					break
				}
				if day > 10 {
					t.Fatalf("day %d: %d of %d enriched", day, enriched, total)
				}
			}
		})
	}
}

// Without a daily cap nothing waits: the first sync costs ceil(n/100) list
// calls and n detail calls a conversation, and writes one row a message.
func TestUnlimitedBudgetEnrichesInOneRow(t *testing.T) {
	b := newBudgetBed(t, cekatsim.Options{Seed: 22, MessageCounts: []int{250, 100, 7}}, 0, budget.Pace{}, syncer.Options{})
	sum := b.engine.Sync(context.Background(), nil)
	if err := sum.Failure(); err != nil {
		t.Fatal(err)
	}
	missing, _, enriched, total := b.completeness()
	if missing != 0 || enriched != total || sum.Waiting != 0 {
		t.Errorf("missing %d, enriched %d of %d, waiting %d", missing, enriched, total, sum.Waiting)
	}
	if got := b.detail.Load(); got != int64(total) {
		t.Errorf("%d detail calls for %d messages", got, total)
	}
	if got := b.list.Load(); got > 3+1+2 { // ceil(n/100) each
		t.Errorf("%d list calls", got)
	}
	for k, n := range b.archive.rows {
		if n != 1 {
			t.Errorf("%s written %d times", k, n)
		}
	}
}

// fakeBudget is a budget whose spare calls a test sets.
type fakeBudget struct{ free atomic.Int64 }

func (f *fakeBudget) Spare(int) (int, int)  { n := int(f.free.Load()); return n, n }
func (f *fakeBudget) BacklogPerDay(int) int { return int(f.free.Load()) }

// A delivery event that the day's budget cannot confirm now is recorded
// with the event's time, marked provisional; a later detail call confirms
// it.
func TestWebhookStatusIsProvisionalUntilConfirmed(t *testing.T) {
	fb := &fakeBudget{}
	b := newBudgetBed(t, cekatsim.Options{Seed: 23, MessageCounts: []int{40}}, 0, budget.Pace{}, syncer.Options{Budget: fb})
	ctx := context.Background()
	if sum := b.engine.Sync(ctx, nil); sum.Failure() != nil || sum.Waiting != 40 || sum.Enriched != 0 {
		t.Fatalf("first run without spare calls: %+v", sum)
	}
	// An outbound message not delivered in the archive.
	var target sink.MessageRow
	for _, r := range b.archive.Messages() {
		if r.Direction == "outbound" && r.DeliveredAt == nil {
			target = r
			break
		}
	}
	if target.MessageID == "" {
		t.Fatal("no undelivered outbound message archived")
	}
	at := b.sim.Now().Add(-time.Minute).UTC().Truncate(time.Second)
	events := &memEvents{events: map[string]sink.WebhookEvent{}, pending: map[string]bool{}}
	raw := `{"event":"message.delivered","timestamp":"` + at.Format(time.RFC3339) + `","data":{"id":"` + target.MessageID + `"}}`
	if err := events.SaveWebhookEvents(ctx, sink.WebhookEvent{EventID: "e1", Event: "message.delivered",
		ConversationID: target.ConversationID, MessageID: target.MessageID, Raw: raw, ReceivedAt: b.sim.Now(), Version: 1}); err != nil {
		t.Fatal(err)
	}
	d0 := b.detail.Load()
	out, err := b.engine.ApplyEvents(ctx, events)
	if err != nil || out.Sync.Failure() != nil {
		t.Fatalf("events: %v %v", err, out.Sync.Failure())
	}
	if got := b.detail.Load() - d0; got != 0 {
		t.Errorf("%d detail calls without spare budget", got)
	}
	row := find(b.archive.Messages(), target.MessageID)
	if row.StatusSource != "webhook:message.delivered" || row.DeliveredAt == nil || !row.DeliveredAt.Equal(at) || row.Status != "delivered" {
		t.Fatalf("after the event: status %q from %q, delivered %v; want delivered at %v, provisional", row.Status,
			row.StatusSource, row.DeliveredAt, at)
	}
	// The budget allows it: the next run confirms with a detail call.
	fb.free.Store(1000)
	b.sim.Advance(time.Minute)
	if sum := b.engine.Sync(ctx, nil); sum.Failure() != nil {
		t.Fatal(sum.Failure())
	}
	row = find(b.archive.Messages(), target.MessageID)
	if row.StatusSource != "" || !row.Enriched {
		t.Errorf("after the detail call: status %q from %q, enriched %v; want confirmed", row.Status, row.StatusSource, row.Enriched)
	}
}

func find(rows []sink.MessageRow, id string) sink.MessageRow {
	for _, r := range rows {
		if r.MessageID == id {
			return r
		}
	}
	return sink.MessageRow{}
}

// A first sync of a large history under a daily cap lists every message
// once, ceil(n/100) list calls a conversation (plus the newest page's
// check at the end of a walk), before any of the history's enrichment; the
// enrichment follows on the next days. Scaled down from 1,000,000 messages
// to what the in-memory archive holds comfortably:
//
//	go test -run TestFirstSyncOfALargeHistoryListsOnce -v ./syncer/
func TestFirstSyncOfALargeHistoryListsOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	counts := []int{20000, 15000, 10000, 3000, 1500, 499, 1}
	b := newBudgetBed(t, cekatsim.Options{Seed: 24, MessageCounts: counts}, 10000, budget.Pace{}, syncer.Options{})
	sum := b.engine.Sync(context.Background(), nil)
	if err := sum.Failure(); err != nil {
		t.Fatal(err)
	}
	missing, extra, enriched, total := b.completeness()
	bound := int64(0)
	for _, n := range counts {
		bound += int64((n + 99) / 100)
	}
	t.Logf("figure: first sync of %d messages in %d conversations at per_day 10,000: archived %d, enriched %d, missing %d; "+
		"list calls %d (ceil(n/100) summed: %d), detail calls %d; backlog %v, drained by %v",
		total, len(counts), total-missing, enriched, missing, b.list.Load(), bound, b.detail.Load(), sum.Backlog, sum.Drained)
	if missing != 0 || extra != 0 {
		t.Errorf("%d missing, %d not upstream", missing, extra)
	}
	if got := b.list.Load(); got > bound+int64(len(counts)) {
		t.Errorf("%d list calls, want at most %d", got, bound+int64(len(counts)))
	}
	if b.calls() > 10000 {
		t.Errorf("%d calls over the cap", b.calls())
	}
}

// Under a daily cap with no room beyond the runs' listing, an event that
// names no conversation is not looked up with a detail call: the next
// scheduled run's listing archives the message.
func TestEventWithoutConversationWaitsForTheListingUnderACap(t *testing.T) {
	fb := &fakeBudget{}
	b := newBudgetBed(t, cekatsim.Options{Seed: 25, MessageCounts: []int{10}}, 0, budget.Pace{}, syncer.Options{Budget: fb})
	ctx := context.Background()
	if sum := b.engine.Sync(ctx, nil); sum.Failure() != nil {
		t.Fatal(sum.Failure())
	}
	conv := b.sim.ConversationIDs()[0]
	b.sim.Advance(time.Minute)
	b.sim.AddMessages(conv, 1)
	var newest cekatsim.TruthMessage
	for _, m := range b.sim.Truth() {
		if m.ConversationID == conv && m.Position == 10 {
			newest = m
		}
	}
	events := &memEvents{events: map[string]sink.WebhookEvent{}, pending: map[string]bool{}}
	if err := events.SaveWebhookEvents(ctx, sink.WebhookEvent{EventID: "e1", Event: "message.received", MessageID: newest.ID,
		Raw: `{"event":"message.received","data":{"id":"` + newest.ID + `"}}`, ReceivedAt: b.sim.Now(), Version: 1}); err != nil {
		t.Fatal(err)
	}
	d0 := b.detail.Load()
	out, err := b.engine.ApplyEvents(ctx, events)
	if err != nil || out.Sync.Failure() != nil {
		t.Fatalf("events: %v %v", err, out.Sync.Failure())
	}
	if got := b.detail.Load() - d0; got != 0 {
		t.Errorf("%d detail calls to find a conversation with no room in the day", got)
	}
	if ev := events.events["e1"]; !ev.Processed || !strings.HasPrefix(ev.Outcome, "left to the next run") {
		t.Errorf("event: processed %v, outcome %q", ev.Processed, ev.Outcome)
	}
	if sum := b.engine.Sync(ctx, nil); sum.Failure() != nil || sum.NewMessages != 1 {
		t.Errorf("next run: %+v", sum)
	}
	if missing, _, _, _ := b.completeness(); missing != 0 {
		t.Errorf("%d missing", missing)
	}
}

// Under a daily cap the backlog's re-checks are paid from the run's
// allowance, the list call that shows their statuses included: a run
// spends no more on them than the day leaves it, and the day's later runs
// keep what the pace kept for their listing.
func TestRecheckListingIsPaidFromTheAllowance(t *testing.T) {
	fb := &fakeBudget{}
	fb.free.Store(1000)
	b := newBudgetBed(t, cekatsim.Options{Seed: 26, Shape: cekatsim.ShapeReal, MessageCounts: []int{30, 30, 30, 30, 30}}, 0,
		budget.Pace{}, syncer.Options{Budget: fb, Discovery: &syncer.Discovery{}})
	ctx := context.Background()
	if sum := b.engine.Sync(ctx, nil); sum.Failure() != nil {
		t.Fatal(sum.Failure())
	}
	b.sim.Advance(time.Minute)
	for _, conv := range b.sim.ConversationIDs() {
		b.sim.AddMessages(conv, 3)
	}
	if sum := b.engine.Sync(ctx, nil); sum.Failure() != nil || sum.NewMessages != 15 || sum.Enriched < 15 {
		t.Fatalf("run with room for the new messages: %+v", sum)
	}
	// Their re-checks are due, in every conversation; the day leaves 2
	// calls beyond the listing.
	const spare = 2
	b.sim.Advance(30 * time.Minute)
	fb.free.Store(spare)
	l0, d0 := b.list.Load()-b.convList.Load(), b.detail.Load()
	sum := b.engine.Sync(ctx, nil)
	if sum.Failure() != nil {
		t.Fatal(sum.Failure())
	}
	lists, details := b.list.Load()-b.convList.Load()-l0, b.detail.Load()-d0
	t.Logf("run with %d spare: %d message list calls, %d detail calls; due %d, rechecked %d", spare, lists, details,
		sum.Conversations, sum.Rechecked)
	got := lists - int64(sum.Conversations) + details
	if got == 0 {
		t.Fatal("no call for the backlog: the test no longer sees its re-checks")
	}
	if got > spare {
		t.Errorf("the backlog took %d calls (%d list, %d detail) of %d spare: the rest was the later runs' listing",
			got, lists-int64(sum.Conversations), details, spare)
	}
}
