package syncer_test

// The engine's rules, fast: the simulator over real HTTP and an archive from
// archivetest.Open (in memory, or ClickHouse in the integration run).

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
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
	"github.com/cekat-archiver/cekat-archiver/syncer/memarchive"
)

// memHarness runs the engine on an archive from archivetest.Open, and counts
// the simulator's requests and the archive's lookups.
type memHarness struct {
	t       *testing.T
	sim     *cekatsim.Server
	archive *archivetest.Counting
	engine  *syncer.Engine
	hook    atomic.Pointer[func(w http.ResponseWriter, r *http.Request) bool]
	details atomic.Int64 // detail requests answered by the simulator
	lists   atomic.Int64
}

func newMemHarness(t *testing.T, simOpts cekatsim.Options, engOpts syncer.Options) *memHarness {
	t.Helper()
	if simOpts.Start.IsZero() {
		simOpts.Start = time.Date(2026, 11, 2, 8, 0, 0, 0, time.UTC)
	}
	sim, err := cekatsim.New(simOpts)
	if err != nil {
		t.Fatal(err)
	}
	engOpts.ConversationIDs = append(sim.ConversationIDs(), engOpts.ConversationIDs...)
	return newMemHarnessFor(t, sim, engOpts)
}

// newSimClient starts a simulator over HTTP and a client of it; opts give
// the client's other options.
func newSimClient(t *testing.T, simOpts cekatsim.Options, opts cekat.Options) (*cekatsim.Server, *cekat.Client) {
	t.Helper()
	sim, err := cekatsim.New(simOpts)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sim.Handler())
	t.Cleanup(srv.Close)
	opts.BaseURL, opts.APIKey = srv.URL, cekatsim.DefaultAPIKey
	client, err := cekat.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return sim, client
}

// newMemHarnessFor runs the engine against sim; it tracks only what
// engOpts say.
func newMemHarnessFor(t *testing.T, sim *cekatsim.Server, engOpts syncer.Options) *memHarness {
	t.Helper()
	return newMemHarnessOn(t, archivetest.Open(t), sim, engOpts)
}

// newMemHarnessOn is newMemHarnessFor on the archive given.
func newMemHarnessOn(t *testing.T, archive archivetest.Archive, sim *cekatsim.Server, engOpts syncer.Options) *memHarness {
	t.Helper()
	h := &memHarness{t: t, archive: &archivetest.Counting{Archive: archive}, sim: sim}
	api := sim.Handler()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hook := h.hook.Load(); hook != nil && (*hook)(w, r) {
			return
		}
		if r.URL.Path == "/messages" {
			h.lists.Add(1)
		} else {
			h.details.Add(1)
		}
		api.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	requests := syncer.NewRequestStats(nil)
	client, err := cekat.New(cekat.Options{BaseURL: srv.URL, APIKey: cekatsim.DefaultAPIKey, MaxRetries: 3,
		BackoffInitial: time.Millisecond, BackoffMax: 5 * time.Millisecond, ThrottleWait: 10 * time.Millisecond,
		Location: jakarta(t), OnRequest: requests.Observe})
	if err != nil {
		t.Fatal(err)
	}
	if engOpts.RecheckWindow == 0 {
		engOpts.RecheckWindow = 7 * 24 * time.Hour
	}
	if engOpts.Now == nil {
		engOpts.Now = sim.Now
	}
	engOpts.Logger = zaptest.NewLogger(t)
	engOpts.Requests = requests
	h.engine = syncer.New(client, h.archive, engOpts)
	return h
}

// movedMessage is a message whose status upstream is not the archived one.
func (h *memHarness) movedMessage() cekatsim.TruthMessage {
	h.t.Helper()
	archived := map[string]string{}
	for _, r := range h.archive.Messages() {
		archived[r.MessageID] = r.Status
	}
	for _, m := range h.sim.Truth() {
		if s, ok := archived[m.ID]; ok && s != m.Status {
			return m
		}
	}
	h.t.Fatal("no archived status differs from upstream")
	return cekatsim.TruthMessage{}
}

func (h *memHarness) setHook(f func(w http.ResponseWriter, r *http.Request) bool) {
	if f == nil {
		h.hook.Store(nil)
		return
	}
	h.hook.Store(&f)
}

