package syncer_test

import (
	"context"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http/httptest"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/cekat-archiver/cekat-archiver/sink"
	"github.com/cekat-archiver/cekat-archiver/syncer"
	"github.com/cekat-archiver/cekat-archiver/syncer/budget"
	"github.com/cekat-archiver/cekat-archiver/syncer/cekat"
	"github.com/cekat-archiver/cekat-archiver/syncer/cekatsim"
	"github.com/cekat-archiver/cekat-archiver/syncer/memarchive"
	"github.com/cekat-archiver/cekat-archiver/syncer/webhook"
)

// A simulated week: the engine on the simulator's clock, runs every five
// minutes, new messages arriving all day in bursts, statuses moving on
// upstream as they do (delivered within minutes, read within minutes to
// days, some never). It measures what the archiver costs in its steady
// state, which a first sync says nothing about.

var weekDays = flag.Int("week.days", 7, "virtual days BenchmarkSimulatedWeek runs")

type weekConfig struct {
	shape         cekatsim.Shape
	conversations int
	meanHistory   int // heavy-tailed history before the week starts
	perDay        int // new messages a day
	days          int
	runEvery      time.Duration
	discovery     bool // list conversations each run and poll only those that changed
	// webhooks: the simulator's signed events reach the receiver and are
	// acted on in the minute they happen; the runs every runEvery are the
	// net for lost ones, and scheduled re-checks wait at least 6h.
	webhooks bool
	// capPerDay, when set, is the API's daily cap: the engine's budget
	// spreads it over the day (runs every runEvery). capPerMinute is the
	// plan's rate, checked against the calls of each run.
	capPerDay, capPerMinute int
	// inbox: runs list the whole inbox first (the inbox sweep).
	inbox bool
}

// webhookDebounce is what the daemon waits after an event before acting
// (webhook.debounce): added to the freshness of the webhook variant, whose
// events are acted on within the simulated minute.
const webhookDebounce = 2 * time.Second

// weekRecheckFloor is webhook.recheck_interval's default.
const weekRecheckFloor = 6 * time.Hour

// seenArchive records when each message was first handed to the archive,
// on the simulator's clock and on the wall clock since the step began, and
// counts every row written (a status change is a new row).
type seenArchive struct {
	*memarchive.Archive
	now       func() time.Time
	mu        sync.Mutex // the engine writes from several goroutines
	stepBegan time.Time
	seen      map[string]seenAt
	rows      int64
}

type seenAt struct {
	at   time.Time     // simulated
	wall time.Duration // since the step began
}

func (a *seenArchive) AddMessages(ctx context.Context, rows ...sink.MessageRow) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, r := range rows {
		k := r.ConversationID + "/" + r.MessageID
		if _, ok := a.seen[k]; !ok {
			a.seen[k] = seenAt{at: a.now(), wall: time.Since(a.stepBegan)}
		}
	}
	a.rows += int64(len(rows))
	return a.Archive.AddMessages(ctx, rows...)
}

type weekDay struct {
	calls, list, detail int64 // requests made during the day (list counts conversation list pages too)
	newMessages         int64 // messages that arrived upstream
	matched, total      int   // archived statuses equal to upstream at the day's end
	worstStale          time.Duration
	enriched, archived  int   // at the day's end
	capCalls            int64 // under a cap: the calls of the limiter's day
	active              int   // conversations that got a message
	missingNew          int   // of missing: messages sent since the first run
	violations          int   // statuses stale beyond the freshness rule
	missing             int   // messages upstream not in the archive though their conversation was due since
	unpolled            int   // messages too recent for a quiet conversation's next poll
}

type weekResult struct {
	cfg              weekConfig
	history          int   // messages before the week
	firstSync        int64 // requests of the first run
	days             []weekDay
	archived         int
	calls            int64
	steadyCalls      int64 // after the first run
	steadyMessages   int64 // archived after the first run
	list, detail     int64
	rechecks         int64 // detail calls that were re-checks
	changes          int64
	elapsed          time.Duration
	maxRunsRequests  int64
	rows             int64         // rows written: new messages and status changes
	events           int64         // webhook events acted on or ignored
	eventCalls       int64         // calls made acting on them
	eventLists       int64         // of which list calls
	fresh50, fresh95 time.Duration // from a message upstream to its row, messages of the week
	darkRuns         int           // runs that the spent day's budget stopped
	steadyMaxRun     int64         // most calls in one run after the first
}

