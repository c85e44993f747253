package syncer_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/cekat-archiver/cekat-archiver/sink"
	"github.com/cekat-archiver/cekat-archiver/syncer"
	"github.com/cekat-archiver/cekat-archiver/syncer/cekat"
	"github.com/cekat-archiver/cekat-archiver/syncer/cekatsim"
	"github.com/cekat-archiver/cekat-archiver/syncer/memarchive"
)

// sweepBed is the engine with the inbox sweep on against the simulator,
// counting list calls per conversation and inbox pages.
type sweepBed struct {
	t       *testing.T
	sim     *cekatsim.Server
	archive *memarchive.Archive
	engine  *syncer.Engine
	mu      sync.Mutex
	perConv map[string]int // GET /messages by conversation
	inbox   int            // GET /api/messages
	// beforeInbox, when set, runs before an inbox page is served.
	beforeInbox func(page string)
}

func newSweepBed(t *testing.T, simOpts cekatsim.Options, sweep syncer.InboxSweep, store syncer.Archive, more ...func(*syncer.Options)) *sweepBed {
	t.Helper()
	if simOpts.Start.IsZero() {
		simOpts.Start = time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)
	}
	sim, err := cekatsim.New(simOpts)
	if err != nil {
		t.Fatal(err)
	}
	b := &sweepBed{t: t, sim: sim, archive: memarchive.New(), perConv: map[string]int{}}
	if store == nil {
		store = b.archive
	}
	api := sim.Handler()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.mu.Lock()
		switch r.URL.Path {
		case "/messages":
			b.perConv[r.URL.Query().Get("conversation_id")]++
		case "/api/messages":
			b.inbox++
		}
		hook := b.beforeInbox
		b.mu.Unlock()
		if hook != nil && r.URL.Path == "/api/messages" {
			hook(r.URL.Query().Get("page"))
		}
		api.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	client, err := cekat.New(cekat.Options{BaseURL: srv.URL, APIKey: cekatsim.DefaultAPIKey})
	if err != nil {
		t.Fatal(err)
	}
	sweep.API = client
	opts := syncer.Options{ConversationIDs: sim.ConversationIDs(), Inbox: &sweep, RecheckWindow: -1, Now: sim.Now,
		Logger: zap.NewNop()}
	for _, f := range more {
		f(&opts)
	}
	b.engine = syncer.New(client, store, opts)
	return b
}

// counts returns and resets the calls counted since the last call.
func (b *sweepBed) counts() (perConv map[string]int, inbox int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	perConv, inbox = b.perConv, b.inbox
	b.perConv, b.inbox = map[string]int{}, 0
	return perConv, inbox
}

func (b *sweepBed) sync(ctx context.Context) syncer.Summary {
	b.t.Helper()
	sum := b.engine.Sync(ctx, nil)
	if err := sum.Failure(); err != nil {
		b.t.Fatalf("run: %v %v", err, sum.Errors)
	}
	return sum
}

// missing returns the ids of well-formed messages of want that the archive
// lacks.
func (b *sweepBed) missing(want []cekatsim.TruthMessage) []string {
	got := map[string]bool{}
	for _, r := range b.archive.Messages() {
		got[r.ConversationID+"/"+r.MessageID] = true
	}
	var out []string
	for _, m := range want {
		if !m.Malformed && !got[m.ConversationID+"/"+m.ID] {
			out = append(out, m.ConversationID+"/"+m.ID)
		}
	}
	return out
}

// traffic adds n messages over the conversations, a few at a time, each
// batch a minute after the one before.
func traffic(sim *cekatsim.Server, n int) {
	ids := sim.ConversationIDs()
	for i := 0; n > 0; i++ {
		k := min(n, 1+i%3)
		sim.AddMessages(ids[(i*7)%len(ids)], k)
		n -= k
		sim.Advance(time.Minute)
	}
}

