package syncer

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/cekat-archiver/cekat-archiver/syncer/cekat"
)

// detailShareFor is how long a detail answer serves the engine's other
// runs: the webhook run that resolved a message's conversation and the
// cron run enriching the same new message, started side by side, pay for
// one call. Short, as a re-check wants the status as it is now.
const detailShareFor = time.Minute

// detailsShared is the engine's API with its detail calls shared between
// the engine's runs: one call for the same message in flight at once, and
// an answer reused for detailShareFor.
type detailsShared struct {
	API
	now      func() time.Time
	mu       sync.Mutex
	recent   map[string]sharedDetail
	inflight map[string]*detailCall
}

type sharedDetail struct {
	m  cekat.Message
	at time.Time
}

type detailCall struct {
	done    chan struct{}
	m       cekat.Message
	err     error
	waiters int
}

func shareDetails(api API, now func() time.Time) *detailsShared {
	return &detailsShared{API: api, now: now, recent: map[string]sharedDetail{}, inflight: map[string]*detailCall{}}
}

// GetMessage answers from a call in flight or just made for the same
// message, else calls.
func (d *detailsShared) GetMessage(ctx context.Context, id string) (cekat.Message, error) {
	d.mu.Lock()
	now := d.now()
	if s, ok := d.recent[id]; ok && now.Sub(s.at) <= detailShareFor {
		d.mu.Unlock()
		return s.m, nil
	}
	c, joined := d.inflight[id]
	if !joined {
		c = &detailCall{done: make(chan struct{})}
		d.inflight[id] = c
	}
	c.waiters++
	d.mu.Unlock()
	if !joined {
		c.m, c.err = d.API.GetMessage(ctx, id)
		d.mu.Lock()
		delete(d.inflight, id)
		if c.err == nil {
			d.keepLocked(id, c.m, d.now())
		}
		d.mu.Unlock()
		close(c.done)
		return c.m, c.err
	}
	select {
	case <-c.done:
		if c.err != nil && ctx.Err() == nil && (errors.Is(c.err, context.Canceled) || errors.Is(c.err, context.DeadlineExceeded)) {
			// The run that made the call stopped; this one has not.
			return d.API.GetMessage(ctx, id)
		}
		return c.m, c.err
	case <-ctx.Done():
		return cekat.Message{}, ctx.Err()
	}
}

// waiting is how many asks share the call in flight for id.
func (d *detailsShared) waiting(id string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	if c, ok := d.inflight[id]; ok {
		return c.waiters
	}
	return 0
}

func (d *detailsShared) keepLocked(id string, m cekat.Message, now time.Time) {
	if len(d.recent) >= 10000 {
		for k, s := range d.recent {
			if now.Sub(s.at) > detailShareFor {
				delete(d.recent, k)
			}
		}
	}
	d.recent[id] = sharedDetail{m: m, at: now}
}
