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
// are part of the archiver's contract (README: "a run where nothing changed costs one list
// call per conversation plus the re-checks").

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cekat-archiver/cekat-archiver/sink"
	"github.com/cekat-archiver/cekat-archiver/sink/sinktest"
	"github.com/cekat-archiver/cekat-archiver/syncer"
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
}

func newBenchSim(b *testing.B) *benchSim {
	b.Helper()
	total := benchEnvInt(b, "CEKAT_BENCH_SYNC_MESSAGES", 20000)
	nConv := benchEnvInt(b, "CEKAT_BENCH_SYNC_CONVERSATIONS", 40)
	counts := benchCounts(total, nConv)
	// Start is left zero: the simulator's clock starts at cekatsim.DefaultStart, in March
	// 2025, so every message was sent long before the wall clock's re-check window (7 days
	// back from time.Now, which the engine's Recheckable query uses). No status is still
	// moving, re-checks are 0, and an idle run costs exactly one list call per conversation.
	sim, err := cekatsim.New(cekatsim.Options{Seed: 42, Shape: cekatsim.ShapeReal, MessageCounts: counts})
	if err != nil {
		b.Fatal(err)
	}
	s := &benchSim{sim: sim, srv: httptest.NewServer(sim.Handler()), convs: len(counts), total: total}
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
	b.Logf("simulator: %d messages in %d conversations (real shape, unthrottled, loopback)", s.total, s.convs)
	for _, dc := range []int{4, 16} {
		b.Run(fmt.Sprintf("detail=%d", dc), func(b *testing.B) {
			for b.Loop() {
				benchSyncOnce(b, addr, s, dc)
			}
		})
	}
}

func benchSyncOnce(b *testing.B, addr string, s *benchSim, dc int) {
	ctx := context.Background()
	// Capacity before and after the engine's run, bracketing it; the better counts.
	genPooled1 := benchGenerate(b, s, dc, benchPooledClient(dc))
	eng := newBenchEngine(b, addr, s, dc)

	s.sim.ResetCounts()
	start := time.Now()
	first := eng.engine.Sync(ctx, nil)
	firstDur := time.Since(start)
	if err := first.Failure(); err != nil {
		b.Fatalf("first sync: %v %v", err, first.Errors)
	}
	firstCounts := s.sim.Counts()
	if first.NewMessages != int64(s.total) || first.Enriched != int64(s.total) {
		b.Fatalf("first sync: %d new, %d enriched; want %d", first.NewMessages, first.Enriched, s.total)
	}

	s.sim.ResetCounts()
	start = time.Now()
	idle := eng.engine.Sync(ctx, nil)
	idleDur := time.Since(start)
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

	genPooled2 := benchGenerate(b, s, dc, benchPooledClient(dc))
	// The engine's client is built like the command's (cekat.New without an HTTPClient),
	// which uses http.DefaultTransport; measure the generator through it as well.
	genDefault := benchGenerate(b, s, dc, &http.Client{Transport: http.DefaultTransport})

	gen := max(genPooled1, genPooled2)
	enrichedPerSec := float64(first.Enriched) / firstDur.Seconds()
	reqPerMsg := float64(firstCounts.Total) / float64(first.NewMessages)
	b.ReportMetric(enrichedPerSec, "enriched_msg/s")
	b.ReportMetric(gen, "sim_detail_req/s")
	b.ReportMetric(enrichedPerSec/gen, "ratio")
	b.ReportMetric(genDefault, "sim_detail_req/s_defaulttransport")
	b.ReportMetric(reqPerMsg, "req/archived_msg")
	b.ReportMetric(float64(idleCounts.Total), "idle_run_req")
	b.Logf("detail concurrency %d, conversation concurrency %d", dc, benchConvConcurrency)
	b.Logf("first sync: %d messages enriched in %v = %.0f msg/s; %d requests (list %d, detail %d) = %.4f per archived message",
		first.Enriched, firstDur.Round(time.Millisecond), enrichedPerSec, firstCounts.Total,
		firstCounts.Endpoint(cekatsim.EndpointList), firstCounts.Endpoint(cekatsim.EndpointDetail), reqPerMsg)
	b.Logf("idle run: %d requests (list %d, detail %d) for %d conversations, %d re-checks, in %v",
		idleCounts.Total, idleCounts.Endpoint(cekatsim.EndpointList), idleCounts.Endpoint(cekatsim.EndpointDetail),
		s.convs, idle.Rechecked, idleDur.Round(time.Millisecond))
	b.Logf("load generator, %d workers: %.0f then %.0f detail req/s with a keep-alive pool of %d; %.0f req/s through http.DefaultTransport (2 idle conns per host)",
		dc, genPooled1, genPooled2, dc, genDefault)
	b.Logf("ratio: engine %.0f enriched msg/s / simulator %.0f detail req/s = %.2f", enrichedPerSec, gen, enrichedPerSec/gen)
}

// benchConvConcurrency is the engine's default: conversations worked on at once.
const benchConvConcurrency = 4

type benchEngine struct {
	engine  *syncer.Engine
	archive *sink.Archive
}

// newBenchEngine wires a fresh archive and an engine as `cekat-archiver sync` does with the
// default configuration (batches of 10,000 rows or 5 s, 4 conversations at once, a
// 7-day re-check window), except for the detail concurrency.
func newBenchEngine(b *testing.B, addr string, s *benchSim, dc int) *benchEngine {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	store, err := sink.Open(ctx, sink.Options{Addr: []string{addr}, Database: sinktest.DatabaseName(b)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { store.Close() })
	if _, err := store.Migrate(ctx); err != nil {
		b.Fatal(err)
	}
	archive := sink.NewArchive(store, sink.ArchiveOptions{BatchRows: 10000, BatchInterval: 5 * time.Second})
	b.Cleanup(func() { archive.Close(context.Background()) })
	loc, err := time.LoadLocation("Asia/Jakarta")
	if err != nil {
		b.Fatal(err)
	}
	requests := syncer.NewRequestStats(nil)
	client, err := cekat.New(cekat.Options{BaseURL: s.srv.URL, APIKey: cekatsim.DefaultAPIKey, MaxRetries: 5,
		Timeout: 30 * time.Second, OnRequest: requests.Observe, Location: loc})
	if err != nil {
		b.Fatal(err)
	}
	engine := syncer.New(client, archive, syncer.Options{Concurrency: benchConvConcurrency, DetailConcurrency: dc,
		RecheckWindow: 7 * 24 * time.Hour, ConversationIDs: s.sim.ConversationIDs(), Requests: requests})
	return &benchEngine{engine: engine, archive: archive}
}

func benchPooledClient(conns int) *http.Client {
	return &http.Client{Transport: &http.Transport{MaxIdleConns: conns, MaxIdleConnsPerHost: conns, IdleConnTimeout: 90 * time.Second}}
}

// benchGenerate sends GET /messages/{id} for every message of the simulator, from workers
// goroutines, reading each answer whole, and returns the requests per second. It does not
// decode the answers: it measures what the simulator can serve.
func benchGenerate(b *testing.B, s *benchSim, workers int, client *http.Client) float64 {
	b.Helper()
	var next atomic.Int64
	var failed atomic.Value
	var wg sync.WaitGroup
	start := time.Now()
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
	d := time.Since(start)
	if err := failed.Load(); err != nil {
		b.Fatalf("load generator: %v", err)
	}
	client.CloseIdleConnections()
	return float64(len(s.ids)) / d.Seconds()
}

func benchEnvInt(b *testing.B, name string, def int) int {
	b.Helper()
	v := strings.TrimSpace(os.Getenv(name))
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		b.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}