func (h *memHarness) sync(ctx context.Context) syncer.Summary {
	h.t.Helper()
	sum := h.engine.Sync(ctx, nil)
	if err := sum.Failure(); err != nil {
		h.t.Fatalf("sync failed: %v %v", err, sum.Errors)
	}
	return sum
}

// assertMatchesTruth compares ids, statuses and the enrichment of every
// listed message with the simulator.
func (h *memHarness) assertMatchesTruth() {
	h.t.Helper()
	want := map[string]string{}
	for _, m := range h.sim.Truth() {
		if !m.Malformed && !m.Unlisted {
			want[m.ConversationID+"/"+m.ID] = m.Status
		}
	}
	got := map[string]string{}
	for _, r := range h.archive.Messages() {
		got[r.ConversationID+"/"+r.MessageID] = r.Status
		if !r.Enriched {
			h.t.Errorf("message %s not enriched: %s", r.MessageID, r.EnrichError)
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		h.t.Errorf("archive differs from the truth (-truth +archive):\n%s", truncate(diff, 3000))
	}
}

// A run stopped at any moment, even while it waits for detail answers,
// keeps every answer it was given and never moves past a message it did not
// archive: stopped runs under live traffic, then one clean run, give exactly
// the truth, and no message's detail is paid for twice.
func TestStopsAtRandomMomentsLoseNothing(t *testing.T) {
	h := newMemHarness(t, cekatsim.Options{Seed: 3, MessageCounts: []int{240, 3, 130, 0, 57}},
		syncer.Options{DetailConcurrency: 4, Concurrency: 2, PollIdleRuns: 1 << 20})
	rng := rand.New(rand.NewPCG(1, 2))
	var rngMu sync.Mutex
	var stopAt atomic.Int64
	var cancel atomic.Pointer[context.CancelFunc]
	h.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		if h.details.Load()+h.lists.Load() >= stopAt.Load() {
			if c := cancel.Load(); c != nil {
				(*c)()
			}
		}
		if r.URL.Path == "/messages" {
			rngMu.Lock()
			n := rng.IntN(6) - 3
			rngMu.Unlock()
			if conv := r.URL.Query().Get("conversation_id"); conv != "" && n > 0 {
				h.sim.AddMessages(conv, n)
			}
		}
		return false
	})
	for i := range 40 {
		ctx, c := context.WithCancel(context.Background())
		cancel.Store(&c)
		rngMu.Lock()
		stopAt.Store(h.details.Load() + h.lists.Load() + 1 + int64(rng.IntN(40)))
		rngMu.Unlock()
		sum := h.engine.Sync(ctx, nil)
		stopped := ctx.Err() != nil
		c()
		if err := sum.Failure(); err != nil {
			t.Fatalf("stopped run %d failed: %v %v", i, err, sum.Errors)
		}
		if stopped && !sum.Stopped {
			t.Fatalf("run %d was stopped but does not say so: %+v", i, sum)
		}
	}
	cancel.Store(nil)
	stopAt.Store(1 << 62)
	h.setHook(nil)
	h.sync(context.Background())
	h.assertMatchesTruth()
	if paid, archived := h.details.Load(), int64(len(h.archive.Messages())); paid > archived+40*4 {
		t.Errorf("%d detail calls for %d messages: answers were thrown away", paid, archived)
	}
	for _, run := range h.archive.Runs() {
		if run.Result != "ok" && run.Result != "stopped" {
			t.Errorf("run %s recorded as %s: %s", run.RunID, run.Result, run.Error)
		}
	}
}

// A stop after k of a page's detail answers keeps those k: the next run
// pays only for the rest.
func TestStopMidPageKeepsWhatWasPaid(t *testing.T) {
	h := newMemHarness(t, cekatsim.Options{Seed: 5, MessageCounts: []int{100}}, syncer.Options{DetailConcurrency: 1})
	ctx, cancel := context.WithCancel(context.Background())
	h.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		if h.details.Load() == 37 {
			cancel()
		}
		return false
	})
	sum := h.engine.Sync(ctx, nil)
	if !sum.Stopped || sum.Failure() != nil {
		t.Fatalf("stopped run: %+v", sum)
	}
	kept := len(h.archive.Messages())
	if kept < 36 {
		t.Fatalf("a stop after 37 detail answers kept %d messages", kept)
	}
	paid := h.details.Load()
	h.setHook(nil)
	h.sync(context.Background())
	if again := h.details.Load() - paid; again != int64(100-kept) {
		t.Errorf("the next run made %d detail calls for the %d messages left", again, 100-kept)
	}
	h.assertMatchesTruth()
}

