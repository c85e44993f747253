package daemon

import (
	"context"
	"sync"
)

// gate keeps a job marked Exclusive (the retention purge) from running at
// the same time as any other job's run: it waits for the runs in hand to
// finish, and runs that start meanwhile wait for it. The others share the
// gate and may overlap one another. A waiting exclusive run goes
// before runs that start after it, so a steady stream of syncs cannot put
// the purge off for ever. Waiting honours the run's context, so a stop
// signal never waits for the gate.
type gate struct {
	mu        sync.Mutex
	shared    int  // runs holding the gate shared
	exclusive bool // an exclusive run holds it
	queued    int  // exclusive runs waiting
	changed   chan struct{}
}

func newGate() *gate { return &gate{changed: make(chan struct{})} }

// notifyLocked wakes every waiter to look again.
func (g *gate) notifyLocked() {
	close(g.changed)
	g.changed = make(chan struct{})
}

// acquire waits until the gate lets a run in, exclusive or shared. wait,
// when not nil, is called once if the run has to wait.
func (g *gate) acquire(ctx context.Context, exclusive bool, wait func()) error {
	queued := false
	defer func() {
		if queued {
			g.mu.Lock()
			g.queued--
			g.notifyLocked()
			g.mu.Unlock()
		}
	}()
	for {
		g.mu.Lock()
		var free bool
		if exclusive {
			free = !g.exclusive && g.shared == 0
		} else {
			free = !g.exclusive && g.queued == 0
		}
		if free {
			if exclusive {
				g.exclusive = true
			} else {
				g.shared++
			}
			g.mu.Unlock()
			return nil
		}
		if exclusive && !queued {
			queued = true
			g.queued++
		}
		ch := g.changed
		g.mu.Unlock()
		if wait != nil {
			wait()
			wait = nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		}
	}
}

func (g *gate) release(exclusive bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if exclusive {
		g.exclusive = false
	} else {
		g.shared--
	}
	g.notifyLocked()
}
