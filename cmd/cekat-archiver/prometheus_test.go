package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cekat-archiver/cekat-archiver/sink/sinktest"
	"github.com/cekat-archiver/cekat-archiver/syncer/cekatsim"
)

// promEnv names the Prometheus server binary the end-to-end metrics test
// runs; promtool is looked for beside it, then on PATH.
const promEnv = "CEKAT_ARCHIVER_TEST_PROMETHEUS"

// promJob is the scrape job of the test's Prometheus: the `job` label of
// every series it scrapes from the daemon.
const promJob = "cekat-archiver"

// TestPrometheusScrapesDaemon runs `cekat-archiver run` against the
// simulator and a throwaway ClickHouse database, lints its /metrics with
// promtool, lets a real Prometheus server scrape it every second, and
// checks through Prometheus's query API that the counters say what the
// simulator saw: requests by endpoint and status exactly as the simulator
// counted them, every upstream message archived once, and at least as many
// message rows inserted.
//
// The daemon syncs every 2 s, and live traffic adds messages while it does,
// so the counters keep moving. The comparison is made exact by freezing the
// API: a gate in front of the simulator holds every new request (before the
// simulator counts it) and the test waits until no request is in flight.
// From then on neither the simulator's counts nor the daemon's counters can
// move (a held request is counted by neither side), so the test reads the
// simulator's counts and waits for two Prometheus scrapes that started
// later; both must equal them exactly. Messages are compared after live
// traffic has stopped and a whole run has started and succeeded since.
func TestPrometheusScrapesDaemon(t *testing.T) {
	promBin := os.Getenv(promEnv)
	if promBin == "" {
		t.Skipf("no Prometheus: install it with `deploy/prometheus/prometheus.sh install` and set %s=/usr/bin/prometheus", promEnv)
	}
	promtool := promFindPromtool(t, promBin)
	chAddr := sinktest.Addr(t)
	if testing.Short() {
		t.Skip("builds the archiver and runs it with a Prometheus server for some 20 seconds")
	}
	began := time.Now()
	dir := t.TempDir()
	db := sinktest.DatabaseName(t)
	bin := promBuildArchiver(t, dir)

	// The simulator, behind the freeze gate and the live traffic.
	const apiKey = "prom-test-key"
	seed := time.Now().UnixNano()
	t.Logf("simulator seed %d", seed)
	sim, err := cekatsim.New(cekatsim.Options{
		Seed:          seed,
		Shape:         cekatsim.ShapeReal,
		MessageCounts: []int{0, 1, 37, 100, 130, 215},
		APIKey:        apiKey,
		// Failed answers, retried by the client, so that the counts
		// by status code are not all 200. Connections dropped without an
		// answer are left out: Go's HTTP transport re-sends a GET whose
		// reused connection closes without an answer, without telling the
		// client, so the simulator counts one request more than the daemon.
		Fault5xx:      0.01,
		FaultTruncate: 0.01,
		Start:         time.Now().UTC().Truncate(time.Second),
	})
	if err != nil {
		t.Fatal(err)
	}
	gate := &promGate{}
	var live atomic.Bool
	var liveMu sync.Mutex
	liveRng := rand.New(rand.NewPCG(uint64(seed), 0x9e0))
	api := sim.Handler()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !gate.enter(r.Context()) {
			return
		}
		defer gate.leave()
		if conv := r.URL.Query().Get("conversation_id"); live.Load() && r.URL.Path == "/messages" && conv != "" {
			liveMu.Lock()
			n := 0
			if liveRng.IntN(2) == 0 {
				n = 1 + liveRng.IntN(3)
			}
			liveMu.Unlock()
			sim.AddMessages(conv, n)
		}
		api.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(gate.open) // never leave a request held

	// The daemon, with the webhook receiver on (its results have panels and alerts).
	daemonAddr := promFreeAddr(t)
	webhookAddr := promFreeAddr(t)
	daemonEnv := []string{
		"CEKAT_ARCHIVER_API_BASE_URL=" + srv.URL,
		"CEKAT_ARCHIVER_API_KEY=" + apiKey,
		"CEKAT_ARCHIVER_API_RATE_LIMIT_PER_MINUTE=100000",
		"CEKAT_ARCHIVER_API_RATE_LIMIT_PER_DAY=0",
		"CEKAT_ARCHIVER_CLICKHOUSE_ADDR=" + chAddr,
		"CEKAT_ARCHIVER_CLICKHOUSE_DATABASE=" + db,
		"CEKAT_ARCHIVER_CONVERSATIONS_IDS=" + strings.Join(sim.ConversationIDs(), ","),
		"CEKAT_ARCHIVER_SYNC_DETAIL_CONCURRENCY=8",
		"CEKAT_ARCHIVER_SYNC_BATCH_INTERVAL=200ms",
		// Every run polls every conversation: no conversation turns quiet,
		// so each run costs requests and the counters keep moving.
		"CEKAT_ARCHIVER_SYNC_POLL_IDLE_RUNS=1000",
		"CEKAT_ARCHIVER_SCHEDULE_SYNC=@every 2s",
		"CEKAT_ARCHIVER_DAEMON_LISTEN=" + daemonAddr,
		"CEKAT_ARCHIVER_WEBHOOK_LISTEN=" + webhookAddr,
		"CEKAT_ARCHIVER_WEBHOOK_SECRET=prom-test-webhook-secret",
		"CEKAT_ARCHIVER_DAEMON_SHUTDOWN_GRACE=20s",
		"CEKAT_ARCHIVER_LOG_FORMAT=console",
	}
	daemon := promStart(t, "cekat-archiver run", dir, cleanEnviron(daemonEnv), bin, "run")
	live.Store(true)
	daemonURL := "http://" + daemonAddr
	promWaitHTTP(t, daemon, daemonURL+"/readyz", 30*time.Second)
	t.Logf("daemon ready after %s", time.Since(began).Round(time.Millisecond))

	// The exposition as it is at start-up, before any run has finished.
	promLint(t, promtool, promGet(t, daemonURL+"/metrics"), "at start-up")

	// Prometheus, scraping the daemon every second.
	promAddr := promFreeAddr(t)
	promDir := filepath.Join(dir, "prometheus")
	if err := os.MkdirAll(filepath.Join(promDir, "data"), 0o755); err != nil {
		t.Fatal(err)
	}
	promConfig := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: %s
    static_configs:
      - targets: ['%s']
`, promJob, daemonAddr)
	configFile := filepath.Join(promDir, "prometheus.yml")
	if err := os.WriteFile(configFile, []byte(promConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	prom := promStart(t, "prometheus", promDir, os.Environ(), promBin,
		"--config.file="+configFile,
		"--storage.tsdb.path="+filepath.Join(promDir, "data"),
		"--web.listen-address="+promAddr,
		"--log.level=warn",
	)
	pq := &promQuerier{t: t, base: "http://" + promAddr}
	promWaitHTTP(t, prom, pq.base+"/-/ready", 30*time.Second)
	t.Logf("prometheus ready after %s", time.Since(began).Round(time.Millisecond))

	// A webhook request without a signature: refused (401), and counted.
	resp, err := http.Post("http://"+webhookAddr+"/webhook", "application/json", strings.NewReader(`{"event":"message.received"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("unsigned webhook request: HTTP %d, want 401", resp.StatusCode)
	}

	// Two sync runs (with live traffic) seen through Prometheus; the
	// webhook job's runs are counted apart.
	const runsOK = `sum(cekat_archiver_runs_total{task="sync",result="success"})`
	pq.waitAtLeast(runsOK, 2, 30*time.Second)
	if up := pq.scalar(`up{job="` + promJob + `"}`); up != 1 {
		t.Fatalf("up{job=%q} = %v, want 1", promJob, up)
	}

	// No more live traffic. Every message the simulator holds was served
	// in a list answer of a run that has finished or is running; two more
	// successes mean a whole run has started and finished since, so the
	// archive holds every message and its rows are flushed.
	live.Store(false)
	after := pq.scalar(runsOK) + 2
	pq.waitAtLeast(runsOK, after, 30*time.Second)

	// Freeze the API and wait until nothing is in flight.
	gate.close()
	gate.waitIdle(t, 20*time.Second)
	frozen := time.Now()
	counts := sim.Counts()
	var upstream int
	for _, m := range sim.Truth() {
		if !m.Malformed {
			upstream++
		}
	}
	t.Logf("API frozen after %s: simulator counted %d requests %v; %d messages upstream",
		time.Since(began).Round(time.Millisecond), counts.Total, counts.ByEndpoint, upstream)

	// Two scrapes that started after the freeze (with a margin for the
	// client's bookkeeping after the last answer) must both show exactly the
	// simulator's counts.
	scrape := pq.waitScrapeAfter(frozen.Add(500*time.Millisecond), 15*time.Second)
	pq.compareRequests(counts, "first scrape after the freeze")
	pq.waitScrapeAfter(scrape.Add(time.Millisecond), 15*time.Second)
	pq.compareRequests(counts, "second scrape after the freeze")

	if got := pq.scalar(`sum(cekat_archiver_messages_archived_total)`); got != float64(upstream) {
		t.Errorf("cekat_archiver_messages_archived_total = %v, want %d: the messages the simulator holds", got, upstream)
	}
	if got := pq.scalar(`sum(cekat_archiver_sink_rows_inserted_total{table="messages"})`); got < float64(upstream) {
		t.Errorf(`cekat_archiver_sink_rows_inserted_total{table="messages"} = %v, want at least %d`, got, upstream)
	}
	if got := pq.scalar(`sum(cekat_archiver_runs_total{result="failure"})`); got != 0 {
		t.Errorf(`cekat_archiver_runs_total{result="failure"} = %v, want 0`, got)
	}
	if got := pq.scalar(`sum(cekat_archiver_api_requests_total)`); got != float64(counts.Total) || counts.Total == 0 {
		t.Errorf("sum(cekat_archiver_api_requests_total) = %v, want %d (the simulator's total)", got, counts.Total)
	}
	t.Logf("runs: %v successful; messages archived %v, message rows inserted %v",
		pq.scalar(runsOK), pq.scalar(`sum(cekat_archiver_messages_archived_total)`),
		pq.scalar(`sum(cekat_archiver_sink_rows_inserted_total{table="messages"})`))

	// The exposition after runs have filled every labelled family.
	promLint(t, promtool, promGet(t, daemonURL+"/metrics"), "after the runs")

	// Every dashboard and alert expression, against what the daemon exports.
	promCheckExpressions(t, pq)

	// Thaw, then stop Prometheus and the daemon: the daemon must exit 0.
	gate.open()
	if code := prom.stop(30 * time.Second); code != 0 {
		t.Errorf("prometheus exited %d after SIGTERM:\n%s", code, promTail(prom.out.String(), 3000))
	}
	if code := daemon.stop(40 * time.Second); code != 0 {
		t.Errorf("cekat-archiver run exited %d after SIGTERM, want 0:\n%s", code, promTail(daemon.out.String(), 4000))
	}
	t.Logf("done in %s", time.Since(began).Round(time.Millisecond))
}