// A detail that fails for a reason that may pass costs that message only:
// it is archived without enrichment, the page goes on, and it is enriched on
// the schedule once the API answers again.
func TestTransientDetailFailureCostsOneMessage(t *testing.T) {
	h := newMemHarness(t, cekatsim.Options{Seed: 6, MessageCounts: []int{30}}, syncer.Options{})
	var broken atomic.Value
	broken.Store("")
	h.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path != "/messages" && broken.Load() == "" {
			broken.Store(r.URL.Path)
		}
		if r.URL.Path == broken.Load() {
			w.WriteHeader(http.StatusBadGateway)
			return true
		}
		return false
	})
	sum := h.sync(context.Background())
	if sum.NewMessages != 30 || sum.EnrichFailed != 1 {
		t.Fatalf("summary: %+v", sum)
	}
	h.setHook(nil)
	h.sim.Advance(2 * time.Minute)
	h.sync(context.Background())
	h.assertMatchesTruth()
}

// Cursor cycles of any length end the conversation's walk with a clear
// error; the other conversations are not affected.
func TestCursorCycleFailsOnlyItsConversation(t *testing.T) {
	h := newMemHarness(t, cekatsim.Options{Seed: 8, MessageCounts: []int{450, 120}, CursorCycleConversations: 1}, syncer.Options{})
	sum := h.engine.Sync(context.Background(), nil)
	if sum.Failed != 1 || len(sum.Errors) != 1 || !strings.Contains(sum.Errors[0], "cursor cycle") {
		t.Fatalf("summary: %+v", sum)
	}
	if n := h.lists.Load(); n > 12 {
		t.Errorf("%d list calls: the cycle was walked too long", n)
	}
	other := h.sim.ConversationIDs()[1]
	got := 0
	for _, r := range h.archive.Messages() {
		if r.ConversationID == other {
			got++
		}
	}
	if got != 120 {
		t.Errorf("the other conversation has %d of 120 messages", got)
	}
}

// A list item of another conversation is quarantined with its reason, not
// filed under the conversation asked for.
func TestForeignItemsQuarantined(t *testing.T) {
	h := newMemHarness(t, cekatsim.Options{Seed: 9, MessageCounts: []int{150, 80, 40}, ForeignItemRate: 1}, syncer.Options{})
	sum := h.sync(context.Background())
	if sum.Quarantined == 0 {
		t.Fatalf("nothing quarantined: %+v", sum)
	}
	for _, q := range h.archive.Quarantine() {
		if !strings.Contains(q.Error, "belongs to") {
			t.Errorf("quarantined for %q", q.Error)
		}
	}
	h.assertMatchesTruth()
}

// Ids with characters that need escaping work on every path.
func TestOddIDs(t *testing.T) {
	h := newMemHarness(t, cekatsim.Options{Seed: 10, MessageCounts: []int{120, 30}, OddIDs: true}, syncer.Options{})
	sum := h.sync(context.Background())
	if sum.EnrichFailed != 0 {
		t.Errorf("summary: %+v", sum)
	}
	h.assertMatchesTruth()
}

// unknownStatusAPI serves one conversation of one message whose status the
// API does not document (in the detail only, as the documented shape does),
// and counts the detail calls.
type unknownStatusAPI struct {
	sent    time.Time
	details atomic.Int64
}

func (a *unknownStatusAPI) ListMessages(context.Context, string, int, string) (*cekat.Page, error) {
	return &cekat.Page{Messages: []cekat.Message{{ID: "m1", ConversationID: "c1", Timestamp: a.sent}}}, nil
}

