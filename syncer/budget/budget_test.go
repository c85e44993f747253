package budget

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/cekat-archiver/cekat-archiver/syncer/cekat"

	"github.com/cekat-archiver/cekat-archiver/sink/sinktest"
)

// start runs Wait in a goroutine and returns its result channel.
func start(ctx context.Context, l *Limiter, p Priority, endpoint string) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- l.Wait(WithPriority(ctx, p), endpoint) }()
	return ch
}

func recv(t *testing.T, ch <-chan error, what string) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(5 * time.Second):
		t.Fatalf("%s: Wait did not return", what)
		return nil
	}
}

func granted(l *Limiter) (total int64, by [numPriorities]int64) {
	s := l.Stats()
	for _, n := range s.Granted {
		total += n
	}
	return total, s.Granted
}

func hdr(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Set(kv[i], kv[i+1])
	}
	return h
}

func mustWait(t *testing.T, l *Limiter, p Priority) {
	t.Helper()
	if err := l.Wait(WithPriority(context.Background(), p), cekat.EndpointList); err != nil {
		t.Fatalf("Wait: %v", err)
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	for _, o := range []Options{{PerMinute: -1}, {PerDay: -1}, {PurgeShare: 1}, {Headroom: 0.6}, {Headroom: -0.1}} {
		if _, err := New(o); err == nil {
			t.Errorf("New(%+v) accepted", o)
		}
	}
	l, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	if s := l.Stats(); s.Limit != DefaultPerMinute {
		t.Errorf("default limit %d, want %d", s.Limit, DefaultPerMinute)
	}
	if m, d := l.Remaining(); m != DefaultPerMinute || d != -1 {
		t.Errorf("Remaining() = %d, %d; want %d, -1", m, d, DefaultPerMinute)
	}
}

func TestPacingIsEvenWithoutBursts(t *testing.T) {
	l, clk := newTestLimiter(t, Options{PerMinute: 60})
	iv := l.interval()
	if want := 1020 * time.Millisecond; iv != want {
		t.Fatalf("interval %v, want %v", iv, want)
	}
	mustWait(t, l, PriorityNew) // the first is free
	// A long idle spell earns no burst.
	clk.Advance(10 * time.Minute)
	mustWait(t, l, PriorityNew)
	ch := start(context.Background(), l, PriorityNew, "list")
	waitQueued(t, l, 1)
	clk.Advance(iv - time.Millisecond)
	if n, _ := granted(l); n != 2 {
		t.Fatalf("granted %d before the interval, want 2", n)
	}
	clk.Advance(time.Millisecond)
	if err := recv(t, ch, "paced wait"); err != nil {
		t.Fatal(err)
	}
}

func TestPriorityOrderUnderContention(t *testing.T) {
	l, clk := newTestLimiter(t, Options{PerMinute: 60, PurgeShare: -1})
	iv := l.interval()
	mustWait(t, l, PriorityNew) // spends the free slot

	ctx := context.Background()
	chans := map[Priority][]<-chan error{}
	// Queued lowest first, so that arrival order would give the wrong answer.
	enqueue := []Priority{PriorityPurge, PriorityBackfill, PriorityRecheck, PriorityEnrich, PriorityNew, PriorityNew}
	for i, p := range enqueue {
		chans[p] = append(chans[p], start(ctx, l, p, "list"))
		waitQueued(t, l, i+1)
	}
	want := []Priority{PriorityNew, PriorityNew, PriorityEnrich, PriorityRecheck, PriorityBackfill, PriorityPurge}
	for i, p := range want {
		clk.Advance(iv)
		_, by := granted(l)
		got := by
		got[PriorityNew]-- // the free slot
		var exp [numPriorities]int64
		for _, q := range want[:i+1] {
			exp[q]++
		}
		if got != exp {
			t.Fatalf("after %d slots granted %v, want %v", i+1, got, exp)
		}
		ch := chans[p][0]
		chans[p] = chans[p][1:]
		if err := recv(t, ch, p.String()); err != nil {
			t.Fatal(err)
		}
	}
}

// loop runs a worker that waits again as soon as it is granted, until ctx
// ends; it counts its grants.
func loop(ctx context.Context, wg *sync.WaitGroup, l *Limiter, p Priority, endpoint string) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		for l.Wait(WithPriority(ctx, p), endpoint) == nil {
		}
	}()
}

