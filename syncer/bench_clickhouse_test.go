package syncer_test

// Benchmarks of the whole sync against the unthrottled simulator on loopback.
//
// Issues:
//   - "End to end against the unthrottled simulator on loopback: enriched messages per second,
//     beside the simulator's own capacity for detail calls measured in the same run (e.g. with
//     a plain load generator); report the ratio."
//   - "A benchmark prints requests per archived message, requests for an idle run, and messages
//     per second against the unthrottled simulator."
//
// Run (ClickHouse from deploy/clickhouse/clickhouse.sh start):
//
//	CEKAT_ARCHIVER_TEST_CLICKHOUSE_ADDR=127.0.0.1:19000 \
//	  go test -run '^$' -bench BenchmarkSync -benchtime 1x ./syncer/
//
// Environment:
//
//	CEKAT_BENCH_SYNC_MESSAGES       messages in the simulator (default 20000)
//	CEKAT_BENCH_SYNC_CONVERSATIONS  conversations holding them, one with a fifth of them (default 40)
//
// Figures are printed (b.ReportMetric, log lines); ratios are taken within the same run.
// Timings are never asserted; only the request counts of the idle run are checked, since they
// are part of the archiver's contract (docs/design.md: "a run where nothing changed costs one list
// call per conversation plus the re-checks").

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cekat-archiver/cekat-archiver/sink"
	"github.com/cekat-archiver/cekat-archiver/sink/sinktest"
	"github.com/cekat-archiver/cekat-archiver/sink/storetest"
	"github.com/cekat-archiver/cekat-archiver/syncer"
	"github.com/cekat-archiver/cekat-archiver/syncer/budget"
	"github.com/cekat-archiver/cekat-archiver/syncer/cekat"
	"github.com/cekat-archiver/cekat-archiver/syncer/cekatsim"
)

// benchSim is an unthrottled simulator served on loopback, with the ids of its messages.
type benchSim struct {
	sim   *cekatsim.Server
	srv   *httptest.Server
	ids   []string // every message id, for the load generator
	convs int
	total int
	conns atomic.Int64 // connections accepted
}

func newBenchSim(b *testing.B) *benchSim {
	b.Helper()
	total := sinktest.EnvInt(b, "CEKAT_BENCH_SYNC_MESSAGES", 20000)
	nConv := sinktest.EnvInt(b, "CEKAT_BENCH_SYNC_CONVERSATIONS", 40)
	counts := benchCounts(total, nConv)
	// Start is left zero: the simulator's clock starts at cekatsim.DefaultStart, in March
	// 2025, so every message was sent long before the wall clock's re-check window (7 days
	// back from time.Now, which the engine's Recheckable query uses). No status is still
	// moving, re-checks are 0, and an idle run costs exactly one list call per conversation.
	sim, err := cekatsim.New(cekatsim.Options{Seed: 42, Shape: cekatsim.ShapeReal, MessageCounts: counts})
	if err != nil {
		b.Fatal(err)
	}
	s := &benchSim{sim: sim, srv: httptest.NewUnstartedServer(sim.Handler()), convs: len(counts), total: total}
	s.srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			s.conns.Add(1)
		}
	}
	s.srv.Start()
	b.Cleanup(s.srv.Close)
	for _, m := range sim.Truth() {
		s.ids = append(s.ids, m.ID)
	}
	if len(s.ids) != total {
		b.Fatalf("simulator holds %d messages, want %d", len(s.ids), total)
	}
	return s
}

// benchCounts spreads total messages over n conversations: one holds a fifth of them, the
// others share the rest unevenly (so pages end anywhere, not only at multiples of 100).
func benchCounts(total, n int) []int {
	if n == 1 {
		return []int{total}
	}
	counts := []int{total / 5}
	rest, others := total-total/5, n-1
	for i := 0; i < others; i++ {
		c := rest / others
		if i%2 == 0 {
			c += c / 3
		} else {
			c -= c / 3
		}
		counts = append(counts, c)
	}
	sum := 0
	for _, c := range counts {
		sum += c
	}
	counts[len(counts)-1] += total - sum
	return counts
}