func runWeek(t testing.TB, cfg weekConfig) weekResult {
	start := time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)
	simOpts := cekatsim.Options{Seed: 42, Shape: cfg.shape, Conversations: cfg.conversations,
		MeanMessages: cfg.meanHistory, Start: start}
	events := &memEvents{}
	if cfg.webhooks {
		const secret = "week-secret"
		recv, err := webhook.New(webhook.Options{Secret: []byte(secret), Store: events})
		if err != nil {
			t.Fatal(err)
		}
		hooks := httptest.NewServer(recv)
		defer hooks.Close()
		simOpts.WebhookURL, simOpts.WebhookSecret = hooks.URL+"/webhook", secret
	}
	sim, err := cekatsim.New(simOpts)
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	var counts callCounts
	url := serveCounted(t, sim, &counts)
	archive := &seenArchive{Archive: memarchive.New(), now: sim.Now, stepBegan: time.Now(), seen: map[string]seenAt{}}
	var limiter *budget.Limiter
	// Jakarta: the zone of the flat shape's zone-less times.
	co := cekat.Options{BaseURL: url, APIKey: cekatsim.DefaultAPIKey, Location: jakarta(t)}
	if cfg.capPerDay > 0 {
		// The day's cap on the simulator's clock (plus the wall time of the
		// step, so that the pace moves); the rate per minute is checked
		// against each run's calls instead of slowing the simulation.
		clock := func() time.Time { return sim.Now().Add(time.Since(archive.stepBegan)) }
		limiter = dailyCap(t, cfg.capPerDay, clock, budget.Pace{RunEvery: cfg.runEvery})
		co.Limiter = limiter
	}
	client, err := cekat.New(co)
	if err != nil {
		t.Fatal(err)
	}
	convs := sim.ConversationIDs()
	opts := syncer.Options{ConversationIDs: convs, RecheckWindow: 7 * 24 * time.Hour,
		Now: sim.Now, Logger: zap.NewNop(), Concurrency: 4, DetailConcurrency: 8}
	if cfg.discovery {
		opts.Discovery = &syncer.Discovery{API: client}
	}
	if cfg.inbox {
		opts.Inbox = &syncer.InboxSweep{API: client}
	}
	if cfg.webhooks {
		opts.RecheckFloor = weekRecheckFloor
	}
	if limiter != nil {
		opts.Budget = limiter
	}
	e := syncer.New(client, archive, opts)

	res := weekResult{cfg: cfg, history: len(sim.Truth())}
	// Which conversations get messages: heavy-tailed weights, so a few
	// are busy all day and most are quiet.
	rng := rand.New(rand.NewPCG(7, 11))
	weights := make([]float64, len(convs))
	var sum float64
	for i := range weights {
		weights[i] = 1 / math.Pow(float64(i+1), 1.1)
		sum += weights[i]
	}
	rng.Shuffle(len(weights), func(i, j int) { weights[i], weights[j] = weights[j], weights[i] })
	pick := func() string {
		x := rng.Float64() * sum
		for i, w := range weights {
			if x -= w; x <= 0 {
				return convs[i]
			}
		}
		return convs[len(convs)-1]
	}
	// Bursts of 1-8 messages (a few turns of a chat) at random minutes.
	perMinute := float64(cfg.perDay) / (24 * 60) / 4.5
	began := time.Now()
	ctx := context.Background()
	run := func() {
		before := counts.calls()
		sum := e.Sync(ctx, nil)
		if err := sum.Failure(); err != nil {
			t.Fatalf("run at %v failed: %v %v", sim.Now(), err, sum.Errors)
		}
		if sum.StoppedBy != "" {
			res.darkRuns++
		}
		res.rechecks += sum.Rechecked
		res.changes += sum.Changed
		res.maxRunsRequests = max(res.maxRunsRequests, counts.calls()-before)
		if res.firstSync > 0 {
			res.steadyMaxRun = max(res.steadyMaxRun, counts.calls()-before)
		}
	}
	run()
	res.firstSync = counts.calls()
	firstArchived := len(archive.Messages())
	weekBegan := sim.Now()
	minutesPerRun := int(cfg.runEvery / time.Minute)
	// Under a cap the days are the limiter's, midnight to midnight: the
	// first run (at midnight) counts in the first day, and the last
	// minute's run (at the next midnight) in the next.
	var capL, capD int64
	for d := range cfg.days {
		day := weekDay{}
		active := map[string]bool{}
		l0, d0 := counts.list.Load(), counts.detail.Load()
		for m := 0; m < 24*60; m++ {
			sim.Advance(time.Minute)
			archive.stepBegan = time.Now()
			if m == 24*60-1 && cfg.capPerDay > 0 {
				day.capCalls = counts.calls() - capL - capD
				capL, capD = counts.list.Load(), counts.detail.Load()
			}
			for k := poisson(rng, perMinute); k > 0; k-- {
				n := 1 + rng.IntN(8)
				c := pick()
				active[c] = true
				sim.AddMessages(c, n)
				day.newMessages += int64(n)
			}
			if cfg.webhooks {
				l0, d0 := counts.list.Load(), counts.detail.Load()
				applyWeekEvents(t, sim, e, events, &res)
				res.eventLists += counts.list.Load() - l0
				res.eventCalls += counts.calls() - l0 - d0
			}
			if (m+1)%minutesPerRun == 0 {
				run()
			}
		}
		day.list, day.detail = counts.list.Load()-l0, counts.detail.Load()-d0
		day.calls = day.list + day.detail
		day.active = len(active)
		measureDay(sim, archive.Archive, cfg, &day)
		for _, m := range sim.Truth() {
			if _, ok := archive.seen[m.ConversationID+"/"+m.ID]; !ok && !m.Malformed && !m.Timestamp.Before(weekBegan) &&
				sim.Now().Sub(m.Timestamp) > cfg.runEvery+5*time.Minute {
				day.missingNew++
			}
		}
		res.days = append(res.days, day)
		_ = d
	}
	res.elapsed = time.Since(began)
	res.archived = len(archive.Messages())
	res.list, res.detail = counts.list.Load(), counts.detail.Load()
	res.calls = res.list + res.detail
	res.steadyCalls = res.calls - res.firstSync
	res.steadyMessages = int64(res.archived - firstArchived)
	res.rows = archive.rows
	var fresh []time.Duration
	for _, m := range sim.Truth() {
		if m.Timestamp.Before(weekBegan) {
			continue
		}
		if at, ok := archive.seen[m.ConversationID+"/"+m.ID]; ok {
			f := max(at.at.Sub(m.Timestamp), 0) + at.wall
			if cfg.webhooks {
				f += webhookDebounce
			}
			fresh = append(fresh, f)
		}
	}
	if len(fresh) > 0 {
		slices.Sort(fresh)
		res.fresh50, res.fresh95 = fresh[len(fresh)/2], fresh[len(fresh)*95/100]
	}
	return res
}

