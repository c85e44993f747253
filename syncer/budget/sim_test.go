package budget

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/cekat-archiver/cekat-archiver/syncer/cekatsim"
)

// These tests run the real client against the simulator over real HTTP; the
// simulator's rate windows and the limiter share a fake clock that jumps
// from slot to slot, so that many simulated minutes take a second.

type fakeRun struct {
	made, allowed, throttled int
	utilization              float64
	stats                    Stats
	exhausted, failures      int64
}

// serverMode is how the simulator's rate limit shows itself: which
// X-RateLimit-* headers it sends (default all) and whether its minute
// windows are the clock's. offset is how far past a whole minute the first
// request goes.
type serverMode struct {
	headers cekatsim.RateHeaders
	aligned bool
	offset  time.Duration
}

func (m serverMode) String() string {
	h := m.headers
	if h == "" {
		h = cekatsim.RateHeadersAll
	}
	if m.aligned {
		return string(h) + ",aligned"
	}
	return string(h) + ",first-request"
}

var noHeaders = serverMode{headers: cekatsim.RateHeadersNone}

func runFake(t *testing.T, serverPerMin, perDay int, lim Options, mode serverMode, workers int, d time.Duration) fakeRun {
	t.Helper()
	clk := newFakeClock()
	clk.Advance(mode.offset)
	env := newSimEnv(t, envOptions{
		sim: cekatsim.Options{Seed: 7, Conversations: 6, MeanMessages: 300,
			RatePerMinute: serverPerMin, RatePerDay: perDay, RetryAfter: true,
			RateHeaders: mode.headers, RateWindowAligned: mode.aligned},
		lim: lim, workers: workers, fake: clk,
	})
	ctx, cancel := context.WithCancel(context.Background())
	b := startBackfill(ctx, env, workers)
	spent := driveFakeTime(t, clk, b, d)
	cancel()
	b.wg.Wait()
	c := env.sim.Counts()
	r := fakeRun{made: c.Total - c.RateLimited, throttled: c.RateLimited, stats: env.lim.Stats(),
		exhausted: b.exhausted.Load(), failures: b.failures.Load()}
	r.allowed = int(float64(serverPerMin) * spent.Minutes())
	r.utilization = float64(r.made) / (float64(serverPerMin) * spent.Minutes())
	t.Logf("server %d/min, configured %d/min, %v: %d made in %v (%d allowed, %.1f%%), %d 429s, pace %d/min",
		serverPerMin, lim.PerMinute, mode, r.made, spent, r.allowed, 100*r.utilization, r.throttled, r.stats.Limit)
	return r
}

func TestSimulatorMatchingLimit(t *testing.T) {
	for _, tc := range []struct {
		perMin int
		d      time.Duration
	}{{10, 20 * time.Minute}, {60, 10 * time.Minute}, {300, 5 * time.Minute}} {
		t.Run(fmt.Sprint(tc.perMin), func(t *testing.T) {
			r := runFake(t, tc.perMin, 0, Options{PerMinute: tc.perMin}, serverMode{}, 4, tc.d)
			if r.throttled != 0 || r.utilization < 0.95 {
				t.Fatalf("%d 429s, utilization %.3f; want none and at least 0.95", r.throttled, r.utilization)
			}
		})
	}
}

// The whole limit is used whatever rate headers the server sends and
// wherever its minute windows start: with only X-RateLimit-Limit
// and -Remaining the limiter infers when the window ends.
func TestSimulatorMatchingLimitHeaderModes(t *testing.T) {
	for _, headers := range []cekatsim.RateHeaders{cekatsim.RateHeadersAll, cekatsim.RateHeadersLimitRemaining, cekatsim.RateHeadersNone} {
		for _, aligned := range []bool{false, true} {
			for _, tc := range []struct {
				perMin int
				d      time.Duration
			}{{10, 20 * time.Minute}, {60, 10 * time.Minute}} {
				// The first request 17.3 s past the minute: a window
				// starting there is not the clock's minute.
				mode := serverMode{headers, aligned, 17300 * time.Millisecond}
				t.Run(fmt.Sprintf("%v/%d", mode, tc.perMin), func(t *testing.T) {
					r := runFake(t, tc.perMin, 0, Options{PerMinute: tc.perMin}, mode, 4, tc.d)
					want := 0.95
					if headers == cekatsim.RateHeadersNone {
						want = 0.90
					}
					if r.throttled != 0 || r.utilization < want {
						t.Fatalf("%d 429s, utilization %.3f; want none and at least %.2f", r.throttled, r.utilization, want)
					}
				})
			}
		}
	}
}

func TestSimulatorLowerThanConfigured(t *testing.T) {
	r := runFake(t, 40, 0, Options{PerMinute: 60}, serverMode{}, 4, 10*time.Minute)
	if r.throttled > 1 || r.utilization < 0.95 || r.stats.Limit != 40 {
		t.Fatalf("%d 429s, utilization %.3f, pace %d; want at most one, at least 0.95, 40", r.throttled, r.utilization, r.stats.Limit)
	}
}

func TestSimulatorWithoutRateHeaders(t *testing.T) {
	// Only Retry-After tells the limiter anything: every 429 pauses all
	// workers and lowers the pace, which then creeps back up.
	r := runFake(t, 40, 0, Options{PerMinute: 60}, noHeaders, 4, 30*time.Minute)
	if r.throttled > 12 || r.utilization < 0.75 {
		t.Fatalf("%d 429s, utilization %.3f; want few and at least 0.75", r.throttled, r.utilization)
	}
	if r.stats.Pauses != int64(r.throttled) {
		t.Errorf("%d pauses for %d 429s: in-flight echoes should not pause again", r.stats.Pauses, r.throttled)
	}
}

func TestSimulatorDailyCapEndsTheRun(t *testing.T) {
	// The server's daily cap, unknown to the limiter: its 429 asks to wait
	// until midnight, so every worker stops at once instead of sleeping.
	const workers = 3
	r := runFake(t, 60, 25, Options{PerMinute: 60}, serverMode{}, workers, time.Hour)
	if r.made != 25 || r.exhausted != workers || r.throttled > workers {
		t.Fatalf("made %d, exhausted workers %d, 429s %d", r.made, r.exhausted, r.throttled)
	}
	// The limiter's own daily cap stops the run before the server's.
	r = runFake(t, 60, 25, Options{PerMinute: 60, PerDay: 20, PurgeShare: -1}, serverMode{}, workers, time.Hour)
	if r.made != 20 || r.exhausted != workers || r.throttled != 0 {
		t.Fatalf("made %d, exhausted workers %d, 429s %d", r.made, r.exhausted, r.throttled)
	}
}
