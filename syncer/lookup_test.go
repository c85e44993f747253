package syncer_test

import (
	"context"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
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

// A first sync asks the archive once which of its conversations it holds
// messages of, and looks up no page of those it holds none of: no earlier
// walk went below the newest page, so the backfill's pages cannot hold
// archived rows either. Later runs look up each conversation's newest page
// (whose statuses they read anyway).
func TestFirstSyncLooksUpOnlyTheNewestPages(t *testing.T) {
	counts := []int{450, 120, 30, 0}
	h := newMemHarness(t, cekatsim.Options{Seed: 21, MessageCounts: counts}, syncer.Options{})
	sum := h.sync(context.Background())
	h.assertMatchesTruth()
	if sum.Enriched != sum.NewMessages || h.details.Load() != sum.NewMessages {
		t.Errorf("%d detail calls, %d enriched, for %d messages", h.details.Load(), sum.Enriched, sum.NewMessages)
	}
	if got := h.archive.Lookups(); got != 0 {
		t.Errorf("the first sync looked up archived ids %d times over %d list pages; want none", got, h.lists.Load())
	}
	if got := h.archive.ConversationLookups(); got != 1 {
		t.Errorf("the first sync asked %d times which conversations the archive holds; want once", got)
	}
	// The next run finds nothing new: one list page and one lookup a conversation.
	before := h.archive.Lookups()
	h.sync(context.Background())
	if got := h.archive.Lookups() - before; got != len(counts) {
		t.Errorf("the idle run looked up archived ids %d times; want %d", got, len(counts))
	}
}

// A re-check that the list settles (the status shown is the archived one)
// reads the archived status only: whole rows, wide with raw JSON, are read
// for the messages whose detail is fetched again, and for no other.
func TestListSettledRechecksReadNoWholeRows(t *testing.T) {
	h := newMemHarness(t, cekatsim.Options{Seed: 23, Shape: cekatsim.ShapeReal, MessageCounts: []int{60, 40, 80}}, syncer.Options{})
	h.sync(context.Background())
	settled, fetched := 0, 0
	for range 6 {
		h.sim.Advance(3 * time.Hour)
		due, err := h.archive.DueChecks(context.Background(), h.sim.Now(), 1000)
		if err != nil {
			t.Fatal(err)
		}
		before, details := h.archive.RowReads(), h.details.Load()
		sum := h.sync(context.Background())
		reads, paid := h.archive.RowReads()-before, h.details.Load()-details
		if int64(reads) != paid || sum.Rechecked != paid {
			t.Errorf("a run fetched %d details for %d re-checks and read %d whole rows; want as many rows as details", paid, sum.Rechecked, reads)
		}
		fetched += int(paid)
		settled += len(due) - int(paid)
	}
	h.assertMatchesTruth()
	if fetched == 0 || settled == 0 {
		t.Fatalf("%d re-checks fetched, %d settled by the list: the test needs both", fetched, settled)
	}
}

// detailLog records the ids whose details the simulator was asked for.
type detailLog struct {
	mu  sync.Mutex
	ids []string
}

func (d *detailLog) note(r *http.Request) {
	if id, ok := strings.CutPrefix(r.URL.Path, "/messages/"); ok {
		d.mu.Lock()
		d.ids = append(d.ids, id)
		d.mu.Unlock()
	}
}

func (d *detailLog) take() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	ids := d.ids
	d.ids = nil
	return ids
}

// Walks stopped at random moments, mid-page with details completing out of
// order, under live traffic that pushes new messages above the head: no run
// ever asks for the detail of a message already archived, although lookups
// are skipped where no earlier walk went, and the archive ends exact.
func TestStoppedWalksNeverPayAnArchivedMessageAgain(t *testing.T) {
	h := newMemHarness(t, cekatsim.Options{Seed: 22, MessageCounts: []int{520, 260, 5, 140}},
		syncer.Options{DetailConcurrency: 4, Concurrency: 2, PollIdleRuns: 1 << 20, RecheckWindow: -1})
	rng := rand.New(rand.NewPCG(7, 8))
	var mu sync.Mutex
	var log detailLog
	stopAt := int64(1 << 62)
	var cancel context.CancelFunc
	h.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		log.note(r)
		mu.Lock()
		defer mu.Unlock()
		if h.details.Load() >= stopAt && cancel != nil {
			cancel()
		}
		if r.URL.Path == "/messages" {
			if conv := r.URL.Query().Get("conversation_id"); conv != "" && rng.IntN(4) == 0 {
				// More than a page at times, so walks from the top go several pages deep.
				h.sim.AddMessages(conv, rng.IntN(160))
			}
		} else if rng.IntN(8) == 0 {
			time.Sleep(time.Millisecond) // details complete out of order
		}
		return false
	})
	archived := map[string]bool{}
	stopped := 0
	for i := range 30 {
		ctx, c := context.WithCancel(context.Background())
		mu.Lock()
		cancel = c
		stopAt = h.details.Load() + 1 + int64(rng.IntN(150))
		mu.Unlock()
		sum := h.engine.Sync(ctx, nil)
		if ctx.Err() != nil {
			stopped++
		}
		c()
		if err := sum.Failure(); err != nil {
			t.Fatalf("run %d failed: %v %v", i, err, sum.Errors)
		}
		for _, id := range log.take() {
			if archived[id] {
				t.Errorf("run %d asked for the detail of %s, archived by an earlier run", i, id)
			}
		}
		for _, m := range h.archive.Messages() {
			archived[m.MessageID] = true
		}
	}
	if stopped < 10 {
		t.Fatalf("only %d of the runs were stopped", stopped)
	}
	mu.Lock()
	cancel, stopAt = nil, 1<<62
	mu.Unlock()
	h.setHook(nil)
	h.sync(context.Background())
	h.assertMatchesTruth()
}