// applyWeekEvents waits for the simulator's events of the minute to reach
// the receiver, then acts on them as the daemon does after its debounce.
func applyWeekEvents(t testing.TB, sim *cekatsim.Server, e *syncer.Engine, events *memEvents, res *weekResult) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := sim.WebhooksIdle(ctx); err != nil {
		t.Fatal(err)
	}
	out, err := e.ApplyEvents(ctx, events)
	if err == nil {
		err = out.Sync.Failure()
	}
	if err != nil {
		t.Fatalf("acting on events at %v: %v", sim.Now(), err)
	}
	res.events += int64(out.Events + out.Ignored)
	res.rechecks += out.Sync.Rechecked
	res.changes += out.Sync.Changed
}

// poisson draws from a Poisson distribution of mean m (small m).
func poisson(rng *rand.Rand, m float64) int {
	l, k, p := math.Exp(-m), 0, 1.0
	for {
		p *= rng.Float64()
		if p <= l {
			return k
		}
		k++
	}
}

// measureDay compares the archive with the truth at the simulator's time.
func measureDay(sim *cekatsim.Server, archive *memarchive.Archive, cfg weekConfig, day *weekDay) {
	now := sim.Now()
	got := map[string]string{}
	for _, r := range archive.Messages() {
		got[r.ConversationID+"/"+r.MessageID] = r.Status
		day.archived++
		if r.Enriched {
			day.enriched++
		}
	}
	for _, m := range sim.Truth() {
		if m.Malformed {
			continue
		}
		status, ok := got[m.ConversationID+"/"+m.ID]
		if !ok {
			// A quiet conversation is polled at least every PollMaxInterval (6h).
			if now.Sub(m.Timestamp) > 6*time.Hour+5*time.Minute {
				day.missing++
			} else {
				day.unpolled++
			}
			continue
		}
		day.total++
		if status == m.Status {
			day.matched++
			continue
		}
		stale := now.Sub(m.StatusAt)
		day.worstStale = max(day.worstStale, stale)
		if now.After(statusDeadline(m, cfg)) {
			day.violations++
		}
	}
}