// BenchmarkSyncEndToEnd archives the simulator's whole history into a fresh archive (the
// first sync), then runs again with nothing new (the idle run), and beside them measures the
// simulator's capacity for detail calls with a plain load generator using the same
// concurrency budget as the engine's detail calls. Sub-benchmarks vary that budget.
func BenchmarkSyncEndToEnd(b *testing.B) {
	addr := sinktest.Addr(b)
	s := newBenchSim(b)
	sinktest.BenchLogf(b, "simulator: %d messages in %d conversations (real shape, unthrottled, loopback)", s.total, s.convs)
	for _, c := range []struct {
		dc      int
		limiter bool
	}{{4, true}, {16, true}, {16, false}} {
		name := fmt.Sprintf("detail=%d", c.dc)
		if !c.limiter {
			name += "/no-limiter"
		}
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				benchSyncOnce(b, addr, s, c.dc, c.limiter)
			}
		})
	}
}

func benchSyncOnce(b *testing.B, addr string, s *benchSim, dc int, limiter bool) {
	// Capacity before and after the engine's run, bracketing it; the better counts.
	gen1 := benchGenerate(b, s, dc, benchPooledClient(dc))
	eng := newBenchEngine(b, addr, s, dc, limiter)

	s.sim.ResetCounts()
	conns0 := s.conns.Load()
	var first syncer.Summary
	firstCPU := benchMeasure(func() {
		// The label lets a CPU profile (-cpuprofile, then pprof -tagfocus phase=engine) tell
		// the engine's work, and that of the goroutines it starts, from the simulator's.
		pprof.Do(context.Background(), pprof.Labels("phase", "engine"), func(ctx context.Context) {
			first = eng.engine.Sync(ctx, nil)
		})
	})
	if err := first.Failure(); err != nil {
		b.Fatalf("first sync: %v %v", err, first.Errors)
	}
	firstCounts := s.sim.Counts()
	firstConns := s.conns.Load() - conns0
	firstTimers := eng.snapshotLog(firstCPU.wall, s.convs)
	if first.NewMessages != int64(s.total) || first.Enriched != int64(s.total) {
		b.Fatalf("first sync: %d new, %d enriched; want %d", first.NewMessages, first.Enriched, s.total)
	}

	s.sim.ResetCounts()
	var idle syncer.Summary
	idleCPU := benchMeasure(func() { idle = eng.engine.Sync(context.Background(), nil) })
	if err := idle.Failure(); err != nil {
		b.Fatalf("idle sync: %v %v", err, idle.Errors)
	}
	idleCounts := s.sim.Counts()
	// With the history older than the re-check window (see newBenchSim) the idle run must
	// cost one list call per conversation plus its re-checks, which are 0 here.
	if want := s.convs + int(idle.Rechecked); idleCounts.Total != want || idle.NewMessages != 0 {
		b.Errorf("idle run: %d requests (%v), %d new messages; want %d requests (%d conversations + %d re-checks)",
			idleCounts.Total, idleCounts.ByEndpoint, idle.NewMessages, want, s.convs, idle.Rechecked)
	}

	gen2 := benchGenerate(b, s, dc, benchPooledClient(dc))
	// The engine's client is built like the command's (cekat.New without an HTTPClient),
	// which uses http.DefaultTransport; measure the generator through it as well.
	genDefault := benchGenerate(b, s, dc, &http.Client{Transport: http.DefaultTransport})

	gen := gen1
	if gen2.perSec() > gen.perSec() {
		gen = gen2
	}
	enrichedPerSec := float64(first.Enriched) / firstCPU.wall.Seconds()
	reqPerMsg := float64(firstCounts.Total) / float64(first.NewMessages)
	b.ReportMetric(enrichedPerSec, "enriched_msg/s")
	b.ReportMetric(gen.perSec(), "sim_detail_req/s")
	b.ReportMetric(enrichedPerSec/gen.perSec(), "ratio")
	b.ReportMetric(genDefault.perSec(), "sim_detail_req/s_defaulttransport")
	b.ReportMetric(reqPerMsg, "req/archived_msg")
	b.ReportMetric(float64(idleCounts.Total), "idle_run_req")
	b.ReportMetric(float64(firstCPU.self.Microseconds())/float64(first.Enriched), "engine_proc_cpu_us/msg")
	b.ReportMetric(float64(gen.cpu.self.Microseconds())/float64(gen.n), "generator_proc_cpu_us/req")
	lim := fmt.Sprintf("client-side API budget of %d requests a minute", benchPerMinute)
	if !limiter {
		lim = "no client-side API budget"
	}
	sinktest.BenchLogf(b, "detail concurrency %d, conversation concurrency %d, %s", dc, benchConvConcurrency, lim)
	sinktest.BenchLogf(b, "first sync: %d messages enriched in %v = %.0f msg/s; %d requests (list %d, detail %d) = %.4f per archived message",
		first.Enriched, firstCPU.wall.Round(time.Millisecond), enrichedPerSec, firstCounts.Total,
		firstCounts.Endpoint(cekatsim.EndpointList), firstCounts.Endpoint(cekatsim.EndpointDetail), reqPerMsg)
	sinktest.BenchLogf(b, "  CPU: %s", firstCPU.per(first.Enriched, "message"))
	sinktest.BenchLogf(b, "  TCP connections opened by the engine's client: %d for %d requests", firstConns, firstCounts.Total)
	firstTimers(b)
	sinktest.BenchLogf(b, "idle run: %d requests (list %d, detail %d) for %d conversations, %d re-checks, in %v",
		idleCounts.Total, idleCounts.Endpoint(cekatsim.EndpointList), idleCounts.Endpoint(cekatsim.EndpointDetail),
		s.convs, idle.Rechecked, idleCPU.wall.Round(time.Millisecond))
	sinktest.BenchLogf(b, "load generator, %d workers, keep-alive pool of %d: %.0f then %.0f detail req/s; through http.DefaultTransport (2 idle conns per host): %.0f req/s",
		dc, dc, gen1.perSec(), gen2.perSec(), genDefault.perSec())
	sinktest.BenchLogf(b, "  CPU of the best generator run: %s", gen.cpu.per(int64(gen.n), "request"))
	sinktest.BenchLogf(b, "  TCP connections opened by the generator: %d with the pool, %d through http.DefaultTransport, for %d requests each", gen.conns, genDefault.conns, gen.n)
	sinktest.BenchLogf(b, "ratio: engine %.0f enriched msg/s / simulator %.0f detail req/s = %.2f", enrichedPerSec, gen.perSec(), enrichedPerSec/gen.perSec())
}

