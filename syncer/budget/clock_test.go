package budget

import (
	"sync"
	"testing"
	"time"

	"github.com/cekat-archiver/cekat-archiver/sink/sinktest"
)

// fakeClock is a manual clock whose timers fire when it is advanced, in the
// goroutine that advances it.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

type fakeTimer struct {
	c    *fakeClock
	at   time.Time
	f    func()
	dead bool
}

func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := !t.dead
	t.dead = true
	return was
}

var testStart = time.Date(2025, 6, 1, 10, 0, 0, 0, time.UTC)

func newFakeClock() *fakeClock { return &fakeClock{now: testStart} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) AfterFunc(d time.Duration, f func()) stopper {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{c: c, at: c.now.Add(d), f: f}
	c.timers = append(c.timers, t)
	return t
}

// nextLocked is the earliest live timer due by limit (any when limit is zero).
func (c *fakeClock) nextLocked(limit time.Time) *fakeTimer {
	var next *fakeTimer
	live := c.timers[:0]
	for _, t := range c.timers {
		if t.dead {
			continue
		}
		live = append(live, t)
		if (limit.IsZero() || !t.at.After(limit)) && (next == nil || t.at.Before(next.at)) {
			next = t
		}
	}
	c.timers = live
	return next
}

// Advance moves the clock by d, firing the timers due on the way in order.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	target := c.now.Add(d)
	c.mu.Unlock()
	for {
		c.mu.Lock()
		t := c.nextLocked(target)
		if t == nil {
			c.now = target
			c.mu.Unlock()
			return
		}
		t.dead = true
		if t.at.After(c.now) {
			c.now = t.at
		}
		c.mu.Unlock()
		t.f()
	}
}

// AdvanceToNext moves the clock to the earliest timer and fires it; false
// when no timer is pending.
func (c *fakeClock) AdvanceToNext() bool {
	c.mu.Lock()
	t := c.nextLocked(time.Time{})
	if t == nil {
		c.mu.Unlock()
		return false
	}
	t.dead = true
	if t.at.After(c.now) {
		c.now = t.at
	}
	c.mu.Unlock()
	t.f()
	return true
}

// newTestLimiter returns a limiter on a fake clock.
func newTestLimiter(t testing.TB, opts Options) (*Limiter, *fakeClock) {
	t.Helper()
	clk := newFakeClock()
	opts.Now = clk.Now
	l, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	l.afterFunc = clk.AfterFunc
	return l, clk
}

func (l *Limiter) queuedCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.queued
}

func (l *Limiter) interval() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.intervalLocked(l.now())
}

func waitQueued(t testing.TB, l *Limiter, n int) {
	t.Helper()
	sinktest.WaitFor(t, "queued waiters", func() bool { return l.queuedCount() == n })
}