// statusDeadline is when the archive must show m's status at the latest.
// Polling, the freshness rule: by the first run after the message is 2a + 1
// minute old (a: its age when the status changed); runs come every five
// minutes. With webhooks, a status an event tells (delivered, read) within
// the minute; one no event tells (failed) by the net's next check (ages 6h
// and 24h, then the window's end) and the run after it.
func statusDeadline(m cekatsim.TruthMessage, cfg weekConfig) time.Time {
	age := m.StatusAt.Sub(m.Timestamp)
	if !cfg.webhooks {
		return m.Timestamp.Add(2*age + 6*time.Minute)
	}
	if m.Status != "failed" {
		return m.StatusAt.Add(time.Minute)
	}
	for _, at := range []time.Duration{weekRecheckFloor, 4 * weekRecheckFloor} {
		if age <= at {
			return m.Timestamp.Add(at + cfg.runEvery)
		}
	}
	return m.Timestamp.Add(7*24*time.Hour + cfg.runEvery)
}

func (r weekResult) report(logf func(string, ...any)) {
	c := r.cfg
	how := "polling"
	if c.discovery {
		how = "discovery"
	}
	if c.webhooks {
		how += " + webhooks"
	}
	logf("simulated %d days, %s shape, %s: %d conversations, %d messages of history, ~%d new a day, a run every %v (%v of wall time)",
		c.days, c.shape, how, c.conversations, r.history, c.perDay, c.runEvery, r.elapsed.Round(time.Second))
	logf("  first run: %d requests for %d messages of history", r.firstSync, r.history)
	var newMsgs int64
	for i, d := range r.days {
		newMsgs += d.newMessages
		logf("  day %d: %5d calls (list %5d, detail %5d), %4d new messages; statuses matching upstream %.2f%% (%d of %d), worst staleness %v, beyond the rule %d, missing %d (not polled yet %d)",
			i+1, d.calls, d.list, d.detail, d.newMessages, 100*float64(d.matched)/float64(max(d.total, 1)), d.matched, d.total,
			d.worstStale.Round(time.Minute), d.violations, d.missing, d.unpolled)
	}
	logf("  whole week: %d calls for %d archived messages = %.3f calls per archived message; %d rows written (new messages and status changes) = %.3f calls per row",
		r.calls, r.archived, float64(r.calls)/float64(max(r.archived, 1)), r.rows, float64(r.calls)/float64(max(r.rows, 1)))
	logf("  freshness of the week's messages (upstream to archive): p50 %v, p95 %v; webhook events handled %d, with %d calls (%d lists)",
		r.fresh50.Round(time.Second), r.fresh95.Round(time.Second), r.events, r.eventCalls, r.eventLists)
	logf("  after the first run: %d calls for %d new messages = %.3f calls per new message (polls %.3f, details incl. re-checks %.3f; re-checks %.3f, status changes archived %d)",
		r.steadyCalls, r.steadyMessages, float64(r.steadyCalls)/float64(max(r.steadyMessages, 1)),
		float64(r.list-int64(r.firstListCalls()))/float64(max(r.steadyMessages, 1)),
		float64(r.steadyCalls-(r.list-int64(r.firstListCalls())))/float64(max(r.steadyMessages, 1)),
		float64(r.rechecks)/float64(max(r.steadyMessages, 1)), r.changes)
	var perDay []int64
	for _, d := range r.days {
		perDay = append(perDay, d.calls)
	}
	sort.Slice(perDay, func(i, j int) bool { return perDay[i] < perDay[j] })
	logf("  calls per day: min %d, max %d; most in one run %d", perDay[0], perDay[len(perDay)-1], r.maxRunsRequests)
}

// firstListCalls is not tracked separately: the first run's list calls are
// estimated as its requests less one detail call per message of history.
func (r weekResult) firstListCalls() int64 { return max(r.firstSync-int64(r.history), 0) }