// promGate holds API requests while closed, before the simulator sees
// them, and counts the requests it let through that are not answered yet.
type promGate struct {
	mu      sync.Mutex
	release chan struct{} // nil while open; closed when the gate opens again
	busy    int
}

// enter waits while the gate is closed; it reports false when the client
// gave up first.
func (g *promGate) enter(ctx context.Context) bool {
	for {
		g.mu.Lock()
		rel := g.release
		if rel == nil {
			g.busy++
			g.mu.Unlock()
			return true
		}
		g.mu.Unlock()
		select {
		case <-rel:
		case <-ctx.Done():
			return false
		}
	}
}

func (g *promGate) leave() {
	g.mu.Lock()
	g.busy--
	g.mu.Unlock()
}

func (g *promGate) close() {
	g.mu.Lock()
	if g.release == nil {
		g.release = make(chan struct{})
	}
	g.mu.Unlock()
}

func (g *promGate) open() {
	g.mu.Lock()
	if g.release != nil {
		close(g.release)
		g.release = nil
	}
	g.mu.Unlock()
}

// waitIdle waits until no request let through is still being answered.
func (g *promGate) waitIdle(t *testing.T, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		g.mu.Lock()
		busy := g.busy
		g.mu.Unlock()
		if busy == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d API requests still in flight %s after the freeze", busy, limit)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// promQuerier asks the test's Prometheus server.
type promQuerier struct {
	t    *testing.T
	base string
}

// promSample is one element of an instant vector.
type promSample struct {
	Metric map[string]string
	Time   time.Time
	Value  float64
}

// query evaluates an instant query now.
func (q *promQuerier) query(expr string) ([]promSample, error) {
	resp, err := http.Get(q.base + "/api/v1/query?query=" + url.QueryEscape(expr))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	var ans struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string `json:"resultType"`
			Result     []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &ans); err != nil {
		return nil, fmt.Errorf("query %s: HTTP %d, %v: %.300s", expr, resp.StatusCode, err, body)
	}
	if ans.Status != "success" {
		return nil, fmt.Errorf("query %s: %s: %s", expr, ans.Status, ans.Error)
	}
	if ans.Data.ResultType != "vector" {
		return nil, fmt.Errorf("query %s: result type %s, want vector", expr, ans.Data.ResultType)
	}
	out := make([]promSample, 0, len(ans.Data.Result))
	for _, r := range ans.Data.Result {
		ts, ok := r.Value[0].(float64)
		s, ok2 := r.Value[1].(string)
		if !ok || !ok2 {
			return nil, fmt.Errorf("query %s: unexpected value %v", expr, r.Value)
		}
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, fmt.Errorf("query %s: value %q: %v", expr, s, err)
		}
		out = append(out, promSample{Metric: r.Metric, Time: time.UnixMilli(int64(ts * 1000)), Value: v})
	}
	return out, nil
}