// benchCPU is the wall time of a phase and the CPU time this process (engine, simulator and
// load generator alike) and the ClickHouse server spent in it.
type benchCPU struct {
	wall, self, server time.Duration
	serverKnown        bool
}

func benchMeasure(f func()) benchCPU {
	self0, srv0, ok0 := benchCPUTimes()
	start := time.Now()
	f()
	c := benchCPU{wall: time.Since(start)}
	self1, srv1, ok1 := benchCPUTimes()
	c.self, c.server, c.serverKnown = self1-self0, srv1-srv0, ok0 && ok1
	return c
}

func (c benchCPU) per(n int64, what string) string {
	us := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(n) }
	s := fmt.Sprintf("this process %.1f µs per %s (%.2f cores)", us(c.self), what, c.self.Seconds()/c.wall.Seconds())
	if c.serverKnown {
		s += fmt.Sprintf(", ClickHouse server %.1f µs per %s (%.2f cores)", us(c.server), what, c.server.Seconds()/c.wall.Seconds())
	}
	return s
}

// benchCPUTimes returns the CPU time (user+system) of this process and of the private
// ClickHouse server; ok is false when the server's cannot be read.
func benchCPUTimes() (self, server time.Duration, ok bool) {
	server, ok = sinktest.ServerCPU()
	return sinktest.SelfCPU(), server, ok
}

// benchConvConcurrency is the engine's default: conversations worked on at once.
const benchConvConcurrency = 4

type benchEngine struct {
	engine  *syncer.Engine
	archive *sink.Archive
	api     *benchTimedAPI
	store   *benchTimedArchive
}

// benchPerMinute is the rate the client-side budget is configured with: far above what this
// machine can do, so the unthrottled simulator is met by an unthrottled archiver.
const benchPerMinute = 10_000_000