// Rounds of new messages, more than a page of them, with messages arriving
// while the sweep pages (LiveRate): nothing is lost in either order, and
// once every conversation has been walked the sweep alone finds the new
// messages: no conversation is listed on its own.
func TestSweepLosesNothingUnderNewTraffic(t *testing.T) {
	for _, order := range []cekatsim.InboxOrder{cekatsim.InboxNewestFirst, cekatsim.InboxOldestFirst} {
		t.Run(string(order), func(t *testing.T) {
			b := newSweepBed(t, cekatsim.Options{Seed: 4, Shape: cekatsim.ShapeReal, Conversations: 25, MeanMessages: 40,
				InboxOrder: order, LiveRate: 0.5}, syncer.InboxSweep{}, nil)
			b.sync(context.Background()) // the first sync walks every conversation
			b.counts()
			for round := 1; round <= 4; round++ {
				b.sim.Advance(10 * time.Minute)
				traffic(b.sim, 130)
				before := b.sim.Truth()
				sum := b.sync(context.Background())
				perConv, inbox := b.counts()
				if len(perConv) > 0 || inbox < 2 {
					t.Errorf("round %d: %d inbox pages, conversations listed on their own: %v; want the sweep's pages alone "+
						"(%d new messages)", round, inbox, perConv, sum.NewMessages)
				}
				if m := b.missing(before); len(m) > 0 {
					t.Fatalf("round %d: %d messages missing after the run, e.g. %v", round, len(m), m[:min(3, len(m))])
				}
			}
		})
	}
}

// An inbox listing in no order of time is not trusted: the run lists
// conversation by conversation and loses nothing; so does one on a
// deployment without the endpoint (404), which is not asked again.
func TestSweepFallsBack(t *testing.T) {
	for name, o := range map[string]cekatsim.Options{
		"unordered": {InboxOrder: cekatsim.InboxUnordered},
		"404":       {NoInboxList: true},
	} {
		t.Run(name, func(t *testing.T) {
			o.Seed, o.Shape, o.Conversations, o.MeanMessages = 8, cekatsim.ShapeReal, 12, 150
			b := newSweepBed(t, o, syncer.InboxSweep{}, nil)
			b.sync(context.Background())
			b.counts()
			for round := 1; round <= 2; round++ {
				b.sim.Advance(10 * time.Minute)
				traffic(b.sim, 40)
				before := b.sim.Truth()
				b.sync(context.Background())
				perConv, inbox := b.counts()
				if inbox != 0 || len(perConv) != 12 {
					t.Errorf("round %d: %d inbox pages, %d conversations listed; want none and all 12", round, inbox, len(perConv))
				}
				if m := b.missing(before); len(m) > 0 {
					t.Fatalf("round %d: %d messages missing, e.g. %v", round, len(m), m[:min(3, len(m))])
				}
			}
		})
	}
}

// A sweep cut short (one page here) covers only the conversations whose
// head it reached back past: a conversation with an older head is walked,
// even one whose new message the sweep did not show.
func TestSweepWalksConversationsItDoesNotCover(t *testing.T) {
	b := newSweepBed(t, cekatsim.Options{Seed: 9, Shape: cekatsim.ShapeReal, Conversations: 6, MeanMessages: 20},
		syncer.InboxSweep{MaxPages: 2}, nil)
	b.sync(context.Background())
	b.counts()
	ids := b.sim.ConversationIDs()
	busy, quiet := ids[0], ids[1]
	b.sim.Advance(time.Hour)
	b.sim.AddMessages(quiet, 1)
	b.sim.Advance(time.Minute)
	for range 25 { // the two pages are busy's, over four minutes
		b.sim.AddMessages(busy, 10)
		b.sim.Advance(10 * time.Second)
	}
	before := b.sim.Truth()
	b.sync(context.Background())
	perConv, inbox := b.counts()
	if inbox != 2 || perConv[quiet] == 0 || perConv[busy] == 0 {
		t.Errorf("%d inbox pages; listed on their own: %v; want two pages, and %s and %s walked", inbox, perConv, busy, quiet)
	}
	if m := b.missing(before); len(m) > 0 {
		t.Fatalf("%d messages missing, e.g. %v", len(m), m[:min(3, len(m))])
	}
	// The next sweep reaches back past every head: nothing is listed on its own.
	b.sim.Advance(time.Hour)
	b.sim.AddMessages(quiet, 2)
	before = b.sim.Truth()
	b.sync(context.Background())
	if perConv, _ := b.counts(); len(perConv) > 0 {
		t.Errorf("conversations listed on their own after a sweep that covers them: %v", perConv)
	}
	if m := b.missing(before); len(m) > 0 {
		t.Fatalf("%d messages missing, e.g. %v", len(m), m[:min(3, len(m))])
	}
}

