package syncer_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
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
	"github.com/cekat-archiver/cekat-archiver/syncer/budget"
	"github.com/cekat-archiver/cekat-archiver/syncer/cekat"
	"github.com/cekat-archiver/cekat-archiver/syncer/cekatsim"
)

// harness is a simulator over HTTP, an empty archive (in memory, or a fresh
// ClickHouse database in the integration run: archivetest.Open) and an
// engine.
type harness struct {
	t       *testing.T
	sim     *cekatsim.Server
	srv     *httptest.Server
	archive archivetest.Archive
	engine  *syncer.Engine
	live    atomic.Bool // add 1-3 messages to a conversation before each of its list answers
	hook    atomic.Pointer[func(w http.ResponseWriter, r *http.Request) bool]
}

func newHarness(t *testing.T, simOpts cekatsim.Options, engOpts syncer.Options, clientOpts ...func(*cekat.Options)) *harness {
	t.Helper()
	h := &harness{t: t}
	if simOpts.Start.IsZero() {
		// History just behind the wall clock, so the re-check window covers
		// the statuses that can still change.
		simOpts.Start = time.Now().UTC().Truncate(time.Second)
	}
	if simOpts.APIKey == "" {
		simOpts.APIKey = "test-key"
	}
	sim, err := cekatsim.New(simOpts)
	if err != nil {
		t.Fatal(err)
	}
	h.sim = sim
	api := sim.Handler()
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hook := h.hook.Load(); hook != nil && (*hook)(w, r) {
			return
		}
		if h.live.Load() && r.URL.Path == "/messages" {
			if conv := r.URL.Query().Get("conversation_id"); conv != "" {
				sim.AddMessages(conv, 1+int(time.Now().UnixNano()%3))
			}
		}
		api.ServeHTTP(w, r)
	}))
	t.Cleanup(h.srv.Close)

	h.archive = archivetest.Open(t)

	requests := syncer.NewRequestStats(nil)
	co := cekat.Options{BaseURL: h.srv.URL, APIKey: simOpts.APIKey, MaxRetries: 10,
		BackoffInitial: time.Millisecond, BackoffMax: 10 * time.Millisecond, ThrottleWait: 10 * time.Millisecond,
		OnRequest: requests.Observe, Location: jakarta(t)}
	for _, f := range clientOpts {
		f(&co)
	}
	client, err := cekat.New(co)
	if err != nil {
		t.Fatal(err)
	}
	if engOpts.RecheckWindow == 0 {
		engOpts.RecheckWindow = 7 * 24 * time.Hour
	}
	engOpts.Requests = requests
	engOpts.Logger = zaptest.NewLogger(t)
	if engOpts.Now == nil {
		// The engine's clock is the simulator's: statuses move when it advances.
		engOpts.Now = sim.Now
	}
	engOpts.ConversationIDs = append(sim.ConversationIDs(), engOpts.ConversationIDs...)
	h.engine = syncer.New(client, h.archive, engOpts)
	return h
}

// jakarta is the zone of the simulator's flat shape's zone-less times.
func jakarta(t testing.TB) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation("Asia/Jakarta")
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func (h *harness) sync(only ...string) syncer.Summary {
	h.t.Helper()
	h.sim.ResetCounts()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	sum := h.engine.Sync(ctx, only)
	if err := sum.Failure(); err != nil {
		h.t.Fatalf("sync failed: %v %v", err, sum.Errors)
	}
	return sum
}

// archived is one message as the analyst view holds it, in the terms of
// the simulator's truth. Delivery times are kept at the archive's
// precision, whole seconds.
type archived struct {
	ID, ConversationID, Direction, Type, Status, Text, MediaURL, Caption, Filename string
	SenderName, SenderPhone, SenderID, SenderType, RecipientPhone, ReplyTo         string
	IsTemplate                                                                     bool
	Timestamp                                                                      time.Time
	DeliveredAt, ReadAt                                                            int64
}

func unix(t *time.Time) int64 {
	if t == nil {
		return 0
	}
	return t.Unix()
}

