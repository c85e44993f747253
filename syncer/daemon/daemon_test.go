package daemon

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap/zaptest"

	"github.com/cekat-archiver/cekat-archiver/sink/sinktest"
)

// every is a schedule firing at a fixed interval, finer than cron's seconds.
type every time.Duration

func (e every) Next(t time.Time) time.Time { return t.Add(time.Duration(e)) }

func counter(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metric:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if v, ok := labels[lp.GetName()]; ok && v != lp.GetValue() {
					continue metric
				}
			}
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return 0
}

func TestOverlappingStartIsSkippedAndCounted(t *testing.T) {
	reg := prometheus.NewRegistry()
	release := make(chan struct{})
	var runs atomic.Int32
	d, err := New([]Job{{Name: "sync", Schedule: every(20 * time.Millisecond), Run: func(ctx context.Context) error {
		runs.Add(1)
		select {
		case <-release:
		case <-ctx.Done():
		}
		return nil
	}}}, Options{Registry: reg, Logger: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()

	sinktest.WaitFor(t, "skipped starts", func() bool {
		return counter(t, reg, "cekat_archiver_runs_skipped_total", map[string]string{"task": "sync", "reason": "running"}) >= 3
	})
	if n := runs.Load(); n != 1 {
		t.Errorf("%d runs going at once, want 1", n)
	}
	close(release)
	sinktest.WaitFor(t, "a second run", func() bool { return runs.Load() >= 2 })
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v", err)
	}
	if got := counter(t, reg, "cekat_archiver_runs_total", map[string]string{"task": "sync", "result": "success"}); got < 1 {
		t.Errorf("successful runs = %v", got)
	}
}

func TestStopCutsTheRunInHandAndWaitsForIt(t *testing.T) {
	started := make(chan struct{})
	var flushed atomic.Bool
	d, err := New([]Job{{Name: "sync", Schedule: every(time.Hour), RunAtStart: true, Run: func(ctx context.Context) error {
		close(started)
		<-ctx.Done()
		time.Sleep(50 * time.Millisecond) // writes what it has
		flushed.Store(true)
		return ctx.Err()
	}}}, Options{Grace: 5 * time.Second, Logger: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	<-started
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v", err)
	}
	if !flushed.Load() {
		t.Error("Run returned before the run in hand finished")
	}
}

func TestGraceRunsOut(t *testing.T) {
	started := make(chan struct{})
	block := make(chan struct{})
	defer close(block)
	d, err := New([]Job{{Name: "sync", Schedule: every(time.Hour), RunAtStart: true, Run: func(context.Context) error {
		close(started)
		<-block // ignores the stop
		return nil
	}}}, Options{Grace: 50 * time.Millisecond, Logger: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	<-started
	cancel()
	err = <-done
	if err == nil || !strings.Contains(err.Error(), "grace period") {
		t.Fatalf("Run = %v, want the grace period error", err)
	}
}

// A run that cron started, not the one at start, is told to stop by the
// first signal, and the grace bounds the stop even when that run never
// returns (cron's own Stop would wait for it for ever).
func TestGraceBoundsARunCronStarted(t *testing.T) {
	started := make(chan struct{})
	toldToStop := make(chan struct{})
	block := make(chan struct{})
	defer close(block)
	var runs atomic.Int32
	d, err := New([]Job{{Name: "sync", Schedule: every(20 * time.Millisecond), Run: func(ctx context.Context) error {
		if runs.Add(1) > 1 {
			t.Error("a second run started while the first was going")
			return nil
		}
		close(started)
		<-ctx.Done()
		close(toldToStop)
		<-block // never returns within the grace
		return nil
	}}}, Options{Grace: 100 * time.Millisecond, Logger: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	<-started
	cancel()
	// Not a timing assertion: the guard only turns a hang into a failure.
	select {
	case err = <-done:
	case <-time.After(time.Minute):
		t.Fatal("Run did not return: the grace does not bound a run that cron started")
	}
	if err == nil || !strings.Contains(err.Error(), "grace period") {
		t.Errorf("Run = %v, want the grace period error", err)
	}
	select {
	case <-toldToStop:
	default:
		t.Error("the run in hand was not told to stop: its context is still going")
	}
}

func TestReadiness(t *testing.T) {
	var mu sync.Mutex
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	var pingErr atomic.Pointer[error]
	var fail atomic.Bool
	d, err := New([]Job{{Name: "sync", Schedule: every(time.Hour), Run: func(context.Context) error {
		if fail.Load() {
			return errors.New("boom")
		}
		return nil
	}}}, Options{ReadyMaxFailing: 10 * time.Minute, Now: clock, Logger: zaptest.NewLogger(t),
		Ping: func(context.Context) error {
			if p := pingErr.Load(); p != nil {
				return *p
			}
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(d.Handler())
	defer srv.Close()
	get := func(path string) (int, string) {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	ctx := context.Background()
	j := d.jobs[0]
	steps := []struct {
		name   string
		do     func()
		status int
	}{
		{"fresh", func() {}, 200},
		{"archive down", func() { e := errors.New("connection refused"); pingErr.Store(&e) }, 503},
		{"archive back", func() { pingErr.Store(nil) }, 200},
		{"one failed run", func() { fail.Store(true); d.start(ctx, j, "test") }, 200},
		{"failing for 5 minutes", func() { advance(5 * time.Minute); d.start(ctx, j, "test") }, 200},
		{"failing for 11 minutes", func() { advance(6 * time.Minute); d.start(ctx, j, "test") }, 503},
		{"a run succeeds", func() { fail.Store(false); d.start(ctx, j, "test") }, 200},
	}
	for _, s := range steps {
		s.do()
		if code, body := get("/readyz"); code != s.status {
			t.Errorf("%s: /readyz = %d %q, want %d", s.name, code, body, s.status)
		}
		if code, _ := get("/healthz"); code != 200 {
			t.Errorf("%s: /healthz = %d", s.name, code)
		}
	}
}

func TestMetricsPassLint(t *testing.T) {
	reg := prometheus.NewRegistry()
	d, err := New([]Job{{Name: "sync", Schedule: every(time.Hour), Run: func(context.Context) error { return nil }}},
		Options{Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	d.start(context.Background(), d.jobs[0], "test")
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("metric %s: %s", p.Metric, p.Text)
	}
}

func TestListenFailureIsReported(t *testing.T) {
	ln := httptest.NewServer(http.NotFoundHandler())
	defer ln.Close()
	d, err := New(nil, Options{Listen: strings.TrimPrefix(ln.URL, "http://")})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "listen") {
		t.Fatalf("Run on a busy port = %v", err)
	}
}

// A trigger starts a run at once; one that comes during a run starts
// another right after it, so no trigger's work is dropped.
func TestTriggerStartsRunsOneAfterTheOther(t *testing.T) {
	trigger := make(chan struct{}, 1)
	release := make(chan struct{})
	var runs atomic.Int64
	var at concurrency
	job := Job{Name: "hint", Schedule: every(time.Hour), Trigger: trigger, Run: func(ctx context.Context) error {
		defer at.enter()()
		if runs.Add(1) == 1 {
			<-release
		}
		return nil
	}}
	d, err := New([]Job{job}, Options{Logger: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	trigger <- struct{}{}
	sinktest.WaitFor(t, "the first run", func() bool { return runs.Load() == 1 })
	trigger <- struct{}{} // during the first run
	close(release)
	sinktest.WaitFor(t, "the run after it", func() bool { return runs.Load() == 2 })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := at.most.Load(); n != 1 {
		t.Errorf("%d runs at once", n)
	}
}