// stopAfterRows stops the run once the first rows of a swept conversation
// are queued, before the state that claims them.
type stopAfterRows struct {
	*memarchive.Archive
	stop func()
	arm  bool
}

func (a *stopAfterRows) AddMessages(ctx context.Context, rows ...sink.MessageRow) error {
	err := a.Archive.AddMessages(ctx, rows...)
	if a.arm && len(rows) > 0 {
		a.arm = false
		a.stop()
	}
	return err
}

// A run stopped between the rows of a swept conversation and its state, or
// whose writes fail, keeps the mark where it was: the next run lists the
// same messages again and loses nothing.
func TestSweepStoppedOrFailingRunKeepsTheMark(t *testing.T) {
	store := &stopAfterRows{Archive: memarchive.New()}
	b := newSweepBed(t, cekatsim.Options{Seed: 12, Shape: cekatsim.ShapeReal, Conversations: 8, MeanMessages: 30},
		syncer.InboxSweep{}, store)
	b.archive = store.Archive
	b.sync(context.Background())
	mark := func() sink.SweepMark {
		m, ok, err := store.LoadSweep(context.Background(), "|")
		if err != nil || !ok {
			t.Fatalf("no mark: %v", err)
		}
		return m
	}
	first := mark()

	b.sim.Advance(time.Hour)
	traffic(b.sim, 60)
	before := b.sim.Truth()
	ctx, cancel := context.WithCancel(context.Background())
	store.stop, store.arm = cancel, true
	if sum := b.engine.Sync(ctx, nil); !sum.Stopped {
		t.Fatalf("the run was not stopped: %+v", sum)
	}
	if got := mark(); !got.Mark.Equal(first.Mark) {
		t.Errorf("a stopped run moved the mark from %v to %v", first.Mark, got.Mark)
	}

	store.SetFailWrites(errFailing)
	if sum := b.engine.Sync(context.Background(), nil); sum.Failure() == nil {
		t.Fatalf("a run whose writes fail did not fail")
	}
	store.SetFailWrites(nil)
	if got := mark(); !got.Mark.Equal(first.Mark) {
		t.Errorf("a run whose writes failed moved the mark from %v to %v", first.Mark, got.Mark)
	}
	b.sync(context.Background())
	if m := b.missing(before); len(m) > 0 {
		t.Fatalf("%d messages missing after the stopped run and the next, e.g. %v", len(m), m[:min(3, len(m))])
	}
	if got := mark(); !got.Mark.After(first.Mark) {
		t.Errorf("the mark did not move on after a complete run: %v", got.Mark)
	}
}

var errFailing = errString("ClickHouse is away")

type errString string

func (e errString) Error() string { return string(e) }