// scalar evaluates a query that yields one sample, or none (-1).
func (q *promQuerier) scalar(expr string) float64 {
	q.t.Helper()
	res, err := q.query(expr)
	if err != nil {
		q.t.Fatal(err)
	}
	switch len(res) {
	case 0:
		return -1
	case 1:
		return res[0].Value
	}
	q.t.Fatalf("query %s: %d samples, want one: %v", expr, len(res), res)
	return 0
}

// waitAtLeast polls expr until it is at least want.
func (q *promQuerier) waitAtLeast(expr string, want float64, limit time.Duration) {
	q.t.Helper()
	deadline := time.Now().Add(limit)
	last := -1.0
	for {
		res, err := q.query(expr)
		if err != nil {
			q.t.Fatal(err)
		}
		if len(res) == 1 {
			last = res[0].Value
			if last >= want {
				return
			}
		}
		if time.Now().After(deadline) {
			q.t.Fatalf("%s stayed at %v for %s, want at least %v", expr, last, limit, want)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// waitScrapeAfter waits for a scrape of the daemon that started after t0
// and returns its start.
func (q *promQuerier) waitScrapeAfter(t0 time.Time, limit time.Duration) time.Time {
	q.t.Helper()
	deadline := time.Now().Add(limit)
	expr := `timestamp(up{job="` + promJob + `"})`
	for {
		res, err := q.query(expr)
		if err != nil {
			q.t.Fatal(err)
		}
		if len(res) == 1 {
			at := time.UnixMilli(int64(res[0].Value * 1000))
			if at.After(t0) {
				return at
			}
		}
		if time.Now().After(deadline) {
			q.t.Fatalf("no scrape of the daemon started after %s within %s (last: %v)", t0.Format(time.TimeOnly+".000"), limit, res)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// compareRequests requires Prometheus's latest values of the request
// counter to equal the simulator's counts, by endpoint and by endpoint and
// status code.
func (q *promQuerier) compareRequests(want cekatsim.Counts, when string) {
	q.t.Helper()
	res, err := q.query(`sum by (endpoint) (cekat_archiver_api_requests_total)`)
	if err != nil {
		q.t.Fatal(err)
	}
	got := map[string]int{}
	for _, s := range res {
		got[s.Metric["endpoint"]] = int(s.Value)
	}
	wantByEndpoint := map[string]int{}
	for e := range want.ByEndpoint {
		if n := want.Endpoint(e); n > 0 {
			wantByEndpoint[e] = n
		}
	}
	if want.Endpoint(cekatsim.EndpointList) == 0 || want.Endpoint(cekatsim.EndpointDetail) == 0 {
		q.t.Errorf("the simulator counted no list or no detail request: %v", want.ByEndpoint)
	}
	if d := promDiff(wantByEndpoint, got); d != "" {
		q.t.Errorf("%s: sum by (endpoint) (cekat_archiver_api_requests_total) differs from the simulator's counts (endpoint: simulator, Prometheus): %s", when, d)
	} else {
		q.t.Logf("%s: requests by endpoint as the simulator counted them: %v", when, got)
	}

	res, err = q.query(`sum by (endpoint, code) (cekat_archiver_api_requests_total)`)
	if err != nil {
		q.t.Fatal(err)
	}
	gotByCode := map[string]int{}
	for _, s := range res {
		gotByCode[s.Metric["endpoint"]+" "+s.Metric["code"]] = int(s.Value)
	}
	wantByCode := map[string]int{}
	for e, m := range want.ByEndpoint {
		for code, n := range m {
			if n > 0 {
				wantByCode[e+" "+strconv.Itoa(code)] = n
			}
		}
	}
	if d := promDiff(wantByCode, gotByCode); d != "" {
		q.t.Errorf("%s: sum by (endpoint, code) (cekat_archiver_api_requests_total) differs from the simulator's counts (endpoint code: simulator, Prometheus): %s", when, d)
	}
}

// promDiff lists the keys whose values differ.
func promDiff(want, got map[string]int) string {
	keys := map[string]bool{}
	for k := range want {
		keys[k] = true
	}
	for k := range got {
		keys[k] = true
	}
	var out []string
	for k := range keys {
		if want[k] != got[k] {
			out = append(out, fmt.Sprintf("%s: %d, %d", k, want[k], got[k]))
		}
	}
	sort.Strings(out)
	return strings.Join(out, "; ")
}

// promProc is a subprocess with its combined output.
type promProc struct {
	t    *testing.T
	name string
	cmd  *exec.Cmd
	out  *promBuffer
	done chan struct{}
}

// promBuffer is a bytes.Buffer safe for the process writing and the test
// reading.
type promBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *promBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *promBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// promStart starts a subprocess that the test's cleanup kills if it is
// still running, and whose output is logged when the test fails.
func promStart(t *testing.T, name, dir string, env []string, bin string, args ...string) *promProc {
	t.Helper()
	p := &promProc{t: t, name: name, out: &promBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Dir = dir
	p.cmd.Env = env
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		_ = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Signal(syscall.SIGKILL)
			<-p.done
		}
		if t.Failed() {
			t.Logf("output of %s:\n%s", name, promTail(p.out.String(), 4000))
		}
	})
	return p
}

// exited reports whether the process has ended.
func (p *promProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM and returns the exit code; a process still running
// after limit is killed and the test fails.
func (p *promProc) stop(limit time.Duration) int {
	p.t.Helper()
	if !p.exited() {
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
			p.t.Fatalf("SIGTERM %s: %v", p.name, err)
		}
	}
	select {
	case <-p.done:
	case <-time.After(limit):
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		<-p.done
		p.t.Errorf("%s still running %s after SIGTERM; killed", p.name, limit)
	}
	return p.cmd.ProcessState.ExitCode()
}

// promWaitHTTP waits until url answers 200, failing early when the
// process serving it exits.
func promWaitHTTP(t *testing.T, p *promProc, u string, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	client := &http.Client{Timeout: 2 * time.Second}
	var last string
	for {
		resp, err := client.Get(u)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			last = fmt.Sprintf("HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(body)))
		} else {
			last = err.Error()
		}
		if p.exited() {
			t.Fatalf("%s exited (code %d) before %s answered:\n%s", p.name, p.cmd.ProcessState.ExitCode(), u, promTail(p.out.String(), 4000))
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not answer 200 within %s; last: %s", u, limit, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// promGet returns the body of a 200 answer.
func promGet(t *testing.T, u string) []byte {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: HTTP %d: %.500s", u, resp.StatusCode, body)
	}
	return body
}

// promLint runs `promtool check metrics` on an exposition and requires no
// problem at all.
func promLint(t *testing.T, promtool string, exposition []byte, when string) {
	t.Helper()
	if !bytes.Contains(exposition, []byte("# TYPE cekat_archiver_runs_total counter")) {
		t.Fatalf("the scrape %s lacks cekat_archiver_runs_total:\n%s", when, promTail(string(exposition), 3000))
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(exposition)
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("promtool check metrics on the scrape %s: %v\n%s", when, err, out)
		return
	}
	t.Logf("promtool check metrics: no problem in the scrape %s (%d families)", when,
		bytes.Count(exposition, []byte("\n# TYPE ")))
}

// promFindPromtool finds promtool beside the Prometheus binary, then on
// PATH.
func promFindPromtool(t *testing.T, promBin string) string {
	t.Helper()
	if _, err := os.Stat(promBin); err != nil {
		t.Fatalf("%s=%s: %v", promEnv, promBin, err)
	}
	beside := filepath.Join(filepath.Dir(promBin), "promtool")
	if fi, err := os.Stat(beside); err == nil && !fi.IsDir() {
		return beside
	}
	p, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("promtool is neither beside %s nor on PATH", promBin)
	}
	return p
}

// promBuildArchiver builds this package's binary into dir.
func promBuildArchiver(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "cekat-archiver")
	start := time.Now()
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	t.Logf("built %s in %s", bin, time.Since(start).Round(time.Millisecond))
	return bin
}

// cleanEnviron is the test's environment without any CEKAT_ARCHIVER_
// variable, plus extra: the archiver under test reads only what the test sets.
func cleanEnviron(extra []string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CEKAT_ARCHIVER_") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// promFreeAddr returns a loopback address with a port free a moment ago.
func promFreeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// promTail keeps the last n bytes of s.
func promTail(s string, n int) string {
	if len(s) > n {
		return "...\n" + s[len(s)-n:]
	}
	return s
}