func (h *harness) truth() (map[string]archived, []cekatsim.TruthMessage) {
	out := map[string]archived{}
	var malformed []cekatsim.TruthMessage
	for _, m := range h.sim.Truth() {
		if m.Malformed {
			malformed = append(malformed, m)
			continue
		}
		out[m.ConversationID+"/"+m.ID] = archived{m.ID, m.ConversationID, m.Direction, m.Type, m.Status, m.Text,
			m.MediaURL, m.Caption, m.Filename, m.SenderName, m.SenderPhone, m.SenderID, m.SenderType, m.RecipientPhone,
			m.ReplyTo, m.IsTemplate, m.Timestamp.UTC(), unix(m.DeliveredAt), unix(m.ReadAt)}
	}
	return out, malformed
}

func (h *harness) archived() map[string]archived {
	out := map[string]archived{}
	for _, r := range h.archive.Messages() {
		out[r.ConversationID+"/"+r.MessageID] = archived{r.MessageID, r.ConversationID, r.Direction, r.Type, r.Status,
			r.Text, r.MediaURL, r.Caption, r.Filename, r.SenderName, r.SenderPhone, r.SenderID, r.SenderType,
			r.RecipientPhone, r.ReplyTo, r.IsTemplate, r.SentAt, unix(r.DeliveredAt), unix(r.ReadAt)}
	}
	return out
}

// assertMatchesTruth compares the archive with the simulator, message by message.
func (h *harness) assertMatchesTruth() {
	h.t.Helper()
	want, _ := h.truth()
	got := h.archived()
	if len(want) == 0 {
		h.t.Fatal("the simulator holds no messages")
	}
	if diff := cmp.Diff(want, got); diff != "" {
		h.t.Errorf("archive differs from the simulator's truth (-truth +archive), %d vs %d messages:\n%s", len(want), len(got), truncate(diff, 4000))
	}
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "\n..."
	}
	return s
}

func (h *harness) quarantined() map[string]int {
	out := map[string]int{}
	for _, q := range h.archive.Quarantine() {
		out[q.Endpoint+"/"+q.MessageID]++
	}
	return out
}

var pageCounts = []int{0, 1, 99, 100, 101, 250, 777, 40, 3, 1203}

// assertFresh checks the freshness rule at the simulator's time: a status
// reached upstream when the message was a old is archived once the message
// is 2a + 1 minute old (runs here are the test's own, at that time).
func (h *harness) assertFresh() {
	h.t.Helper()
	now := h.sim.Now()
	got := h.archived()
	stale, lagging := 0, 0
	for _, m := range h.sim.Truth() {
		if m.Malformed {
			continue
		}
		a, ok := got[m.ConversationID+"/"+m.ID]
		if !ok {
			h.t.Errorf("message %s not archived", m.ID)
			continue
		}
		if a.Status == m.Status && a.ReadAt == unix(m.ReadAt) && a.DeliveredAt == unix(m.DeliveredAt) {
			continue
		}
		age := m.StatusAt.Sub(m.Timestamp)
		if due := m.Timestamp.Add(2*age + time.Minute); now.Before(due) {
			lagging++
			continue
		}
		if stale++; stale <= 5 {
			h.t.Errorf("message %s (%s): archived %q, upstream %q since %v after sending (due by %v); now %v after sending",
				m.ID, m.Direction, a.Status, m.Status, age, 2*age+time.Minute, now.Sub(m.Timestamp))
		}
	}
	if stale > 0 {
		h.t.Errorf("%d statuses stale beyond the freshness rule (%d lagging within it)", stale, lagging)
	}
}

// detailCalls records the detail requests by message id.
func (h *harness) detailCalls() *sync.Map {
	var calls sync.Map
	hook := func(w http.ResponseWriter, r *http.Request) bool {
		if id, ok := strings.CutPrefix(r.URL.Path, "/messages/"); ok {
			n, _ := calls.LoadOrStore(id, new(atomic.Int64))
			n.(*atomic.Int64).Add(1)
		}
		return false
	}
	h.hook.Store(&hook)
	return &calls
}