func TestPurgeShare(t *testing.T) {
	l, clk := newTestLimiter(t, Options{PerMinute: 60, PurgeShare: 0.25})
	iv := l.interval()
	mustWait(t, l, PriorityNew)
	var wg sync.WaitGroup
	ingest, stopIngest := context.WithCancel(context.Background())
	purge, stopPurge := context.WithCancel(context.Background())
	defer stopIngest()
	defer stopPurge()

	// Ingestion saturates the budget: purge still gets exactly its share,
	// and no more.
	for range 3 {
		loop(ingest, &wg, l, PriorityBackfill, cekat.EndpointDetail)
	}
	loop(purge, &wg, l, PriorityPurge, cekat.EndpointDelete)
	step := func(n, queued int) {
		for range n {
			waitQueued(t, l, queued)
			clk.Advance(iv)
		}
	}
	step(100, 4)
	_, by := granted(l)
	if by[PriorityPurge] != 25 || by[PriorityBackfill] != 75 {
		t.Fatalf("saturated: purge %d, backfill %d; want 25 and 75", by[PriorityPurge], by[PriorityBackfill])
	}

	// Ingestion idle: purge gets every slot.
	stopIngest()
	step(20, 1)
	_, by = granted(l)
	if by[PriorityPurge] != 45 {
		t.Fatalf("ingestion idle: purge %d, want 45", by[PriorityPurge])
	}

	// Purge idle: ingestion gets every slot.
	stopPurge()
	waitQueued(t, l, 0)
	wg.Wait()
	ingest2, stop2 := context.WithCancel(context.Background())
	defer stop2()
	loop(ingest2, &wg, l, PriorityNew, cekat.EndpointList)
	loop(ingest2, &wg, l, PriorityEnrich, cekat.EndpointDetail)
	step(20, 2)
	_, by = granted(l)
	if by[PriorityNew]+by[PriorityEnrich] != 1+20 || by[PriorityEnrich] != 0 {
		t.Fatalf("purge idle: new %d, enrich %d; want 21 and 0", by[PriorityNew], by[PriorityEnrich])
	}
	stop2()
	wg.Wait()
}

func TestUntaggedPriority(t *testing.T) {
	ctx := context.Background()
	if p := priorityFor(ctx, cekat.EndpointDelete); p != PriorityPurge {
		t.Errorf("untagged delete: %v", p)
	}
	if p := priorityFor(ctx, cekat.EndpointList); p != PriorityNew {
		t.Errorf("untagged list: %v", p)
	}
	if p := priorityFor(WithPriority(ctx, PriorityRecheck), cekat.EndpointDetail); p != PriorityRecheck {
		t.Errorf("tagged: %v", p)
	}
	if p := priorityFor(WithPriority(ctx, Priority(42)), cekat.EndpointDetail); p != PriorityBackfill {
		t.Errorf("out of range: %v", p)
	}
	if _, ok := PriorityFrom(ctx); ok {
		t.Error("PriorityFrom reports a priority on a bare context")
	}
}