// newBenchEngine wires a fresh archive and an engine as `cekat-archiver sync` does with the
// default configuration (batches of 10,000 rows or 5 s, 4 conversations at once, a 7-day
// re-check window), except for the detail concurrency, an API budget that does not throttle
// (api.rate_limit.per_minute 10,000,000, no daily cap; or no limiter at all, to see what it
// costs) and no bound on the backfill's duration (a first sync archives everything).
func newBenchEngine(b *testing.B, addr string, s *benchSim, dc int, limiter bool) *benchEngine {
	b.Helper()
	store := storetest.Migrated(b, sink.Options{Addr: []string{addr}})
	archive, err := sink.OpenArchive(context.Background(), store, sink.ArchiveOptions{}) // the defaults, as the archiver runs
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { archive.Close(context.Background()) })
	requests := syncer.NewRequestStats(nil)
	opts := cekat.Options{BaseURL: s.srv.URL, APIKey: cekatsim.DefaultAPIKey, MaxRetries: 5,
		Timeout: 30 * time.Second, OnRequest: requests.Observe, Location: jakarta(b)}
	if limiter {
		// As cmd/cekat-archiver's newLimiter builds it.
		l, err := budget.New(budget.Options{PerMinute: benchPerMinute, PerDay: 0, PurgeShare: -1})
		if err != nil {
			b.Fatal(err)
		}
		opts.Limiter = l
	}
	client, err := cekat.New(opts)
	if err != nil {
		b.Fatal(err)
	}
	e := &benchEngine{archive: archive}
	e.api = &benchTimedAPI{API: client}
	e.store = &benchTimedArchive{Archive: archive}
	e.engine = syncer.New(e.api, e.store, syncer.Options{Concurrency: benchConvConcurrency, DetailConcurrency: dc,
		RecheckWindow: 7 * 24 * time.Hour, BackfillMaxDuration: 24 * time.Hour, ConversationIDs: s.sim.ConversationIDs(),
		Requests: requests})
	return e
}

// benchTimer sums the calls of one method and the time spent in them.
type benchTimer struct {
	calls atomic.Int64
	nanos atomic.Int64
}

func (t *benchTimer) since(start time.Time) {
	t.calls.Add(1)
	t.nanos.Add(int64(time.Since(start)))
}

func (t *benchTimer) reset() { t.calls.Store(0); t.nanos.Store(0) }

func (t *benchTimer) total() time.Duration { return time.Duration(t.nanos.Load()) }

func (t *benchTimer) String() string {
	n := t.calls.Load()
	if n == 0 {
		return "0 calls"
	}
	return fmt.Sprintf("%d calls, %v in all, %v each", n, t.total().Round(time.Millisecond), (t.total() / time.Duration(n)).Round(time.Microsecond))
}

// benchTimedAPI and benchTimedArchive time what the engine waits for: the API's answers and
// the archive's queries and writes. They only measure; every call goes to the real thing.
type benchTimedAPI struct {
	syncer.API
	list, detail benchTimer
}

func (a *benchTimedAPI) ListMessages(ctx context.Context, conv string, limit int, before string) (*cekat.Page, error) {
	defer a.list.since(time.Now())
	return a.API.ListMessages(ctx, conv, limit, before)
}

func (a *benchTimedAPI) GetMessage(ctx context.Context, id string) (cekat.Message, error) {
	defer a.detail.since(time.Now())
	return a.API.GetMessage(ctx, id)
}

type benchTimedArchive struct {
	syncer.Archive
	archivedIDs, addMessages, addState, flush benchTimer
}

func (a *benchTimedArchive) Archived(ctx context.Context, conv string, ids []string) (map[string]sink.ArchivedMessage, error) {
	defer a.archivedIDs.since(time.Now())
	return a.Archive.Archived(ctx, conv, ids)
}

func (a *benchTimedArchive) AddMessages(ctx context.Context, rows ...sink.MessageRow) error {
	defer a.addMessages.since(time.Now())
	return a.Archive.AddMessages(ctx, rows...)
}

func (a *benchTimedArchive) AddState(ctx context.Context, st sink.State) error {
	defer a.addState.since(time.Now())
	return a.Archive.AddState(ctx, st)
}

