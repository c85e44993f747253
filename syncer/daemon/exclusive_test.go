package daemon

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"github.com/cekat-archiver/cekat-archiver/sink/sinktest"
)

// An exclusive job (the purge) never runs while another job's run is
// going, whoever started either; the other jobs still run, before and
// after it.
func TestExclusiveJobRunsAlone(t *testing.T) {
	var (
		mu                  sync.Mutex
		shared, exclusive   int
		overlaps            []string
		syncRuns, purgeRuns atomic.Int32
	)
	enter := func(excl bool) {
		mu.Lock()
		defer mu.Unlock()
		if exclusive > 0 || (excl && shared > 0) {
			overlaps = append(overlaps, "overlap")
		}
		if excl {
			exclusive++
		} else {
			shared++
		}
	}
	leave := func(excl bool) {
		mu.Lock()
		defer mu.Unlock()
		if excl {
			exclusive--
		} else {
			shared--
		}
	}
	work := func(excl bool, n *atomic.Int32) func(context.Context) error {
		return func(ctx context.Context) error {
			enter(excl)
			defer leave(excl)
			n.Add(1)
			select {
			case <-time.After(15 * time.Millisecond):
			case <-ctx.Done():
			}
			return nil
		}
	}
	var webhookRuns atomic.Int32
	d, err := New([]Job{
		{Name: "sync", Schedule: every(5 * time.Millisecond), RunAtStart: true, Run: work(false, &syncRuns)},
		{Name: "events", Schedule: every(7 * time.Millisecond), Run: work(false, &webhookRuns)},
		{Name: "purge", Schedule: every(10 * time.Millisecond), Exclusive: true, Run: work(true, &purgeRuns)},
	}, Options{Logger: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	sinktest.WaitFor(t, "runs of every job", func() bool {
		return purgeRuns.Load() >= 5 && syncRuns.Load() >= 5 && webhookRuns.Load() >= 5
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(overlaps) > 0 {
		t.Errorf("the exclusive job overlapped other runs %d times", len(overlaps))
	}
}

// A stop while the exclusive run waits for a run in hand: it never begins,
// and the daemon stops as soon as the run in hand has.
func TestExclusiveRunWaitingIsStopped(t *testing.T) {
	started := make(chan struct{})
	var purged atomic.Bool
	d, err := New([]Job{
		{Name: "sync", Schedule: every(time.Hour), RunAtStart: true, Run: func(ctx context.Context) error {
			close(started)
			<-ctx.Done()
			return ctx.Err()
		}},
		{Name: "purge", Schedule: every(5 * time.Millisecond), Exclusive: true, Run: func(context.Context) error {
			purged.Store(true)
			return nil
		}},
	}, Options{Grace: 5 * time.Second, Logger: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	<-started
	sinktest.WaitFor(t, "the purge to wait", func() bool { return d.jobs[1].running.Load() })
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v", err)
	}
	if purged.Load() {
		t.Error("the purge ran while the sync was going")
	}
}

// While a run that runs alone (the purge) holds the gate, the sync's start
// waits for it, and the sync's further starts are skipped because of that
// wait: counted and logged as such, not as a run still going, which is the
// signal that runs take longer than their schedule.
func TestStartsSkippedWhileWaitingAreToldApart(t *testing.T) {
	reg := prometheus.NewRegistry()
	core, logs := observer.New(zap.InfoLevel)
	purging := make(chan struct{})
	release := make(chan struct{})
	var syncRuns atomic.Int32
	d, err := New([]Job{
		{Name: "purge", Schedule: every(time.Hour), RunAtStart: true, Exclusive: true, Run: func(ctx context.Context) error {
			close(purging)
			select {
			case <-release:
			case <-ctx.Done():
			}
			return nil
		}},
		{Name: "sync", Schedule: every(5 * time.Millisecond), Run: func(context.Context) error {
			syncRuns.Add(1)
			return nil
		}},
	}, Options{Registry: reg, Logger: zap.New(core)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	<-purging
	skipped := func(reason string) float64 {
		return counter(t, reg, "cekat_archiver_runs_skipped_total", map[string]string{"task": "sync", "reason": reason})
	}
	sinktest.WaitFor(t, "sync starts skipped during the purge", func() bool { return skipped("waiting") >= 3 })
	if n := skipped("running"); n != 0 {
		t.Errorf("%v sync starts counted as skipped because a sync run was going; none was", n)
	}
	if n := logs.FilterMessageSnippet("previous run is still going").Len(); n != 0 {
		t.Errorf("%d starts logged as skipped because the previous run is still going; it was waiting for the purge", n)
	}
	if n := logs.FilterMessageSnippet("waits for purge").Len(); n == 0 {
		t.Error("no skipped start logged as waiting for the purge")
	}
	if n := syncRuns.Load(); n != 0 {
		t.Errorf("%d sync runs while the purge ran", n)
	}
	close(release)
	sinktest.WaitFor(t, "a sync after the purge", func() bool { return syncRuns.Load() >= 1 })
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v", err)
	}
}