func (a *unknownStatusAPI) GetMessage(_ context.Context, id string) (cekat.Message, error) {
	a.details.Add(1)
	return cekat.Message{ID: id, ConversationID: "c1", Timestamp: a.sent, Status: "queued"}, nil
}

// An unknown status is not final: it is asked about on the schedule until
// the window ends, about log2(window / 1 minute) times, then never again.
func TestUnknownStatusRecheckedUntilWindowEnds(t *testing.T) {
	sent := time.Date(2026, 11, 2, 8, 0, 0, 0, time.UTC)
	now := sent
	api := &unknownStatusAPI{sent: sent}
	archive := memarchive.New()
	e := syncer.New(api, archive, syncer.Options{ConversationIDs: []string{"c1"}, RecheckWindow: 7 * 24 * time.Hour,
		Now: func() time.Time { return now }, PollIdleRuns: 1 << 20, Logger: zaptest.NewLogger(t)})
	for ; now.Before(sent.Add(9 * 24 * time.Hour)); now = now.Add(5 * time.Minute) {
		if sum := e.Sync(context.Background(), nil); sum.Failure() != nil {
			t.Fatal(sum.Failure())
		}
		if now.After(sent.Add(7*24*time.Hour)) && api.details.Load() > 0 {
			if c := archive.Checks()["c1/m1"]; c.Open {
				t.Fatalf("still on the schedule after the window: %+v", c)
			}
		}
	}
	// 1 enrichment + re-checks at 5, 10, 20, ... minutes (runs every 5
	// minutes round each up) up to the window's end.
	if n := api.details.Load(); n < 10 || n > 16 {
		t.Errorf("%d detail calls over nine days of runs every 5 minutes", n)
	}
}

