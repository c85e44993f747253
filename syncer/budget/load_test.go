package budget

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cekat-archiver/cekat-archiver/syncer/cekat"
	"github.com/cekat-archiver/cekat-archiver/syncer/cekatsim"

	"github.com/cekat-archiver/cekat-archiver/sink/sinktest"
)

// simEnv is the simulator behind a real HTTP server, and the real client
// going through a Limiter.
type simEnv struct {
	sim    *cekatsim.Server
	srv    *httptest.Server
	lim    *Limiter
	client *cekat.Client
}

type envOptions struct {
	sim     cekatsim.Options
	lim     Options
	workers int
	// fake is the clock of both the simulator's rate limit and the limiter;
	// nil: the wall clock.
	fake *fakeClock
}

func newSimEnv(tb testing.TB, o envOptions) *simEnv {
	tb.Helper()
	if o.fake != nil {
		o.sim.Now = o.fake.Now
		o.lim.Now = o.fake.Now
	}
	sim, err := cekatsim.New(o.sim)
	if err != nil {
		tb.Fatalf("cekatsim.New: %v", err)
	}
	srv := httptest.NewServer(sim.Handler())
	tb.Cleanup(srv.Close)
	lim, err := New(o.lim)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	co := cekat.Options{
		BaseURL:    srv.URL,
		APIKey:     cekatsim.DefaultAPIKey,
		Limiter:    lim,
		MaxRetries: 3,
		HTTPClient: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: o.workers + 2}},
	}
	if o.fake != nil {
		lim.afterFunc = o.fake.AfterFunc
		// The limiter does the waiting, in fake time.
		co.Sleep = func(ctx context.Context, _ time.Duration) error { return ctx.Err() }
	}
	client, err := cekat.New(co)
	if err != nil {
		tb.Fatalf("cekat.New: %v", err)
	}
	return &simEnv{sim: sim, srv: srv, lim: lim, client: client}
}

// backfill is the load of a long backfill: workers walk the conversations'
// pages from the newest back and fetch the detail of every message, as fast
// as the limiter lets them, round and round.
type backfill struct {
	env       *simEnv
	convs     []string
	next      atomic.Int64
	active    atomic.Int64
	exhausted atomic.Int64 // workers stopped by ErrDailyBudgetExhausted
	failures  atomic.Int64 // other failed calls (throttled beyond the client's retries)
	wg        sync.WaitGroup
}

func startBackfill(ctx context.Context, env *simEnv, workers int) *backfill {
	b := &backfill{env: env, convs: env.sim.ConversationIDs()}
	ctx = WithPriority(ctx, PriorityBackfill)
	b.active.Store(int64(workers))
	b.wg.Add(workers)
	for range workers {
		go func() {
			defer b.wg.Done()
			defer b.active.Add(-1)
			b.work(ctx)
		}()
	}
	return b
}

func (b *backfill) work(ctx context.Context) {
	for ctx.Err() == nil {
		conv := b.convs[int(b.next.Add(1)-1)%len(b.convs)]
		cursor := ""
		for {
			page, err := b.env.client.ListMessages(ctx, conv, 100, cursor)
			if err != nil {
				if b.stop(ctx, err) {
					return
				}
				break
			}
			for _, m := range page.Messages {
				if _, err := b.env.client.GetMessage(ctx, m.ID); err != nil && b.stop(ctx, err) {
					return
				}
			}
			if !page.HasMore || page.Before == "" {
				break
			}
			cursor = page.Before
		}
	}
}

// stop counts a failed call and says whether the worker is done.
func (b *backfill) stop(ctx context.Context, err error) bool {
	switch {
	case ctx.Err() != nil:
		return true
	case errors.Is(err, ErrDailyBudgetExhausted):
		b.exhausted.Add(1)
		return true
	}
	b.failures.Add(1)
	return false
}

// driveFakeTime advances the fake clock from slot to slot, each time once
// every worker is blocked in Wait (none is between calls or in flight), for
// d of fake time or until no worker is left. It returns the fake time spent.
func driveFakeTime(tb testing.TB, clk *fakeClock, b *backfill, d time.Duration) time.Duration {
	tb.Helper()
	start := clk.Now()
	end := start.Add(d)
	for clk.Now().Before(end) {
		sinktest.WaitFor(tb, "every worker to wait", func() bool {
			return int64(b.env.lim.queuedCount()) == b.active.Load()
		})
		if b.active.Load() == 0 || !clk.AdvanceToNext() {
			break
		}
	}
	return clk.Now().Sub(start)
}