func TestSyncArchivesExactlyAndCheaply(t *testing.T) {
	for _, shape := range []cekatsim.Shape{cekatsim.ShapeDocumented, cekatsim.ShapeReal} {
		t.Run(string(shape), func(t *testing.T) {
			t.Parallel() // each shape has its own simulator and archive
			h := newHarness(t, cekatsim.Options{Seed: 7, Shape: shape, MessageCounts: pageCounts}, syncer.Options{})

			// First sync: at most ceil(n/100)+1 list calls and n detail calls.
			sum := h.sync()
			counts := h.sim.Counts()
			maxList, total := 0, 0
			for _, n := range pageCounts {
				maxList += (n+99)/100 + 1
				total += n
			}
			if got := counts.Endpoint("list"); got > maxList {
				t.Errorf("first sync made %d list calls, want at most %d", got, maxList)
			}
			if got := counts.Endpoint("detail"); got != total {
				t.Errorf("first sync made %d detail calls for %d messages", got, total)
			}
			if sum.NewMessages != int64(total) || sum.Enriched != int64(total) {
				t.Errorf("summary: %d new, %d enriched; want %d", sum.NewMessages, sum.Enriched, total)
			}
			h.assertMatchesTruth()
			before := h.archiveRows()

			// Nothing changed upstream and no time passed: one list call per
			// conversation, nothing else.
			sum = h.sync()
			counts = h.sim.Counts()
			if got := counts.Endpoint("list"); got != len(pageCounts) {
				t.Errorf("idle run made %d list calls for %d conversations", got, len(pageCounts))
			}
			if got := counts.Endpoint("detail"); got != 0 {
				t.Errorf("idle run made %d detail calls, want none", got)
			}
			if sum.NewMessages != 0 || sum.Changed != 0 {
				t.Errorf("idle run: %+v", sum)
			}
			// Idempotent: the analyst view is exactly as it was, versions included.
			if diff := cmp.Diff(before, h.archiveRows()); diff != "" {
				t.Errorf("an idle run changed the archive:\n%s", truncate(diff, 2000))
			}

			// Statuses move on upstream, in both directions: runs at growing
			// intervals keep every status within the freshness rule, and a
			// message whose archived status is final is never asked again.
			calls := h.detailCalls()
			final := map[string]bool{}
			var changed, rechecks int64
			for _, step := range []time.Duration{time.Minute, 2 * time.Minute, 5 * time.Minute, 15 * time.Minute,
				time.Hour, 3 * time.Hour, 12 * time.Hour, 24 * time.Hour, 48 * time.Hour, 96 * time.Hour, 96 * time.Hour} {
				for _, r := range h.archiveRows() {
					if r.Status == "read" || r.Status == "failed" {
						final[r.MessageID] = true
					}
				}
				calls.Clear()
				h.sim.Advance(step)
				sum = h.sync()
				changed += sum.Changed
				rechecks += sum.Rechecked
				calls.Range(func(id, n any) bool {
					if final[id.(string)] {
						t.Errorf("message %s fetched again with a final status", id)
					}
					return true
				})
				h.assertFresh()
			}
			if changed == 0 {
				t.Error("no status changed over eight days")
			}
			// The window has ended for every message: nothing is asked again.
			calls.Clear()
			h.sim.Advance(24 * time.Hour)
			sum = h.sync()
			if n := h.sim.Counts().Endpoint("detail"); n != 0 || sum.Rechecked != 0 {
				t.Errorf("after the window: %d detail calls", n)
			}
			h.assertMatchesTruth()
			t.Logf("%d messages: %d re-checks over eight days (%.2f a message), %d changes", total, rechecks,
				float64(rechecks)/float64(total), changed)
			if rechecks > int64(15*total) {
				t.Errorf("%d re-checks for %d messages: more than the schedule allows", rechecks, total)
			}
		})
	}
}

func (h *harness) archiveRows() []sink.MessageRow { return h.archive.Messages() }

func TestSyncWholeHistoryWithoutPagination(t *testing.T) {
	h := newHarness(t, cekatsim.Options{Seed: 3, Shape: cekatsim.ShapeReal, NoPagination: true, MessageCounts: pageCounts}, syncer.Options{})
	h.sync()
	if got := h.sim.Counts().Endpoint("list"); got != len(pageCounts) {
		t.Errorf("list calls = %d, want one per conversation", got)
	}
	h.assertMatchesTruth()
	h.sync()
	if got := h.sim.Counts().Endpoint("list"); got != len(pageCounts) {
		t.Errorf("idle list calls = %d", got)
	}
	h.assertMatchesTruth()
}