func (a *benchTimedArchive) Flush(ctx context.Context) error {
	defer a.flush.since(time.Now())
	return a.Archive.Flush(ctx)
}

// snapshotLog returns a function logging the breakdown as it is now, and resets the timers.
func (e *benchEngine) snapshotLog(d time.Duration, convs int) func(b *testing.B) {
	lines := &benchLines{}
	e.logBreakdown(lines, d, convs)
	e.resetTimers()
	return func(b *testing.B) {
		for _, l := range lines.lines {
			sinktest.BenchLogf(b, "%s", l)
		}
	}
}

type benchLines struct{ lines []string }

func (l *benchLines) Logf(format string, args ...any) {
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
}

func (e *benchEngine) resetTimers() {
	for _, t := range []*benchTimer{&e.api.list, &e.api.detail, &e.store.archivedIDs, &e.store.addMessages, &e.store.addState, &e.store.flush} {
		t.reset()
	}
}

// logBreakdown says where the conversation workers' time went: each of the Concurrency
// workers walks one conversation at a time, page by page (list call, archived-ids query,
// the page's detail calls, queueing rows, which flushes a full batch inline).
func (e *benchEngine) logBreakdown(b interface{ Logf(string, ...any) }, d time.Duration, convs int) {
	n := min(benchConvConcurrency, convs)
	workers := time.Duration(n) * d
	share := func(t *benchTimer) string {
		return fmt.Sprintf("%s (%.0f%% of %d workers' time)", t.String(), 100*float64(t.total())/float64(workers), n)
	}
	b.Logf("  list pages         %s", share(&e.api.list))
	b.Logf("  archived-ids query %s", share(&e.store.archivedIDs))
	b.Logf("  AddMessages        %s (full batches flush inside)", share(&e.store.addMessages))
	b.Logf("  final Flush        %s", share(&e.store.flush))
	b.Logf("  detail calls       %s, %.1f in flight on average", e.api.detail.String(), float64(e.api.detail.total())/float64(d))
}

func benchPooledClient(conns int) *http.Client {
	return &http.Client{Transport: &http.Transport{MaxIdleConns: conns, MaxIdleConnsPerHost: conns, IdleConnTimeout: 90 * time.Second}}
}

// benchGenerate sends GET /messages/{id} for every message of the simulator, from workers
// goroutines, reading each answer whole, and returns the requests per second. It does not
// decode the answers: it measures what the simulator can serve.
func benchGenerate(b *testing.B, s *benchSim, workers int, client *http.Client) benchGenResult {
	b.Helper()
	var next atomic.Int64
	var failed atomic.Value
	var wg sync.WaitGroup
	conns0 := s.conns.Load()
	cpu := benchMeasure(func() {
		pprof.Do(context.Background(), pprof.Labels("phase", "generator"), func(context.Context) {
			benchHammer(s, workers, client, &next, &failed, &wg)
		})
	})
	if err := failed.Load(); err != nil {
		b.Fatalf("load generator: %v", err)
	}
	client.CloseIdleConnections()
	return benchGenResult{n: len(s.ids), cpu: cpu, conns: s.conns.Load() - conns0}
}

type benchGenResult struct {
	n     int
	cpu   benchCPU
	conns int64
}

func (r benchGenResult) perSec() float64 { return float64(r.n) / r.cpu.wall.Seconds() }

func benchHammer(s *benchSim, workers int, client *http.Client, next *atomic.Int64, failed *atomic.Value, wg *sync.WaitGroup) {
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(s.ids) || failed.Load() != nil {
					return
				}
				req, err := http.NewRequest(http.MethodGet, s.srv.URL+"/messages/"+s.ids[i], nil)
				if err != nil {
					failed.Store(err)
					return
				}
				req.Header.Set("api_key", cekatsim.DefaultAPIKey)
				resp, err := client.Do(req)
				if err != nil {
					failed.Store(err)
					return
				}
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != http.StatusOK {
					failed.Store(fmt.Errorf("detail %s: status %d, %v", s.ids[i], resp.StatusCode, err))
					return
				}
			}
		}()
	}
	wg.Wait()
}