// Under a daily cap, runs for webhook events list at most once per
// EventBatch, and not at all when the day keeps its rest for the scheduled
// runs' listing: the events wait, pending, and lose nothing. One inbox page
// answers the events of several conversations.
func TestEventsListOncePerBatchUnderACap(t *testing.T) {
	fb := &fakeBudget{}
	fb.free.Store(100)
	b := newSweepBed(t, cekatsim.Options{Seed: 14, Shape: cekatsim.ShapeReal, Conversations: 5, MeanMessages: 10},
		syncer.InboxSweep{}, nil, func(o *syncer.Options) { o.Budget, o.EventBatch = fb, 10*time.Minute })
	ctx := context.Background()
	b.sync(ctx)
	b.counts()
	ids := b.sim.ConversationIDs()
	events := &memEvents{events: map[string]sink.WebhookEvent{}, pending: map[string]bool{}}
	n := 0
	arrive := func(convs ...string) {
		for _, c := range convs {
			b.sim.AddMessages(c, 1)
			n++
			ev := sink.WebhookEvent{EventID: fmt.Sprint("e", n), Event: "message.received", ConversationID: c,
				Raw: `{"event":"message.received"}`, ReceivedAt: b.sim.Now(), Version: 1}
			if err := events.SaveWebhookEvents(ctx, ev); err != nil {
				t.Fatal(err)
			}
		}
	}
	apply := func(step string, wantWaiting int) {
		t.Helper()
		out, err := b.engine.ApplyEvents(ctx, events)
		if err != nil || out.Sync.Failure() != nil {
			t.Fatalf("%s: %v %v", step, err, out.Sync.Failure())
		}
		if out.Waiting != wantWaiting {
			t.Errorf("%s: %d events waiting, want %d", step, out.Waiting, wantWaiting)
		}
	}
	// Until a scheduled run has measured the listing the day keeps, none.
	b.sim.Advance(time.Minute)
	arrive(ids[4])
	apply("before the listing is measured", 1)
	if perConv, inbox := b.counts(); inbox != 0 || len(perConv) > 0 {
		t.Errorf("before the listing is measured: %d inbox pages, conversations listed: %v; want none", inbox, perConv)
	}
	b.sim.Advance(time.Hour)
	b.sync(ctx)
	b.counts()
	b.sim.Advance(time.Minute)
	arrive(ids[0], ids[1])
	apply("first events", 0)
	if perConv, inbox := b.counts(); inbox != 1 || len(perConv) > 0 {
		t.Errorf("first events: %d inbox pages, conversations listed: %v; want one page", inbox, perConv)
	}
	b.sim.Advance(2 * time.Minute)
	arrive(ids[2])
	before := b.sim.Truth()
	apply("within the batch", 1)
	if perConv, inbox := b.counts(); inbox != 0 || len(perConv) > 0 {
		t.Errorf("within the batch: %d inbox pages, conversations listed: %v; want none", inbox, perConv)
	}
	b.sim.Advance(10 * time.Minute)
	apply("after the batch", 0)
	if m := b.missing(before); len(m) > 0 {
		t.Errorf("%d messages missing after the batch's run, e.g. %v", len(m), m[0])
	}
	b.counts()
	fb.free.Store(0)
	b.sim.Advance(20 * time.Minute)
	arrive(ids[3])
	apply("no room in the day", 1)
	if perConv, inbox := b.counts(); inbox != 0 || len(perConv) > 0 {
		t.Errorf("no room in the day: %d inbox pages, conversations listed: %v; want none", inbox, perConv)
	}
	if ev := events.events[fmt.Sprint("e", n)]; ev.Processed {
		t.Errorf("the waiting event was marked processed: %q", ev.Outcome)
	}
	fb.free.Store(100)
	before = b.sim.Truth()
	apply("room again", 0)
	if m := b.missing(before); len(m) > 0 {
		t.Errorf("%d messages missing after the waiting event's run, e.g. %v", len(m), m[0])
	}
}

// A conversation deleted while the inbox is paged newest first shifts the
// later pages up, over messages of other conversations: the run sees the
// total shrink, does not trust the sweep and loses nothing.
func TestSweepDistrustsAShrinkingInbox(t *testing.T) {
	b := newSweepBed(t, cekatsim.Options{Seed: 16, Shape: cekatsim.ShapeReal, Conversations: 12, MeanMessages: 30},
		syncer.InboxSweep{}, nil)
	b.sync(context.Background())
	b.sim.Advance(time.Hour)
	traffic(b.sim, 260)
	// The newest messages' conversation goes away before page 2.
	truth := b.sim.Truth()
	newest := truth[0]
	for _, m := range truth {
		if m.Timestamp.After(newest.Timestamp) {
			newest = m
		}
	}
	gone := newest.ConversationID
	b.mu.Lock()
	b.beforeInbox = func(page string) {
		if page == "2" && len(b.sim.DeleteConversations(gone)) == 0 {
			t.Errorf("conversation %s not deleted", gone)
		}
	}
	b.mu.Unlock()
	var want []cekatsim.TruthMessage
	for _, m := range truth {
		if m.ConversationID != gone {
			want = append(want, m)
		}
	}
	b.counts()
	b.engine.Sync(context.Background(), nil) // gone's walk fails (404): not a loss
	if perConv, inbox := b.counts(); inbox != 2 || len(perConv) == 0 {
		t.Errorf("%d inbox pages, %d conversations listed on their own; want the sweep dropped after page 2", inbox, len(perConv))
	}
	if m := b.missing(want); len(m) > 0 {
		t.Fatalf("%d messages missing, e.g. %v", len(m), m[:min(3, len(m))])
	}
}