// Faults, malformed records and live traffic slow runs down but the archive
// ends exact, and every malformed record is in quarantine.
func TestSyncThroughFaultsAndLiveTraffic(t *testing.T) {
	h := newHarness(t, cekatsim.Options{Seed: 11, Shape: cekatsim.ShapeReal, Conversations: 12, MeanMessages: 120,
		Fault5xx: 0.05, FaultDrop: 0.03, FaultTruncate: 0.03, MalformedRate: 0.02}, syncer.Options{Concurrency: 3})
	h.live.Store(true)
	h.sync()
	h.sim.Advance(time.Hour)
	h.sync()
	h.live.Store(false)
	h.sim.Advance(4 * 24 * time.Hour)
	h.sync()
	h.assertMatchesTruth()

	_, malformed := h.truth()
	if len(malformed) == 0 {
		t.Fatal("the simulator served no malformed records")
	}
	q := h.quarantined()
	// Every quarantined record is one of the malformed ones. A record may be kept twice: a
	// run that failed after quarantining it lists it again, and live traffic may have
	// changed it in between (identical records are kept once).
	bad := map[string]bool{}
	for _, m := range malformed {
		bad[m.ID] = true
	}
	n := 0
	for key, c := range q {
		n += c
		if _, id, _ := strings.Cut(key, "/"); id != "" && !bad[id] {
			t.Errorf("%s quarantined %d times, but it was served well-formed", key, c)
		}
	}
	if n == 0 {
		t.Errorf("nothing quarantined, %d malformed served", len(malformed))
	}
	for _, m := range malformed {
		if m.MalformedReason == "bad_timestamp" && q["list/"+m.ID] == 0 {
			t.Errorf("malformed %s (%s) not quarantined", m.ID, m.MalformedReason)
		}
	}
	// Quarantine is not filled again by runs that see nothing new.
	h.sync()
	if after := h.quarantined(); cmp.Diff(q, after) != "" {
		t.Errorf("an idle run quarantined again: %v -> %v", q, after)
	}
}