// hidingAPI hides one message from list pages, as if gone upstream, and
// counts detail calls by id.
type hidingAPI struct {
	syncer.API
	mu      sync.Mutex
	hide    string
	details map[string]int
}

func (a *hidingAPI) ListMessages(ctx context.Context, conv string, limit int, before string) (*cekat.Page, error) {
	p, err := a.API.ListMessages(ctx, conv, limit, before)
	if err != nil {
		return nil, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	p.Messages = slices.DeleteFunc(p.Messages, func(m cekat.Message) bool { return m.ID == a.hide })
	return p, nil
}

func (a *hidingAPI) GetMessage(ctx context.Context, id string) (cekat.Message, error) {
	a.mu.Lock()
	a.details[id]++
	a.mu.Unlock()
	return a.API.GetMessage(ctx, id)
}

// A walk from the top whose head is gone from the list does not meet it and
// goes on into the archived history: from the head's time on its pages are
// looked up, and no archived message is paid for again.
func TestWalkPastAVanishedHeadPaysNothingAgain(t *testing.T) {
	sim, client := newSimClient(t, cekatsim.Options{Seed: 23, MessageCounts: []int{250},
		Start: time.Date(2026, 11, 2, 8, 0, 0, 0, time.UTC)},
		cekat.Options{MaxRetries: 3, BackoffInitial: time.Millisecond, BackoffMax: 5 * time.Millisecond, Location: time.UTC})
	api := &hidingAPI{API: client, details: map[string]int{}}
	archive := memarchive.New()
	engine := syncer.New(api, archive, syncer.Options{ConversationIDs: sim.ConversationIDs(), Now: sim.Now,
		RecheckWindow: -1, Logger: zaptest.NewLogger(t)})
	ctx := context.Background()
	if sum := engine.Sync(ctx, nil); sum.Failure() != nil || sum.NewMessages != 250 {
		t.Fatalf("first sync: %+v", sum)
	}
	states, err := archive.LoadStates(ctx)
	if err != nil {
		t.Fatal(err)
	}
	conv := sim.ConversationIDs()[0]
	api.mu.Lock()
	api.hide = states[conv].HeadMessageID
	clear(api.details)
	api.mu.Unlock()
	sim.AddMessages(conv, 150) // more than a page above the head
	sum := engine.Sync(ctx, nil)
	if sum.Failure() != nil {
		t.Fatalf("second sync: %+v", sum)
	}
	api.mu.Lock()
	defer api.mu.Unlock()
	if len(api.details) != 150 {
		t.Errorf("the walk past the vanished head asked for %d details; want the 150 new messages'", len(api.details))
	}
	if n := len(archive.Messages()); n != 400 {
		t.Errorf("%d messages archived, want 400", n)
	}
}

// stateDropArchive loses the states of one conversation, as a run that
// died after writing its rows and before its state would.
type stateDropArchive struct {
	*memarchive.Archive
	drop atomic.Pointer[string]
}

func (a *stateDropArchive) AddState(ctx context.Context, st sink.State) error {
	if d := a.drop.Load(); d != nil && *d == st.ConversationID {
		return nil
	}
	return a.Archive.AddState(ctx, st)
}

// A conversation without a state may still have archived rows (the spool
// replays states with their rows, so only a lost spool leaves them so): the
// one query that spares a first sync its look-ups must find them, and the
// newest page is looked up and paid nothing again. (The conversation fits
// one page: a gap's pages below it are not looked up, as for any first sync.)
func TestRowsWithoutStateAreLookedUp(t *testing.T) {
	sim, client := newSimClient(t, cekatsim.Options{Seed: 29, Shape: cekatsim.ShapeReal, MessageCounts: []int{230, 90},
		Start: time.Date(2026, 11, 2, 8, 0, 0, 0, time.UTC)},
		cekat.Options{MaxRetries: 2, BackoffInitial: time.Millisecond, BackoffMax: 5 * time.Millisecond, Location: time.UTC})
	archive := &stateDropArchive{Archive: memarchive.New()}
	engine := syncer.New(client, archive, syncer.Options{ConversationIDs: sim.ConversationIDs(), Now: sim.Now,
		RecheckWindow: 7 * 24 * time.Hour, BackfillMaxDuration: time.Hour})
	lost := sim.ConversationIDs()[1] // 90 messages
	archive.drop.Store(&lost)
	if sum := engine.Sync(context.Background(), nil); sum.Failure() != nil {
		t.Fatal(sum.Failure())
	}
	states, err := archive.LoadStates(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := states[lost]; ok {
		t.Fatal("the dropped state was stored")
	}
	archive.drop.Store(nil)
	lookups := archive.Lookups()
	if sum := engine.Sync(context.Background(), nil); sum.Failure() != nil {
		t.Fatal(sum.Failure())
	}
	total := len(sim.Truth())
	if got := sim.Counts().Endpoint(cekatsim.EndpointDetail); got != total {
		t.Errorf("detail calls over both runs: %d, want %d (one per message)", got, total)
	}
	if archive.Lookups() == lookups {
		t.Error("the second run looked up no page of the conversation whose rows have no state")
	}
	if got := len(archive.Messages()); got != total {
		t.Errorf("archive holds %d messages, want %d", got, total)
	}
}
