package daemon

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap/zaptest"

	"github.com/cekat-archiver/cekat-archiver/sink/sinktest"
)

// debounceWait is one wait of a trigger's debounce, released by the test.
type debounceWait struct {
	d       time.Duration
	release chan time.Time
}

// debounceClock hands each wait of the debounce to the test.
type debounceClock struct{ waits chan debounceWait }

func newDebounceClock() *debounceClock { return &debounceClock{waits: make(chan debounceWait, 16)} }

func (c *debounceClock) After(d time.Duration) <-chan time.Time {
	w := debounceWait{d: d, release: make(chan time.Time, 1)}
	c.waits <- w
	return w.release
}

// next returns the next wait the daemon began.
func (c *debounceClock) next(t *testing.T) debounceWait {
	t.Helper()
	select {
	case w := <-c.waits:
		return w
	case <-time.After(sinktest.WaitTimeout):
		t.Fatal("gave up waiting for the debounce to begin")
		return debounceWait{}
	}
}

// events stands for the webhook's stored events: a run takes all of them.
type events struct {
	sig     Signal
	pending atomic.Int64
}

func (e *events) arrive() { e.pending.Add(1); e.sig.Notify() }

// startDebounced runs a daemon of job, whose debounce the test releases,
// until the test stops it; stop returns Run's error.
func startDebounced(t *testing.T, job Job, reg *prometheus.Registry) (clock *debounceClock, stop func() error) {
	clock = newDebounceClock()
	d, err := New([]Job{job}, Options{Logger: zaptest.NewLogger(t), Registry: reg, After: clock.After})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			cancel()
			<-done
		}
	})
	return clock, func() error { stopped = true; cancel(); return <-done }
}

// concurrency tracks how many runs are going at once.
type concurrency struct{ now, most atomic.Int64 }

// enter counts a run in; the run calls leave when it ends.
func (c *concurrency) enter() (leave func()) {
	n := c.now.Add(1)
	for m := c.most.Load(); n > m && !c.most.CompareAndSwap(m, n); m = c.most.Load() {
	}
	return func() { c.now.Add(-1) }
}

const debounce = 2 * time.Second

// A burst of events makes one run, which takes them all: the triggers that
// came during the wait do not start another run after it.
func TestDebounceMakesABurstOneRun(t *testing.T) {
	ev := &events{sig: NewSignal()}
	var runs atomic.Int64
	var took, pendingTriggers []int64
	job := Job{Name: "webhook", Schedule: every(time.Hour), Trigger: ev.sig, Debounce: debounce,
		Run: func(ctx context.Context) error {
			pendingTriggers = append(pendingTriggers, int64(len(ev.sig)))
			took = append(took, ev.pending.Swap(0))
			runs.Add(1)
			return nil
		}}
	clock, stop := startDebounced(t, job, nil)
	ev.arrive()
	w := clock.next(t)
	for range 5 {
		ev.arrive()
	}
	w.release <- time.Time{}
	sinktest.WaitFor(t, "the run", func() bool { return runs.Load() == 1 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if took[0] != 6 {
		t.Errorf("the run took %d of the burst's 6 events", took[0])
	}
	if pendingTriggers[0] != 0 {
		t.Errorf("a trigger of the burst was still pending when its run began: it would start an idle run after it")
	}
}

// The run starts Debounce after the first trigger: triggers that keep
// coming during the wait do not prolong it.
func TestDebounceWaitIsBoundedByTheFirstTrigger(t *testing.T) {
	ev := &events{sig: NewSignal()}
	var runs atomic.Int64
	job := Job{Name: "webhook", Schedule: every(time.Hour), Trigger: ev.sig, Debounce: debounce,
		Run: func(ctx context.Context) error { ev.pending.Swap(0); runs.Add(1); return nil }}
	clock, stop := startDebounced(t, job, nil)
	ev.arrive()
	w := clock.next(t)
	if w.d != debounce {
		t.Errorf("the debounce waits %v, want %v", w.d, debounce)
	}
	for range 3 {
		ev.arrive()
	}
	// Only the first wait is released: a run that waited for a later one
	// (a wait begun again at each trigger) never comes.
	w.release <- time.Time{}
	sinktest.WaitFor(t, "the run after the first wait", func() bool { return runs.Load() == 1 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if n := len(clock.waits); n != 0 {
		t.Errorf("%d more waits began for the burst", n)
	}
}

// A trigger that comes while a run the schedule started is going starts a
// run after it, one at a time, and is not counted as skipped.
func TestDebouncedTriggerDuringARunStartsOneAfterIt(t *testing.T) {
	ev := &events{sig: NewSignal()}
	reg := prometheus.NewRegistry()
	release := make(chan struct{})
	var runs atomic.Int64
	var at concurrency
	var took []int64
	job := Job{Name: "webhook", Schedule: every(time.Hour), RunAtStart: true, Trigger: ev.sig, Debounce: debounce,
		Run: func(ctx context.Context) error {
			defer at.enter()()
			if runs.Add(1) == 1 {
				<-release
			}
			took = append(took, ev.pending.Swap(0))
			return nil
		}}
	clock, stop := startDebounced(t, job, reg)
	sinktest.WaitFor(t, "the run at start", func() bool { return runs.Load() == 1 })
	ev.arrive()
	clock.next(t).release <- time.Time{}
	close(release)
	sinktest.WaitFor(t, "the trigger's run", func() bool { return runs.Load() == 2 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if n := at.most.Load(); n != 1 {
		t.Errorf("%d runs at once", n)
	}
	if got := counter(t, reg, "cekat_archiver_runs_skipped_total", map[string]string{"task": "webhook"}); got != 0 {
		t.Errorf("runs_skipped_total = %v; the trigger's run waits for the run in hand", got)
	}
	if took[0]+took[1] != 1 {
		t.Errorf("the runs took %v events, want the one", took)
	}
}

// A stop during the debounce starts no run, and the daemon stops at once.
func TestStopDuringDebounceStartsNoRun(t *testing.T) {
	ev := &events{sig: NewSignal()}
	var runs atomic.Int64
	job := Job{Name: "webhook", Schedule: every(time.Hour), Trigger: ev.sig, Debounce: debounce,
		Run: func(ctx context.Context) error { runs.Add(1); return nil }}
	clock, stop := startDebounced(t, job, nil)
	ev.arrive()
	clock.next(t)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if n := runs.Load(); n != 0 {
		t.Errorf("%d runs after a stop during the debounce", n)
	}
}

// Notify never blocks, however many come before the job takes one.
func TestSignalNeverBlocks(t *testing.T) {
	s := NewSignal()
	for range 3 {
		s.Notify()
	}
	if len(s) != 1 {
		t.Errorf("%d pulls pending, want 1", len(s))
	}
}