// A run that cannot write to the archive fails, and its row is written with
// the next run, so the day's budget still counts its requests. (On the
// archive in memory, whose writes alone fail: ClickHouse cut off fails the
// run's first read, before any request.)
func TestRunRowKeptWhileArchiveIsDown(t *testing.T) {
	sim, err := cekatsim.New(cekatsim.Options{Seed: 11, MessageCounts: []int{20}, Start: time.Date(2026, 11, 2, 8, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	h := newMemHarnessOn(t, archivetest.Memory(t), sim, syncer.Options{ConversationIDs: sim.ConversationIDs()})
	h.archive.SetFailWrites(memarchive.ErrDown)
	sum := h.engine.Sync(context.Background(), nil)
	if sum.Failure() == nil || sum.NewMessages != 0 {
		t.Fatalf("run against a failing archive: %+v", sum)
	}
	h.archive.SetFailWrites(nil)
	h.sync(context.Background())
	runs := h.archive.Runs()
	failed := slices.IndexFunc(runs, func(r sink.RunRow) bool { return r.Result == "failed" })
	if len(runs) != 2 || failed < 0 || runs[failed].Requests == 0 {
		t.Fatalf("runs recorded: %+v", runs)
	}
	h.assertMatchesTruth()
}

// simLister lists the simulator's conversations the way the New Open API
// does, from the simulator's truth, and counts its calls.
type simLister struct {
	sim   *cekatsim.Server
	limit int
	calls atomic.Int64
}

func (l *simLister) ListConversations(_ context.Context, f cekat.ConversationFilter, cursor *cekat.ConversationCursor) (*cekat.ConversationPage, error) {
	l.calls.Add(1)
	newest := map[string]time.Time{}
	for _, m := range l.sim.Truth() {
		if m.Timestamp.After(newest[m.ConversationID]) {
			newest[m.ConversationID] = m.Timestamp
		}
	}
	ids := l.sim.ConversationIDs()
	slices.Sort(ids)
	start := 0
	if cursor != nil {
		start, _ = strconv.Atoi(cursor.ID)
	}
	end := min(start+min(f.Limit, l.limit), len(ids))
	page := &cekat.ConversationPage{}
	for _, id := range ids[start:end] {
		c := cekat.Conversation{ID: id, PlatformType: "whatsapp", LastMessageKnown: true, Raw: []byte(`{"id":"` + id + `"}`)}
		if t, ok := newest[id]; ok {
			c.LastMessageAt = &t
			c.Raw = []byte(fmt.Sprintf(`{"id":%q,"last":%q}`, id, t))
		}
		page.Conversations = append(page.Conversations, c)
	}
	if end < len(ids) {
		page.Next = &cekat.ConversationCursor{ID: strconv.Itoa(end), TS: "x"}
	}
	return page, nil
}

// With discovery, the archiver finds conversations nobody listed, and a run
// polls only those the conversation list shows with a new last message.
func TestDiscoveryPollsOnlyWhatChanged(t *testing.T) {
	sim, err := cekatsim.New(cekatsim.Options{Seed: 21, Conversations: 250, MeanMessages: 6,
		Start: time.Date(2026, 11, 2, 8, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	lister := &simLister{sim: sim, limit: 100}
	h := newMemHarnessFor(t, sim, syncer.Options{Discovery: &syncer.Discovery{API: lister}})
	sum := h.sync(context.Background())
	if sum.Listed != 250 || lister.calls.Load() != 3 {
		t.Fatalf("first run listed %d conversations in %d calls", sum.Listed, lister.calls.Load())
	}
	h.assertMatchesTruth()

	// Idle: the list's three pages and nothing else.
	lists, details := h.lists.Load(), h.details.Load()
	sum = h.sync(context.Background())
	if got := h.lists.Load() - lists; got != 0 || h.details.Load() != details || sum.Unchanged != 250 {
		t.Errorf("idle run: %d message list calls, %d detail calls, %d unchanged", got, h.details.Load()-details, sum.Unchanged)
	}
	if n := lister.calls.Load(); n != 6 {
		t.Errorf("%d conversation list calls after two runs, want 6", n)
	}

	// New messages in two conversations: those two are polled, no other.
	ids := sim.ConversationIDs()
	sim.Advance(time.Minute)
	sim.AddMessages(ids[7], 3)
	sim.AddMessages(ids[200], 1)
	lists = h.lists.Load()
	sum = h.sync(context.Background())
	if got := h.lists.Load() - lists; got != 2 || sum.NewMessages != 4 {
		t.Errorf("after new messages in 2 conversations: %d list calls, %d new messages", got, sum.NewMessages)
	}
	// Every message is archived (statuses that moved in that minute follow
	// their schedule).
	if got, want := len(h.archive.Messages()), len(sim.Truth()); got != want {
		t.Errorf("%d messages archived of %d", got, want)
	}
}

// memEvents is an event store in memory.
// memEvents keeps webhook events like the webhook_events table: the
// highest version of each event wins.
type memEvents struct {
	mu      sync.Mutex
	events  map[string]sink.WebhookEvent
	pending map[string]bool
	tracked []string
	// archive, when set, is looked up for archived messages too.
	archive interface{ Messages() []sink.MessageRow }
	// failDone fails this many saves of processed events (a crash after
	// the sync, before the events were marked).
	failDone int
}

func (m *memEvents) SeenWebhookEvents(_ context.Context, ids ...string) (map[string]bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]bool{}
	for _, id := range ids {
		_, out[id] = m.events[id]
	}
	return out, nil
}

func (m *memEvents) MessageConversations(_ context.Context, ids []string) (map[string]string, error) {
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	out := map[string]string{}
	if m.archive != nil {
		for _, r := range m.archive.Messages() {
			if want[r.MessageID] {
				out[r.MessageID] = r.ConversationID
			}
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, e := range m.events {
		if want[e.MessageID] && e.ConversationID != "" {
			out[e.MessageID] = e.ConversationID
		}
	}
	return out, nil
}

func (m *memEvents) add(name, conv, msg string) {
	id := fmt.Sprintf("evt_%d", m.count())
	_ = m.SaveWebhookEvents(context.Background(), sink.WebhookEvent{EventID: id, Event: name, ConversationID: conv, MessageID: msg, Version: 1})
}

func (m *memEvents) count() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.events)
}

func (m *memEvents) PendingWebhookEvents(context.Context, time.Time, int) ([]sink.WebhookEvent, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []sink.WebhookEvent
	for id := range m.pending {
		out = append(out, m.events[id])
	}
	return out, nil
}

func (m *memEvents) SaveWebhookEvents(_ context.Context, events ...sink.WebhookEvent) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.events == nil {
		m.events, m.pending = map[string]sink.WebhookEvent{}, map[string]bool{}
	}
	if m.failDone > 0 && len(events) > 0 && events[0].Processed {
		m.failDone--
		return errors.New("stored nothing: ClickHouse went away")
	}
	for _, e := range events {
		if old, ok := m.events[e.EventID]; ok && old.Version >= e.Version {
			continue
		}
		m.events[e.EventID] = e
		if e.Processed {
			delete(m.pending, e.EventID)
		} else {
			m.pending[e.EventID] = true
		}
	}
	return nil
}

func (m *memEvents) TrackConversations(_ context.Context, _ string, ids ...string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.tracked = append(m.tracked, ids...)
	return nil
}

// Webhook events are hints acted on through the API: a new message syncs
// its conversation (found through the message when the event does not name
// it), a status change re-checks that message, a new conversation is
// tracked; nothing else is polled, and each event is acted on once.
func TestWebhookEventsAreHintsActedOnOnce(t *testing.T) {
	h := newMemHarness(t, cekatsim.Options{Seed: 31, MessageCounts: []int{20, 30, 40}, Shape: cekatsim.ShapeDocumented}, syncer.Options{})
	h.sync(context.Background())
	ids := h.sim.ConversationIDs()
	events := &memEvents{}

	// A new message in the second conversation; the event names only the message.
	h.sim.Advance(time.Minute)
	h.sim.AddMessages(ids[1], 1)
	truth := h.sim.Truth()
	var newest cekatsim.TruthMessage
	for _, m := range truth {
		if m.ConversationID == ids[1] && !m.Timestamp.Before(newest.Timestamp) {
			newest = m
		}
	}
	events.add("message.received", "", newest.ID)
	events.add("ticket.created", "", "t1")
	lists, details := h.lists.Load(), h.details.Load()
	out, err := h.engine.ApplyEvents(context.Background(), events)
	if err != nil || out.Sync.Failure() != nil {
		t.Fatalf("apply: %v %+v", err, out)
	}
	if got := h.lists.Load() - lists; got != 1 || out.Events != 1 || out.Ignored != 1 {
		t.Errorf("%d list calls, %+v; want the one conversation synced", got, out)
	}
	if got := h.details.Load() - details; got != 1 {
		t.Errorf("%d detail calls; want one, to find the conversation, whose answer also enriches the message", got)
	}
	found := false
	for _, r := range h.archive.Messages() {
		found = found || r.MessageID == newest.ID
	}
	if !found {
		t.Error("the new message was not archived")
	}

	// A status that moved: that message alone is fetched again.
	h.sim.Advance(3 * 24 * time.Hour)
	moved := h.movedMessage()
	events.add("message.read", moved.ConversationID, moved.ID)
	lists, details = h.lists.Load(), h.details.Load()
	if _, err := h.engine.ApplyEvents(context.Background(), events); err != nil {
		t.Fatal(err)
	}
	if got := h.lists.Load() - lists; got != 0 {
		t.Errorf("%d list calls for a status event", got)
	}
	for _, r := range h.archive.Messages() {
		if r.MessageID == moved.ID && r.Status != moved.Status {
			t.Errorf("status of %s is %q, upstream %q", moved.ID, r.Status, moved.Status)
		}
	}
	if got := h.details.Load() - details; got < 1 {
		t.Errorf("%d detail calls for a status event", got)
	}

	// Acted on once: nothing is pending any more.
	lists, details = h.lists.Load(), h.details.Load()
	if out, err := h.engine.ApplyEvents(context.Background(), events); err != nil || out.Events != 0 {
		t.Errorf("again: %+v, %v", out, err)
	}
	if h.lists.Load() != lists || h.details.Load() != details {
		t.Error("events acted on twice")
	}
}

// A detail answer fetched for an event is not fetched again: not after a
// crash between the sync and the marking of the event, not for an event of
// a message a concurrent run archived.
func TestEventDetailIsNotFetchedAgain(t *testing.T) {
	h := newMemHarness(t, cekatsim.Options{Seed: 34, MessageCounts: []int{20, 30}, Shape: cekatsim.ShapeDocumented}, syncer.Options{})
	h.sync(context.Background())
	ids := h.sim.ConversationIDs()
	events := &memEvents{archive: h.archive, failDone: 1}
	h.sim.Advance(time.Minute)
	h.sim.AddMessages(ids[1], 1)
	newest := func(conv string) string {
		var m cekatsim.TruthMessage
		for _, t := range h.sim.Truth() {
			if t.ConversationID == conv && !t.Timestamp.Before(m.Timestamp) {
				m = t
			}
		}
		return m.ID
	}
	events.add("message.received", "", newest(ids[1]))
	details := h.details.Load()
	if _, err := h.engine.ApplyEvents(context.Background(), events); err == nil {
		t.Fatal("the failed marking of the events was not reported")
	}
	if got := h.details.Load() - details; got != 1 {
		t.Fatalf("%d detail calls for the event; want 1", got)
	}
	details = h.details.Load()
	if out, err := h.engine.ApplyEvents(context.Background(), events); err != nil || out.Events != 1 {
		t.Fatalf("after the failure: %+v, %v", out, err)
	}
	if got := h.details.Load() - details; got != 0 {
		t.Errorf("%d detail calls for the event acted on again; want 0", got)
	}

	// A message a cron run archived before the event was acted on.
	h.sim.Advance(time.Minute)
	h.sim.AddMessages(ids[0], 1)
	h.sync(context.Background())
	events.add("message.received", "", newest(ids[0]))
	details = h.details.Load()
	if out, err := h.engine.ApplyEvents(context.Background(), events); err != nil || out.Events != 1 {
		t.Fatalf("event of an archived message: %+v, %v", out, err)
	}
	if got := h.details.Load() - details; got != 0 {
		t.Errorf("%d detail calls for an event of an archived message; want 0", got)
	}
	for _, e := range events.events {
		if e.ConversationID == "" {
			t.Errorf("event %s stored without its conversation", e.EventID)
		}
	}
}

// A conversation.created event is tracked only once the sync it asks for
// found the conversation upstream: a signed event with an id the API does
// not know costs its one list call and is not tracked.
func TestCreatedConversationIsTrackedOnceConfirmed(t *testing.T) {
	h := newMemHarness(t, cekatsim.Options{Seed: 35, MessageCounts: []int{5, 6}, Shape: cekatsim.ShapeDocumented}, syncer.Options{})
	h.sync(context.Background())
	events := &memEvents{}
	h.sim.Advance(time.Minute)
	real := h.sim.AddConversation()
	events.add("conversation.created", real, "")
	events.add("conversation.created", "conv-that-does-not-exist", "")
	lists := h.lists.Load()
	out, err := h.engine.ApplyEvents(context.Background(), events)
	if err != nil || out.Sync.Failure() != nil {
		t.Fatalf("apply: %v %+v", err, out)
	}
	if got := h.lists.Load() - lists; got != 2 {
		t.Errorf("%d list calls; want one per conversation, the confirmation included", got)
	}
	if !slices.Equal(events.tracked, []string{real}) {
		t.Errorf("tracked %v; want only %s", events.tracked, real)
	}
	for _, e := range events.events {
		if e.ConversationID == "conv-that-does-not-exist" && (!e.Processed || !strings.Contains(e.Outcome, "404")) {
			t.Errorf("event of the unknown conversation: %+v", e)
		}
	}
}

// A status event that names only the message costs one detail call: the
// answer that tells the conversation is also the fresh status.
func TestStatusEventWithoutConversationCostsOneCall(t *testing.T) {
	// No scheduled re-checks: only the event asks for the status.
	h := newMemHarness(t, cekatsim.Options{Seed: 32, MessageCounts: []int{20, 30}, Shape: cekatsim.ShapeDocumented},
		syncer.Options{RecheckWindow: -1})
	h.sync(context.Background())
	h.sim.Advance(3 * 24 * time.Hour)
	moved := h.movedMessage()
	events := &memEvents{}
	events.add("message.read", "", moved.ID)
	lists, details := h.lists.Load(), h.details.Load()
	if out, err := h.engine.ApplyEvents(context.Background(), events); err != nil || out.Sync.Failure() != nil {
		t.Fatalf("apply: %v %+v", err, out)
	}
	if l, d := h.lists.Load()-lists, h.details.Load()-details; l != 0 || d != 1 {
		t.Errorf("%d list and %d detail calls; want 0 and 1", l, d)
	}
	for _, r := range h.archive.Messages() {
		if r.MessageID == moved.ID && r.Status != moved.Status {
			t.Errorf("status of %s is %q, upstream %q", moved.ID, r.Status, moved.Status)
		}
	}
}

// With webhooks telling status changes, scheduled re-checks are only the
// net for lost events: at ages 6h and 24h, then at the window's end.
func TestRecheckFloorSpacesScheduledChecks(t *testing.T) {
	const floor = 6 * time.Hour
	h := newMemHarness(t, cekatsim.Options{Seed: 33, MessageCounts: []int{40, 40}, Shape: cekatsim.ShapeDocumented},
		syncer.Options{RecheckFloor: floor})
	h.sync(context.Background())
	h.sim.Advance(time.Minute)
	h.sim.AddMessages(h.sim.ConversationIDs()[0], 3) // outbound ones among them stay open
	h.sim.AddMessages(h.sim.ConversationIDs()[1], 3)
	h.sync(context.Background())
	now := h.sim.Now()
	byAge := map[time.Duration]int{}
	for _, c := range h.archive.Checks() {
		if !c.Open {
			continue
		}
		want := c.Until
		if age := now.Sub(c.SentAt); age < floor {
			want = c.SentAt.Add(floor)
		} else if age < 4*floor {
			want = c.SentAt.Add(4 * floor)
		}
		if !c.NextCheckAt.Equal(want) {
			t.Errorf("%s (sent %v before): next check at %v, want %v", c.MessageID, now.Sub(c.SentAt), c.NextCheckAt, want)
		}
		byAge[c.NextCheckAt.Sub(c.SentAt)]++
	}
	if byAge[floor] == 0 || byAge[4*floor] == 0 {
		t.Fatalf("next checks by age %v: the test needs messages younger than 6h and 24h", byAge)
	}
}

// A conversation synced for a webhook event between two listings is not
// polled again by the next cron run only because the list now shows the
// message the event told of; one whose event was lost is.
func TestEventSyncedConversationNotPolledAgain(t *testing.T) {
	sim, client := newSimClient(t, cekatsim.Options{Seed: 23, Shape: cekatsim.ShapeReal, Conversations: 20, MeanMessages: 6,
		Start: time.Date(2026, 11, 2, 8, 0, 0, 0, time.UTC)}, cekat.Options{Location: jakarta(t)})
	archive := memarchive.New()
	e := syncer.New(client, archive, syncer.Options{ConversationIDs: sim.ConversationIDs(), Now: sim.Now,
		Logger: zaptest.NewLogger(t), Discovery: &syncer.Discovery{API: client}})
	ctx := context.Background()
	if sum := e.Sync(ctx, nil); sum.Failure() != nil {
		t.Fatal(sum.Failure())
	}
	ids := sim.ConversationIDs()
	events := &memEvents{}
	sim.Advance(time.Minute)
	sim.AddMessages(ids[3], 2)
	events.add("message.received", ids[3], "")
	if out, err := e.ApplyEvents(ctx, events); err != nil || out.Sync.Failure() != nil || out.Sync.NewMessages != 2 {
		t.Fatalf("event: %+v, %v", out, err)
	}
	sim.Advance(time.Minute)
	sim.AddMessages(ids[5], 1) // its event is lost
	lists := sim.Counts().Endpoint(cekatsim.EndpointList)
	sum := e.Sync(ctx, nil)
	if sum.Failure() != nil {
		t.Fatal(sum.Failure())
	}
	if got := sim.Counts().Endpoint(cekatsim.EndpointList) - lists; got != 1 || sum.NewMessages != 1 || sum.Unchanged != 19 {
		t.Errorf("cron run: %d message list calls, %d new messages, %d unchanged; want 1, 1, 19", got, sum.NewMessages, sum.Unchanged)
	}
	if got, want := len(archive.Messages()), len(sim.Truth()); got != want {
		t.Errorf("%d messages archived of %d", got, want)
	}
}
