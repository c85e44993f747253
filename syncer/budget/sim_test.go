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

func runFake(t *testing.T, serverPerMin, perDay int, lim Options, noHeaders bool, workers int, d time.Duration) fakeRun {
	t.Helper()
	clk := newFakeClock()
	env := newSimEnv(t, envOptions{
		sim: cekatsim.Options{Seed: 7, Conversations: 6, MeanMessages: 300,
			RatePerMinute: serverPerMin, RatePerDay: perDay, RetryAfter: true},
		lim: lim, noHeaders: noHeaders, workers: workers, fake: clk,
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
	t.Logf("server %d/min, configured %d/min, headers %v: %d made in %v (%d allowed, %.1f%%), %d 429s, pace %d/min",
		serverPerMin, lim.PerMinute, !noHeaders, r.made, spent, r.allowed, 100*r.utilization, r.throttled, r.stats.Limit)
	return r
}

func TestSimulatorMatchingLimit(t *testing.T) {
	for _, tc := range []struct {
		perMin int
		d      time.Duration
	}{{10, 20 * time.Minute}, {60, 10 * time.Minute}, {300, 5 * time.Minute}} {
		t.Run(fmt.Sprint(tc.perMin), func(t *testing.T) {
			r := runFake(t, tc.perMin, 0, Options{PerMinute: tc.perMin}, false, 4, tc.d)
			if r.throttled != 0 || r.utilization < 0.95 {
				t.Fatalf("%d 429s, utilization %.3f; want none and at least 0.95", r.throttled, r.utilization)
			}
		})
	}
}

func TestSimulatorLowerThanConfigured(t *testing.T) {
	r := runFake(t, 40, 0, Options{PerMinute: 60}, false, 4, 10*time.Minute)
	if r.throttled > 1 || r.utilization < 0.95 || r.stats.Limit != 40 {
		t.Fatalf("%d 429s, utilization %.3f, pace %d; want at most one, at least 0.95, 40", r.throttled, r.utilization, r.stats.Limit)
	}
}

func TestSimulatorWithoutRateHeaders(t *testing.T) {
	// Only Retry-After tells the limiter anything: every 429 pauses all
	// workers and lowers the pace, which then creeps back up.
	r := runFake(t, 40, 0, Options{PerMinute: 60}, true, 4, 30*time.Minute)
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
	r := runFake(t, 60, 25, Options{PerMinute: 60}, false, workers, time.Hour)
	if r.made != 25 || r.exhausted != workers || r.throttled > workers {
		t.Fatalf("made %d, exhausted workers %d, 429s %d", r.made, r.exhausted, r.throttled)
	}
	// The limiter's own daily cap stops the run before the server's.
	r = runFake(t, 60, 25, Options{PerMinute: 60, PerDay: 20, PurgeShare: -1}, false, workers, time.Hour)
	if r.made != 20 || r.exhausted != workers || r.throttled != 0 {
		t.Fatalf("made %d, exhausted workers %d, 429s %d", r.made, r.exhausted, r.throttled)
	}
}