func (r weekResult) check(t testing.TB) {
	for i, d := range r.days {
		if d.missing > 0 {
			t.Errorf("day %d: %d messages missing from the archive", i+1, d.missing)
		}
		if d.violations > 0 {
			t.Errorf("day %d: %d statuses stale beyond the freshness rule", i+1, d.violations)
		}
	}
}

// BenchmarkSimulatedWeek prints what a week of five-minute runs costs, for
// both shapes (figures only; nothing is timed):
//
//	go test -run '^$' -bench SimulatedWeek -benchtime 1x ./syncer/
func BenchmarkSimulatedWeek(b *testing.B) {
	for _, v := range []struct {
		shape               cekatsim.Shape
		discovery, webhooks bool
	}{{cekatsim.ShapeDocumented, false, false}, {cekatsim.ShapeReal, false, false}, {cekatsim.ShapeDocumented, true, false},
		{cekatsim.ShapeReal, true, false}, {cekatsim.ShapeDocumented, true, true}, {cekatsim.ShapeReal, true, true}} {
		name := string(v.shape)
		if v.discovery {
			name += "/discovery"
		}
		runEvery := 5 * time.Minute
		if v.webhooks {
			// Events bring changes within seconds; the runs are the net.
			name, runEvery = name+"/webhooks", time.Hour
		}
		b.Run(name, func(b *testing.B) {
			for range b.N {
				r := runWeek(b, weekConfig{shape: v.shape, conversations: 500, meanHistory: 30, perDay: 2000,
					days: *weekDays, runEvery: runEvery, discovery: v.discovery, webhooks: v.webhooks})
				r.report(func(f string, a ...any) { fmt.Printf(f+"\n", a...) })
				r.check(b)
				b.ReportMetric(float64(r.calls)/float64(r.archived), "calls/msg")
				b.ReportMetric(float64(r.steadyCalls)/float64(max(r.steadyMessages, 1)), "calls/new-msg")
				b.ReportMetric(float64(r.calls)/float64(max(r.rows, 1)), "calls/row")
				b.ReportMetric(r.fresh95.Seconds(), "fresh-p95-s")
			}
		})
	}
}

// The week in short: one virtual day, fewer conversations. Every status
// stays within the freshness rule and no message is missing.
func TestSimulatedDay(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	for _, shape := range []cekatsim.Shape{cekatsim.ShapeDocumented, cekatsim.ShapeReal} {
		t.Run(string(shape), func(t *testing.T) {
			t.Parallel() // each shape has its own simulator and archive
			r := runWeek(t, weekConfig{shape: shape, conversations: 60, meanHistory: 20, perDay: 600, days: 1,
				runEvery: 5 * time.Minute, discovery: shape == cekatsim.ShapeReal})
			r.report(t.Logf)
			r.check(t)
		})
	}
}

// An idle run of 500 conversations: one list call per due conversation
// without discovery; the conversation list's pages with it.
func TestIdleRunCalls(t *testing.T) {
	for _, discovery := range []bool{false, true} {
		sim, err := cekatsim.New(cekatsim.Options{Seed: 5, Shape: cekatsim.ShapeReal, Conversations: 500, MeanMessages: 3,
			Start: time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)})
		if err != nil {
			t.Fatal(err)
		}
		counts := func() int { c := sim.Counts(); return c.Total }
		srv := httptest.NewServer(sim.Handler())
		client, err := cekat.New(cekat.Options{BaseURL: srv.URL, APIKey: cekatsim.DefaultAPIKey})
		if err != nil {
			t.Fatal(err)
		}
		opts := syncer.Options{ConversationIDs: sim.ConversationIDs(), Now: sim.Now, Logger: zap.NewNop()}
		if discovery {
			opts.Discovery = &syncer.Discovery{API: client}
		}
		e := syncer.New(client, memarchive.New(), opts)
		if sum := e.Sync(context.Background(), nil); sum.Failure() != nil {
			t.Fatal(sum.Failure())
		}
		before := counts()
		sum := e.Sync(context.Background(), nil)
		idle := counts() - before
		t.Logf("discovery %v: an idle run of 500 conversations made %d calls (%d unchanged, %d not due)", discovery, idle,
			sum.Unchanged, sum.NotDue)
		if discovery && idle > 5 {
			t.Errorf("an idle run with discovery made %d calls, want at most ceil(500/100) = 5", idle)
		}
		srv.Close()
	}
}
