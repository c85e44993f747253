package daemon

import (
	"context"

	"golang.org/x/sync/semaphore"
)

// gate keeps a job marked Exclusive (the retention purge) from running at
// the same time as any other job's run: it waits for the runs in hand to
// finish, and runs that start meanwhile wait for it. The others share the
// gate and may overlap one another. It is a weighted semaphore: a shared
// run takes one unit, an exclusive run all of them. Its waiters are served
// first come first served, so a waiting exclusive run goes before runs that
// start after it, and a steady stream of syncs cannot put the purge off for
// ever. Waiting honours the run's context, so a stop signal never waits for
// the gate.
type gate struct{ sem *semaphore.Weighted }

// gateSize is more units than shared runs will ever hold at once.
const gateSize = 1 << 30

func newGate() *gate { return &gate{sem: semaphore.NewWeighted(gateSize)} }

func weight(exclusive bool) int64 {
	if exclusive {
		return gateSize
	}
	return 1
}

// acquire waits until the gate lets a run in, exclusive or shared. wait,
// when not nil, is called once if the run has to wait.
func (g *gate) acquire(ctx context.Context, exclusive bool, wait func()) error {
	if g.sem.TryAcquire(weight(exclusive)) {
		return nil
	}
	if wait != nil {
		wait()
	}
	return g.sem.Acquire(ctx, weight(exclusive))
}

func (g *gate) release(exclusive bool) { g.sem.Release(weight(exclusive)) }