func TestSyncMarksMissingConversationGone(t *testing.T) {
	h := newHarness(t, cekatsim.Options{Seed: 1, MessageCounts: []int{5}},
		syncer.Options{ConversationsFile: writeIDs(t, "conv_does_not_exist")})
	sum := h.engine.Sync(context.Background(), nil)
	if sum.Gone != 1 || sum.Failed != 0 || sum.Synced != 1 {
		t.Fatalf("summary %+v", sum)
	}
	states, err := h.archive.LoadStates(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	st := states["conv_does_not_exist"]
	if !st.Gone || !strings.Contains(st.LastError, "404") || !st.NextDueAt.After(time.Now().Add(time.Hour)) {
		t.Errorf("state %+v", st)
	}
	// The next run leaves it alone.
	h.sim.ResetCounts()
	sum = h.sync()
	if sum.NotDue != 1 || h.sim.Counts().Endpoint("list") != 1 {
		t.Errorf("gone conversation polled again: %+v, %d list calls", sum, h.sim.Counts().Endpoint("list"))
	}
}

func TestDetailFailureKeepsMessage(t *testing.T) {
	h := newHarness(t, cekatsim.Options{Seed: 5, MessageCounts: []int{30}}, syncer.Options{})
	var failed atomic.Int64
	hook := func(w http.ResponseWriter, r *http.Request) bool {
		if strings.HasPrefix(r.URL.Path, "/messages/") && failed.Add(1)%5 == 0 {
			if failed.Load()%10 == 0 {
				fmt.Fprintf(w, `{"success":true,"data":{"id":%q,"timestamp":"garbage"}}`, strings.TrimPrefix(r.URL.Path, "/messages/"))
				return true
			}
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprint(w, `{"success":false,"error":"Message not found"}`)
			return true
		}
		return false
	}
	h.hook.Store(&hook)
	sum := h.sync()
	if sum.EnrichFailed != 6 || sum.NewMessages != 30 {
		t.Fatalf("summary %+v", sum)
	}
	var unenriched int
	for _, r := range h.archiveRows() {
		if !r.Enriched {
			unenriched++
			if r.EnrichError == "" || r.Raw == "" {
				t.Errorf("row %s archived without its reason or raw: %+v", r.MessageID, r)
			}
		}
	}
	if unenriched != 6 {
		t.Errorf("%d rows not enriched, want 6", unenriched)
	}
	if q := h.quarantined(); len(q) != 3 {
		t.Errorf("undecodable detail answers in quarantine: %v", q)
	}
}

func writeIDs(t *testing.T, ids ...string) string {
	path := t.TempDir() + "/ids.txt"
	if err := os.WriteFile(path, []byte("# tracked\n\n"+strings.Join(ids, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// Quiet conversations are polled less and less often; one that receives a
// message is polled every run again.
func TestAdaptivePolling(t *testing.T) {
	var mu sync.Mutex
	now := time.Now().UTC()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	h := newHarness(t, cekatsim.Options{Seed: 9, MessageCounts: []int{5, 7}}, syncer.Options{
		Now: clock, PollIdleRuns: 2, PollBaseInterval: time.Hour, PollMaxInterval: 3 * time.Hour, RecheckWindow: -1})
	ids := h.sim.ConversationIDs()

	steps := []struct {
		name       string
		before     func()
		wantListed int // list calls of the run
	}{
		{"first sync", func() {}, 2},
		{"idle run 1: still active", func() {}, 2},
		{"idle run 2: quiet now, due in 1h", func() {}, 2},
		{"not due yet", func() { advance(30 * time.Minute) }, 0},
		{"due after 1h", func() { advance(31 * time.Minute) }, 2},
		{"idle 3: due in 2h, not after 1h", func() { advance(61 * time.Minute) }, 0},
		{"due after 2h", func() { advance(60 * time.Minute) }, 2},
		{"idle 4: capped at 3h", func() { advance(3*time.Hour + time.Minute) }, 2},
		{"a message arrives in one: only that one is due (explicitly synced)", func() {
			h.sim.AddMessages(ids[0], 1)
		}, 0},
	}
	for _, s := range steps {
		s.before()
		sum := h.sync()
		if got := h.sim.Counts().Endpoint("list"); got != s.wantListed {
			t.Fatalf("%s: %d list calls, want %d (summary %+v)", s.name, got, s.wantListed, sum)
		}
	}
	// The conversation with the new message, synced by name, is active again.
	h.sim.ResetCounts()
	if sum := h.engine.Sync(context.Background(), ids[:1]); sum.NewMessages != 1 {
		t.Fatalf("explicit sync: %+v", sum)
	}
	sum := h.sync()
	if got := h.sim.Counts().Endpoint("list"); got != 1 || sum.NotDue != 1 {
		t.Errorf("after a new message: %d list calls, %d not due; want the active one polled and the quiet one not", got, sum.NotDue)
	}
	states, err := h.archive.LoadStates(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st := states[ids[1]]; st.IdleRuns < 4 || !st.NextDueAt.After(clock()) {
		t.Errorf("quiet conversation state: %+v", st)
	}
}

// swappable lets a test change the limiter between runs, as a new day would.
type swappable struct {
	l atomic.Pointer[budget.Limiter]
}

func (s *swappable) Wait(ctx context.Context, endpoint string) error {
	return s.l.Load().Wait(ctx, endpoint)
}
func (s *swappable) Observe(endpoint string, status int, h http.Header) {
	s.l.Load().Observe(endpoint, status, h)
}

// A spent daily budget ends the run early without failing it: new messages
// come first, what is left is reported, and the next day's run finishes.
func TestDailyBudgetLeavesTheRestForLater(t *testing.T) {
	lim := &swappable{}
	newDay := func(perDay int) {
		l, err := budget.New(budget.Options{PerMinute: 100000, PerDay: perDay})
		if err != nil {
			t.Fatal(err)
		}
		lim.l.Store(l)
	}
	// The newest pages cost 3 x (1 list + 100 details) = 303 calls; the
	// backfill 3 x (1 + 30) more. A tenth of the day is reserved for purge.
	newDay(350)
	counts := []int{130, 130, 130}
	h := newHarness(t, cekatsim.Options{Seed: 4, MessageCounts: counts}, syncer.Options{Concurrency: 1},
		func(o *cekat.Options) { o.Limiter = lim })
	sum := h.sync()
	if sum.StoppedBy == "" || sum.LeftForLater != 3 || sum.Failure() != nil {
		t.Fatalf("summary: stopped by %q, left for later %d, failure %v", sum.StoppedBy, sum.LeftForLater, sum.Failure())
	}
	if got := h.sim.Counts().Total; got > 315 || got < 303 {
		t.Errorf("%d requests made with a budget of 315 for ingestion", got)
	}
	// New messages came first: every conversation's newest page is archived.
	states, err := h.archive.LoadStates(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range h.sim.ConversationIDs() {
		if states[id].HeadMessageID == "" {
			t.Errorf("conversation %s: newest page not archived before backfill", id)
		}
	}
	newDay(0)
	sum = h.sync()
	if sum.StoppedBy != "" || sum.LeftForLater != 0 {
		t.Errorf("next day: %+v", sum)
	}
	h.assertMatchesTruth()
}

// Backfill stops when the run's backfill time is up and goes on in the
// next runs, even for a conversation that is not due.
func TestBackfillPausesAndResumes(t *testing.T) {
	h := newHarness(t, cekatsim.Options{Seed: 12, MessageCounts: []int{950}}, syncer.Options{
		BackfillMaxDuration: time.Nanosecond, PollIdleRuns: 1, PollBaseInterval: time.Hour, PollMaxInterval: time.Hour,
		Now: time.Now}) // the backfill deadline passes on the wall clock
	runs := 0
	for {
		runs++
		sum := h.sync()
		if sum.LeftForLater == 0 {
			break
		}
		if sum.LeftForLater != 1 || runs > 20 {
			t.Fatalf("run %d: %+v", runs, sum)
		}
		// One list page of backfill per run, on top of the idle check.
		if got := h.sim.Counts().Endpoint("list"); runs > 1 && got > 2 {
			t.Errorf("run %d: %d list calls", runs, got)
		}
	}
	// Newest page on the first run plus one backfill page per run.
	if runs != 9 {
		t.Errorf("backfill took %d runs, want 9", runs)
	}
	h.assertMatchesTruth()
}

// A walk from the top cut off mid-way leaves a gap of new messages; the
// next run fills it with the new messages, not with the backfill.
func TestInterruptedTopWalkIsFilledFirst(t *testing.T) {
	h := newHarness(t, cekatsim.Options{Seed: 21, MessageCounts: []int{50}}, syncer.Options{BackfillMaxDuration: time.Nanosecond,
		Now: time.Now}) // the backfill deadline passes on the wall clock
	h.sync()
	conv := h.sim.ConversationIDs()[0]
	h.sim.AddMessages(conv, 350)

	var failed atomic.Bool
	hook := func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path == "/messages" && r.URL.Query().Get("before") != "" && !failed.Load() {
			failed.Store(true)
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, `{"success":false,"error":{"code":"VALIDATION_ERROR","message":"bad cursor"}}`)
			return true
		}
		return false
	}
	h.hook.Store(&hook)
	ctx := context.Background()
	if sum := h.engine.Sync(ctx, nil); sum.Failed != 1 {
		t.Fatalf("interrupted run: %+v", sum)
	}
	states, err := h.archive.LoadStates(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if g := states[conv].Gaps; len(g) != 1 || g[0].Stop == "" {
		t.Fatalf("gaps after the interrupted walk: %+v", g)
	}
	// The interrupted run archived the newest page, and its backfill phase
	// one more page of the gap (1ns of backfill time still fetches a page);
	// the two pages left come in the next run's first phase, whereas a
	// backfill would take one page per run.
	sum := h.sync()
	if sum.LeftForLater != 0 || sum.NewMessages != 150 {
		t.Errorf("next run: %+v", sum)
	}
	h.assertMatchesTruth()
}
