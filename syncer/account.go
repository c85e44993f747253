package syncer

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/cekat-archiver/cekat-archiver/sink"
	"github.com/cekat-archiver/cekat-archiver/syncer/cekat"
)

// DefaultRequestStep is how many API requests a run records ahead of
// them: a run writes a new version of its sync_runs row once every step
// requests, and a killed run has counted at most step requests it did not
// make, never one it made.
const DefaultRequestStep = 50

// account counts the API requests of one run and keeps the run's row in
// the archive ahead of them: a request is sent only once a row that
// counts it is stored (see reserve), so a run killed at any moment has
// recorded every request it made.
type account struct {
	save func(context.Context, sink.RunRow) error
	step uint64
	now  func() time.Time

	// wmu: one row written at a time, in version order.
	wmu sync.Mutex

	mu       sync.Mutex
	row      sink.RunRow      // the run's row as last written, Requests as recorded
	counts   map[string]int64 // attempts observed, by endpoint
	observed uint64           // attempts observed
	granted  uint64           // attempts the limiter let through
	fill     func(*sink.RunRow)
}

func newAccount(row sink.RunRow, step int, save func(context.Context, sink.RunRow) error, now func() time.Time) *account {
	if step <= 0 {
		step = DefaultRequestStep
	}
	row.Result = sink.RunRunning
	return &account{save: save, step: uint64(step), now: now, row: row, counts: map[string]int64{}}
}

type accountKey struct{}

// withAccount returns ctx whose API calls count in a.
func withAccount(ctx context.Context, a *account) context.Context {
	return context.WithValue(ctx, accountKey{}, a)
}

func accountOf(ctx context.Context) *account {
	if ctx == nil {
		return nil
	}
	a, _ := ctx.Value(accountKey{}).(*account)
	return a
}

// base is the run's row as last written.
func (a *account) base() sink.RunRow {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.row
}

// setFill sets what fills the progress columns of the rows written while
// the run goes.
func (a *account) setFill(fill func(*sink.RunRow)) {
	a.mu.Lock()
	a.fill = fill
	a.mu.Unlock()
}

// begin writes the run's first row, recording a step of requests ahead.
func (a *account) begin(ctx context.Context) error {
	return a.reserveUpTo(ctx, 0)
}

// reserve records one more request before it is sent.
func (a *account) reserve(ctx context.Context) error {
	a.mu.Lock()
	a.granted++
	need := max(a.granted, a.observed)
	a.mu.Unlock()
	if err := a.reserveUpTo(ctx, need); err != nil {
		a.mu.Lock()
		a.granted--
		a.mu.Unlock()
		return err
	}
	return nil
}

// reserveUpTo makes sure the stored row counts need requests, writing a
// version that counts need + step when it does not. The version is
// written first, the request sent after: a crash between the two counts a
// request not made, never the reverse.
func (a *account) reserveUpTo(ctx context.Context, need uint64) error {
	a.mu.Lock()
	ok := a.row.Version > 0 && need <= a.row.Requests
	a.mu.Unlock()
	if ok {
		return nil
	}
	a.wmu.Lock()
	defer a.wmu.Unlock()
	a.mu.Lock()
	if a.row.Version > 0 && need <= a.row.Requests {
		a.mu.Unlock()
		return nil // written meanwhile
	}
	row := a.row
	row.Requests = max(need, a.observed) + a.step
	row.Version++
	row.FinishedAt = a.now().UTC()
	if a.fill != nil {
		a.fill(&row)
	}
	a.mu.Unlock()
	if err := a.save(context.WithoutCancel(ctx), row); err != nil {
		return storeErr(fmt.Errorf("record the run's API requests before sending more: %w", err))
	}
	a.mu.Lock()
	a.row.Requests, a.row.Version = row.Requests, row.Version
	a.mu.Unlock()
	return nil
}

// observe counts an attempt the client made (a request sent, or re-sent
// by the transport).
func (a *account) observe(endpoint string) {
	a.mu.Lock()
	a.counts[endpoint]++
	a.observed++
	a.mu.Unlock()
}

// requests is the attempts observed, by endpoint.
func (a *account) requests() map[string]int64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make(map[string]int64, len(a.counts))
	for k, v := range a.counts {
		out[k] = v
	}
	return out
}

// final is the run's summary row, the version after every one written.
// Requests are exact: the attempts observed.
func (a *account) final(row sink.RunRow) sink.RunRow {
	a.wmu.Lock()
	defer a.wmu.Unlock()
	a.mu.Lock()
	defer a.mu.Unlock()
	row.Requests = a.observed
	a.row.Version++
	row.Version = a.row.Version
	return row
}

// accountingLimiter records each request in its run's row before the
// request is sent (see account.reserve).
type accountingLimiter struct{ inner cekat.Limiter }

func (l accountingLimiter) Wait(ctx context.Context, endpoint string) error {
	if l.inner != nil {
		if err := l.inner.Wait(ctx, endpoint); err != nil {
			return err
		}
	}
	if a := accountOf(ctx); a != nil {
		return a.reserve(ctx)
	}
	return nil
}

func (l accountingLimiter) Observe(endpoint string, status int, header http.Header) {
	if l.inner != nil {
		l.inner.Observe(endpoint, status, header)
	}
}