func TestRetryAfterPausesEveryWaiter(t *testing.T) {
	for _, tc := range []struct {
		name  string
		h     func(now time.Time) http.Header
		pause time.Duration
	}{
		{"seconds", func(time.Time) http.Header { return hdr("Retry-After", "30") }, 30 * time.Second},
		{"http date", func(now time.Time) http.Header {
			return hdr("Retry-After", now.Add(40*time.Second).UTC().Format(http.TimeFormat))
		}, 40 * time.Second},
		{"reset only", func(now time.Time) http.Header {
			return hdr("X-RateLimit-Remaining", "0", "X-RateLimit-Reset", strconv.FormatInt(now.Add(20*time.Second).Unix(), 10))
		}, 21 * time.Second},
		{"nothing", func(time.Time) http.Header { return nil }, DefaultThrottlePause},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, clk := newTestLimiter(t, Options{PerMinute: 60})
			mustWait(t, l, PriorityNew)
			ctx := context.Background()
			chans := []<-chan error{
				start(ctx, l, PriorityNew, "list"),
				start(ctx, l, PriorityEnrich, "detail"),
				start(ctx, l, PriorityPurge, "delete"),
			}
			waitQueued(t, l, 3)
			l.Observe(cekat.EndpointDetail, http.StatusTooManyRequests, tc.h(clk.Now()))
			if s := l.Stats(); s.Throttled != 1 || s.Pauses != 1 || s.PausedUntil.IsZero() {
				t.Fatalf("stats after 429: %+v", s)
			}
			if m, _ := l.Remaining(); m != 0 {
				t.Errorf("Remaining minute %d while paused", m)
			}
			// The 429 of another request in flight changes nothing.
			clk.Advance(time.Second)
			l.Observe(cekat.EndpointList, http.StatusTooManyRequests, hdr("Retry-After", "1"))
			clk.Advance(tc.pause - time.Second - time.Millisecond)
			if n, _ := granted(l); n != 1 {
				t.Fatalf("granted %d during the pause", n)
			}
			clk.Advance(time.Millisecond)
			if err := recv(t, chans[0], "first after the pause"); err != nil {
				t.Fatal(err)
			}
			// The pace was cut by a fifth to 48 a minute, and regains one
			// a minute.
			if s := l.Stats(); s.Limit != 48+int(tc.pause/time.Minute) || s.Pauses != 1 {
				t.Fatalf("after the pause: limit %d, pauses %d", s.Limit, s.Pauses)
			}
			for _, ch := range chans[1:] {
				clk.Advance(l.interval())
				if err := recv(t, ch, "after the pause"); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

func TestThrottleCutRecovers(t *testing.T) {
	l, clk := newTestLimiter(t, Options{PerMinute: 100})
	l.Observe("list", http.StatusTooManyRequests, hdr("Retry-After", "5"))
	if s := l.Stats(); s.Limit != 80 {
		t.Fatalf("limit after 429: %d", s.Limit)
	}
	clk.Advance(3 * time.Minute)
	if s := l.Stats(); s.Limit != 86 { // +2 a minute
		t.Fatalf("limit 3 minutes later: %d", s.Limit)
	}
	clk.Advance(time.Hour)
	if s := l.Stats(); s.Limit != 100 {
		t.Fatalf("limit an hour later: %d", s.Limit)
	}
}

func TestServerLimitLowersPace(t *testing.T) {
	l, _ := newTestLimiter(t, Options{PerMinute: 60})
	l.Observe("list", 200, hdr("X-RateLimit-Limit", "30"))
	if s := l.Stats(); s.Limit != 30 || s.ServerLimit != 30 {
		t.Fatalf("stats %+v", s)
	}
	if iv := l.interval(); iv != 2040*time.Millisecond {
		t.Fatalf("interval %v", iv)
	}
	// A higher server limit never raises the pace above the configured one.
	l.Observe("list", 200, hdr("X-RateLimit-Limit", "300"))
	if s := l.Stats(); s.Limit != 60 {
		t.Fatalf("limit %d", s.Limit)
	}
}

func TestRemainingAndResetBoundWhatIsSent(t *testing.T) {
	l, clk := newTestLimiter(t, Options{PerMinute: 60})
	iv := l.interval()
	ctx := context.Background()

	// Two requests in flight; the first answer says one is left: the
	// other in-flight one may take it, so nothing more is sent before the
	// reset (plus the margin).
	mustWait(t, l, PriorityNew)
	clk.Advance(iv)
	mustWait(t, l, PriorityNew)
	reset := clk.Now().Truncate(time.Second).Add(20 * time.Second)
	l.Observe("list", 200, hdr("X-RateLimit-Limit", "60", "X-RateLimit-Remaining", "1",
		"X-RateLimit-Reset", strconv.FormatInt(reset.Unix(), 10)))
	if m, _ := l.Remaining(); m != 0 {
		t.Errorf("Remaining minute %d, want 0", m)
	}
	ch := start(ctx, l, PriorityNew, "list")
	waitQueued(t, l, 1)
	clk.Advance(reset.Add(DefaultResetMargin).Sub(clk.Now()) - time.Millisecond)
	if n, _ := granted(l); n != 2 {
		t.Fatalf("granted %d before the reset", n)
	}
	clk.Advance(time.Millisecond)
	if err := recv(t, ch, "after reset"); err != nil {
		t.Fatal(err)
	}
	l.Observe("list", 200, nil) // the second answer got lost

	// The new window: two left for 31 s: spread, a third of the time apart.
	t0 := clk.Now()
	reset = t0.Add(30 * time.Second)
	l.Observe("list", 200, hdr("X-RateLimit-Remaining", "2", "X-RateLimit-Reset", strconv.FormatInt(reset.Unix(), 10)))
	end := reset.Add(DefaultResetMargin)
	for i, step := range []time.Duration{end.Sub(t0) / 3, end.Sub(t0) / 3} {
		ch := start(ctx, l, PriorityNew, "list")
		waitQueued(t, l, 1)
		clk.Advance(step - 2*time.Millisecond)
		if n, _ := granted(l); n != int64(3+i) {
			t.Fatalf("spread %d: granted %d too early", i, n)
		}
		clk.Advance(2 * time.Millisecond)
		if err := recv(t, ch, "spread"); err != nil {
			t.Fatal(err)
		}
		l.Observe("list", 200, nil)
	}
	// None left: the next waits for the window's end.
	ch = start(ctx, l, PriorityNew, "list")
	waitQueued(t, l, 1)
	clk.Advance(end.Sub(clk.Now()) - time.Millisecond)
	if n, _ := granted(l); n != 5 {
		t.Fatalf("granted %d before the window ended", n)
	}
	clk.Advance(time.Millisecond)
	if err := recv(t, ch, "next window"); err != nil {
		t.Fatal(err)
	}
}

func TestLateAnswersDoNotSlowThePace(t *testing.T) {
	// Each answer comes 200 ms after its request, with plenty left in the
	// window: the pace stays one request per interval.
	l, clk := newTestLimiter(t, Options{PerMinute: 300})
	iv := l.interval()
	reset := strconv.FormatInt(clk.Now().Add(59*time.Second).Unix(), 10)
	mustWait(t, l, PriorityBackfill)
	for i := range 100 {
		ch := start(context.Background(), l, PriorityBackfill, "detail")
		waitQueued(t, l, 1)
		clk.Advance(200 * time.Millisecond)
		l.Observe("detail", 200, hdr("X-RateLimit-Limit", "300", "X-RateLimit-Remaining", strconv.Itoa(299-i), "X-RateLimit-Reset", reset))
		clk.Advance(iv - 200*time.Millisecond)
		if err := recv(t, ch, "paced"); err != nil {
			t.Fatal(err)
		}
	}
	if n, _ := granted(l); n != 101 {
		t.Fatalf("granted %d, want 101", n)
	}
}

func TestStaleAnswerIgnored(t *testing.T) {
	l, clk := newTestLimiter(t, Options{PerMinute: 600})
	now := clk.Now()
	newer := strconv.FormatInt(now.Add(50*time.Second).Unix(), 10)
	older := strconv.FormatInt(now.Add(-10*time.Second).Unix(), 10)
	l.Observe("list", 200, hdr("X-RateLimit-Remaining", "3", "X-RateLimit-Reset", newer))
	l.Observe("list", 200, hdr("X-RateLimit-Remaining", "90", "X-RateLimit-Reset", older))
	if m, _ := l.Remaining(); m != 3 {
		t.Fatalf("Remaining minute %d, want 3", m)
	}
	// The same window: the better of the two lower bounds.
	l.Observe("list", 200, hdr("X-RateLimit-Remaining", "5", "X-RateLimit-Reset", newer))
	if m, _ := l.Remaining(); m != 5 {
		t.Fatalf("Remaining minute %d, want 5", m)
	}
}

func TestDailyCapFailsFastAndResets(t *testing.T) {
	l, clk := newTestLimiter(t, Options{PerMinute: 600, PerDay: 5, PurgeShare: -1})
	for range 5 {
		clk.Advance(time.Minute)
		mustWait(t, l, PriorityBackfill)
	}
	if _, d := l.Remaining(); d != 0 {
		t.Errorf("Remaining day %d", d)
	}
	err := l.Wait(WithPriority(context.Background(), PriorityNew), "list")
	var ee *ExhaustedError
	if !errors.Is(err, ErrDailyBudgetExhausted) || !errors.As(err, &ee) {
		t.Fatalf("Wait after the cap: %v", err)
	}
	if want := time.Date(2025, 6, 2, 0, 0, 0, 0, time.UTC); !ee.Until.Equal(want) || ee.Priority != PriorityNew {
		t.Errorf("exhausted until %v (%v), want %v", ee.Until, ee.Priority, want)
	}
	t.Log(err)
	if s := l.Stats(); s.Refused[PriorityNew] != 1 || s.DayUsed != 5 {
		t.Errorf("stats %+v", s)
	}
	clk.Advance(14 * time.Hour)
	mustWait(t, l, PriorityNew)
	if s := l.Stats(); s.DayUsed != 1 {
		t.Errorf("day used after the reset: %d", s.DayUsed)
	}
}

func TestDailyCapRefusesQueuedWaiters(t *testing.T) {
	l, clk := newTestLimiter(t, Options{PerMinute: 60, PerDay: 2, PurgeShare: -1})
	mustWait(t, l, PriorityNew)
	a := start(context.Background(), l, PriorityNew, "list")
	waitQueued(t, l, 1)
	b := start(context.Background(), l, PriorityBackfill, "list")
	waitQueued(t, l, 2)
	clk.Advance(l.interval())
	if err := recv(t, a, "a"); err != nil {
		t.Fatal(err)
	}
	if err := recv(t, b, "b"); !errors.Is(err, ErrDailyBudgetExhausted) {
		t.Fatalf("queued waiter after the cap: %v", err)
	}
}

func TestDailyPurgeShare(t *testing.T) {
	l, clk := newTestLimiter(t, Options{PerMinute: 6000, PerDay: 20, PurgeShare: 0.1})
	ctx := context.Background()
	for range 18 {
		clk.Advance(time.Second)
		mustWait(t, l, PriorityBackfill)
	}
	clk.Advance(time.Second)
	if err := l.Wait(ctx, "list"); !errors.Is(err, ErrDailyBudgetExhausted) {
		t.Fatalf("19th ingestion request: %v", err)
	}
	// Purge's part is untouched, and it is all purge gets.
	for range 2 {
		clk.Advance(time.Second)
		if err := l.Wait(ctx, cekat.EndpointDelete); err != nil {
			t.Fatalf("purge: %v", err)
		}
	}
	clk.Advance(time.Second)
	if err := l.Wait(ctx, cekat.EndpointDelete); !errors.Is(err, ErrDailyBudgetExhausted) {
		t.Fatalf("3rd purge request: %v", err)
	}
}

func TestDayLocation(t *testing.T) {
	wib := time.FixedZone("WIB", 7*3600)
	l, clk := newTestLimiter(t, Options{PerDay: 1, PurgeShare: -1, DayLocation: wib})
	mustWait(t, l, PriorityNew) // 17:00 WIB
	var ee *ExhaustedError
	if err := l.Wait(context.Background(), "list"); !errors.As(err, &ee) {
		t.Fatalf("Wait: %v", err)
	}
	if want := time.Date(2025, 6, 2, 0, 0, 0, 0, wib); !ee.Until.Equal(want) {
		t.Fatalf("until %v, want %v", ee.Until, want)
	}
	clk.Advance(7 * time.Hour)
	mustWait(t, l, PriorityNew)
}

func TestServerLongPauseFailsFast(t *testing.T) {
	l, clk := newTestLimiter(t, Options{PerMinute: 60})
	mustWait(t, l, PriorityNew)
	a := start(context.Background(), l, PriorityNew, "list")
	b := start(context.Background(), l, PriorityBackfill, "list")
	waitQueued(t, l, 2)
	// The simulator's daily cap: Remaining 0 until the next midnight.
	midnight := time.Date(2025, 6, 2, 0, 0, 0, 0, time.UTC)
	l.Observe("list", http.StatusTooManyRequests, hdr("X-RateLimit-Limit", "60", "X-RateLimit-Remaining", "0",
		"X-RateLimit-Reset", strconv.FormatInt(midnight.Unix(), 10)))
	for _, ch := range []<-chan error{a, b} {
		if err := recv(t, ch, "queued"); !errors.Is(err, ErrDailyBudgetExhausted) {
			t.Fatalf("queued waiter during a long pause: %v", err)
		}
	}
	err := l.Wait(context.Background(), "list")
	var ee *ExhaustedError
	if !errors.As(err, &ee) || ee.Until.Before(midnight) {
		t.Fatalf("Wait during a long pause: %v", err)
	}
	if _, d := l.Remaining(); d != 0 {
		t.Errorf("Remaining day %d during a long pause", d)
	}
	clk.Advance(midnight.Sub(clk.Now()) + 2*time.Second)
	mustWait(t, l, PriorityNew)
}

func TestServerRemainingZeroForHoursFailsFast(t *testing.T) {
	// A 2xx answer saying nothing is left until a reset hours ahead (a
	// daily window) ends the run too, instead of blocking until then.
	l, clk := newTestLimiter(t, Options{PerMinute: 60})
	mustWait(t, l, PriorityNew)
	reset := clk.Now().Add(3 * time.Hour)
	l.Observe("list", 200, hdr("X-RateLimit-Remaining", "0", "X-RateLimit-Reset", strconv.FormatInt(reset.Unix(), 10)))
	if err := l.Wait(context.Background(), "list"); !errors.Is(err, ErrDailyBudgetExhausted) {
		t.Fatalf("Wait: %v", err)
	}
	if _, d := l.Remaining(); d != 0 {
		t.Errorf("Remaining day %d", d)
	}
	clk.Advance(3*time.Hour + 2*time.Second)
	mustWait(t, l, PriorityNew)
}

func TestCancellation(t *testing.T) {
	l, clk := newTestLimiter(t, Options{PerMinute: 1})
	before := runtime.NumGoroutine()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := l.Wait(ctx, "list"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait on a cancelled context: %v", err)
	}
	mustWait(t, l, PriorityNew)

	ctx, cancel = context.WithCancel(context.Background())
	const n = 300
	errs := make(chan error, n)
	for i := range n {
		go func() { errs <- l.Wait(WithPriority(ctx, Priority(i%numPriorities)), "list") }()
	}
	waitQueued(t, l, n)
	cancel()
	for range n {
		if err := recv(t, errs, "cancelled waiter"); !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled waiter: %v", err)
		}
	}
	if q := l.queuedCount(); q != 0 {
		t.Fatalf("%d waiters left queued", q)
	}
	sinktest.WaitFor(t, "goroutines to end", func() bool { return runtime.NumGoroutine() <= before })

	// A deadline ends a wait too, and the slot stays for the next one.
	dctx, dcancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer dcancel()
	if err := l.Wait(dctx, "list"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait past its deadline: %v", err)
	}
	ch := start(context.Background(), l, PriorityNew, "list")
	waitQueued(t, l, 1)
	clk.Advance(l.interval())
	if err := recv(t, ch, "after cancellations"); err != nil {
		t.Fatal(err)
	}
	if n, _ := granted(l); n != 2 {
		t.Fatalf("granted %d", n)
	}
}

func TestRefundOfAnUnusedGrant(t *testing.T) {
	l, clk := newTestLimiter(t, Options{PerMinute: 60, PerDay: 10, PurgeShare: -1})
	mustWait(t, l, PriorityNew)
	clk.Advance(time.Minute)
	l.mu.Lock()
	prev := l.lastGrant
	w := &waiter{p: PriorityBackfill, since: clk.Now(), ch: make(chan error, 1)}
	l.grantLocked(w, clk.Now())
	<-w.ch
	l.refundLocked(w)
	used, last, inflight := l.dayUsed[0], l.lastGrant, len(l.inflight)
	l.mu.Unlock()
	if used != 1 || !last.Equal(prev) || inflight != 1 {
		t.Fatalf("after a refund: day used %d, last grant %v (want %v), in flight %d", used, last, prev, inflight)
	}
	if n, _ := granted(l); n != 1 {
		t.Fatalf("granted %d", n)
	}
}

func TestOnWaitHook(t *testing.T) {
	var mu sync.Mutex
	var waits []time.Duration
	clk := newFakeClock()
	l, err := New(Options{PerMinute: 60, Now: clk.Now, OnWait: func(p Priority, d time.Duration) {
		mu.Lock()
		waits = append(waits, d)
		mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	l.afterFunc = clk.AfterFunc
	mustWait(t, l, PriorityNew)
	ch := start(context.Background(), l, PriorityNew, "list")
	waitQueued(t, l, 1)
	clk.Advance(5 * time.Second)
	if err := recv(t, ch, "hooked"); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(waits) != 2 || waits[0] != 0 || waits[1] != l.interval() {
		t.Fatalf("OnWait saw %v", waits)
	}
}

func TestHeaderParsing(t *testing.T) {
	now := time.Unix(1_750_000_000, 0)
	for _, tc := range []struct {
		in   string
		want time.Time
		ok   bool
	}{
		{"1750000060", now.Add(time.Minute), true},
		{"1750000060.5", now.Add(60500 * time.Millisecond), true},
		{"42", now.Add(42 * time.Second), true},
		{"", time.Time{}, false},
		{"soon", time.Time{}, false},
		{"-3", time.Time{}, false},
	} {
		got, ok := parseReset(tc.in, now)
		if ok != tc.ok || !got.Equal(tc.want) {
			t.Errorf("parseReset(%q) = %v, %v; want %v, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
	for in, want := range map[string]int{"7": 7, " 12 ": 12, "3.0": 3} {
		if n, ok := headerInt(hdr("X", in), "X"); !ok || n != want {
			t.Errorf("headerInt(%q) = %d, %v", in, n, ok)
		}
	}
	for _, in := range []string{"", "-1", "x", "1e99"} {
		if _, ok := headerInt(hdr("X", in), "X"); ok {
			t.Errorf("headerInt(%q) accepted", in)
		}
	}
}

// TestConcurrentUse hammers one limiter on the real clock from many
// goroutines with answers of every kind; run it with -race.
func TestConcurrentUse(t *testing.T) {
	l, err := New(Options{PerMinute: 600_000, PerDay: 0, Headroom: 0.01})
	if err != nil {
		t.Fatal(err)
	}
	const workers, each = 40, 40
	var wg sync.WaitGroup
	var cancelled, ok sync.Map
	for i := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(i), 7))
			for j := range each {
				ctx, cancel := context.WithCancel(context.Background())
				if rng.IntN(10) == 0 {
					d := time.Duration(rng.IntN(200)) * time.Microsecond
					go func() { time.Sleep(d); cancel() }()
				}
				err := l.Wait(WithPriority(ctx, Priority(rng.IntN(numPriorities))), "detail")
				cancel()
				key := fmt.Sprint(i, "/", j)
				if err != nil {
					cancelled.Store(key, err)
					continue
				}
				ok.Store(key, true)
				h := hdr("X-RateLimit-Limit", "600000", "X-RateLimit-Remaining", strconv.Itoa(rng.IntN(10000)),
					"X-RateLimit-Reset", strconv.Itoa(1+rng.IntN(3)))
				status := 200
				if rng.IntN(200) == 0 {
					status, h = 0, nil
				}
				l.Observe("detail", status, h)
				_, _ = l.Remaining()
				_ = l.Stats()
			}
		}()
	}
	wg.Wait()
	var n int64
	ok.Range(func(any, any) bool { n++; return true })
	cancelled.Range(func(k, v any) bool {
		if !errors.Is(v.(error), context.Canceled) {
			t.Errorf("%v: %v", k, v)
		}
		return true
	})
	if total, _ := granted(l); total != n {
		t.Fatalf("granted %d, successful waits %d", total, n)
	}
	if q := l.queuedCount(); q != 0 {
		t.Fatalf("%d left queued", q)
	}
}

// What earlier processes spent today counts against the daily cap.
func TestUsedTodayCountsAgainstTheDay(t *testing.T) {
	l, err := New(Options{PerMinute: 100000, PerDay: 10, PurgeShare: -1, UsedToday: 8})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := range 2 {
		if err := l.Wait(ctx, "list"); err != nil {
			t.Fatalf("wait %d: %v", i, err)
		}
	}
	if err := l.Wait(ctx, "list"); !errors.Is(err, ErrDailyBudgetExhausted) {
		t.Fatalf("third wait = %v, want the budget exhausted", err)
	}
	if _, day := l.Remaining(); day != 0 {
		t.Errorf("remaining today = %d", day)
	}
}

// windowEnd is the end of the server's window as the limiter holds it.
func (l *Limiter) windowEnd() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.srvReset
}

// A server that sends X-RateLimit-Limit and -Remaining but not -Reset: the
// limiter places its windows from the counts.
func TestInferredWindow(t *testing.T) {
	at := func(min, sec, ms int) time.Time {
		return time.Date(2025, 6, 1, 10, min, sec, ms*int(time.Millisecond), time.UTC)
	}
	// paced sends 10 requests a minute, the first 17.3 s past 10:00, and
	// answers each with the given remaining figure (the limit only when
	// withLimit); it returns when each was sent and the window end the
	// limiter inferred after each answer.
	paced := func(t *testing.T, withLimit bool, remaining []int) (l *Limiter, sent, ends []time.Time) {
		l, clk := newTestLimiter(t, Options{PerMinute: 10})
		clk.Advance(17300 * time.Millisecond)
		for i, r := range remaining {
			if i > 0 {
				clk.Advance(l.interval())
			}
			mustWait(t, l, PriorityBackfill) // due: the inferred windows never slow the pace
			sent = append(sent, clk.Now())
			h := hdr("X-RateLimit-Remaining", strconv.Itoa(r))
			if withLimit {
				h.Set("X-RateLimit-Limit", "10")
			}
			l.Observe("detail", 200, h)
			ends = append(ends, l.windowEnd())
		}
		return l, sent, ends
	}
	t.Run("clock minutes", func(t *testing.T) {
		// 7 requests fit before 10:01; the 8th (10:01:00.14) starts a new
		// window: the minute is confirmed.
		for _, withLimit := range []bool{true, false} {
			l, sent, ends := paced(t, withLimit, []int{9, 8, 7, 6, 5, 4, 3, 9, 8})
			for i, end := range ends {
				want := at(1, 0, 0)
				if sent[i].After(want) {
					want = at(2, 0, 0)
				}
				if !end.Equal(want) {
					t.Errorf("limit header %v, answer %d (sent %v): window ends %v, want %v", withLimit, i, sent[i], end, want)
				}
			}
			if l.unaligned {
				t.Errorf("limit header %v: clock minutes taken for unaligned windows", withLimit)
			}
		}
	})
	t.Run("from the first request", func(t *testing.T) {
		// The window started with the first request: until 10:01 that
		// looks like the clock's minute; the 8th answer, after 10:01, says
		// the window goes on, so it ends a minute after the first request.
		// The 11th request starts the next window.
		l, sent, ends := paced(t, true, []int{9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 9, 8})
		for i, end := range ends {
			want := at(1, 0, 0)
			switch {
			case i >= 10:
				want = sent[10].Add(time.Minute)
			case i >= 7:
				want = sent[0].Add(time.Minute)
			}
			if !end.Equal(want) {
				t.Errorf("answer %d (sent %v): window ends %v, want %v", i, sent[i], end, want)
			}
		}
		if !l.unaligned {
			t.Error("the windows were not seen to start off the minute")
		}
	})
	t.Run("spent window", func(t *testing.T) {
		// Another client of the key spent the window: nothing is sent
		// before its inferred end (the clock's minute, plus the margin),
		// and no longer than that either.
		l, clk := newTestLimiter(t, Options{PerMinute: 10})
		clk.Advance(17300 * time.Millisecond)
		mustWait(t, l, PriorityNew)
		l.Observe("list", 200, hdr("X-RateLimit-Limit", "10", "X-RateLimit-Remaining", "0"))
		ch := start(context.Background(), l, PriorityNew, "list")
		waitQueued(t, l, 1)
		end := at(1, 0, 0).Add(DefaultResetMargin)
		clk.Advance(end.Sub(clk.Now()) - time.Millisecond)
		if n, _ := granted(l); n != 1 {
			t.Fatalf("granted %d before the window ended", n)
		}
		clk.Advance(time.Millisecond)
		if err := recv(t, ch, "next window"); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("reset sent", func(t *testing.T) {
		// X-RateLimit-Reset, when sent, is taken as it is.
		l, clk := newTestLimiter(t, Options{PerMinute: 10})
		clk.Advance(17300 * time.Millisecond)
		mustWait(t, l, PriorityNew)
		reset := at(1, 17, 0)
		l.Observe("list", 200, hdr("X-RateLimit-Limit", "10", "X-RateLimit-Remaining", "9",
			"X-RateLimit-Reset", strconv.FormatInt(reset.Unix(), 10)))
		if end := l.windowEnd(); !end.Equal(reset) {
			t.Fatalf("window ends %v, want %v", end, reset)
		}
	})
}
