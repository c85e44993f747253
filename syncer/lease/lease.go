// Package lease keeps two archiver processes from working on one archive
// (or one shard of it) at once: they would pay the API for the same
// messages twice. A process takes the lease before it syncs and renews it
// while it runs; a second process finds it held and refuses to run, naming
// the holder.
package lease

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/cekat-archiver/cekat-archiver/sink"
)

// Store is what a lease needs of the archive (*sink.Store).
type Store interface {
	WriteLease(ctx context.Context, r sink.LeaseRow, ttl time.Duration) error
	LiveLeases(ctx context.Context, lease string) ([]sink.LeaseRow, error)
}

// DefaultHeartbeat is how often a holder renews its lease; it lapses
// after DefaultExpiryBeats of them without a renewal.
const (
	DefaultHeartbeat   = 15 * time.Second
	DefaultExpiryBeats = 4
)

// Options configure a lease. Name is required.
type Options struct {
	// Name is what is held: Name("") for an archive, Name("2/3") for a
	// shard of it.
	Name string
	// Host and PID name this process (os.Hostname and os.Getpid).
	Host string
	PID  int
	// Heartbeat is how often Keep renews (DefaultHeartbeat); TTL how long
	// a lease lasts without a renewal (DefaultExpiryBeats heartbeats).
	Heartbeat time.Duration
	TTL       time.Duration
	// Alive says whether a process of this host still runs (signal 0).
	Alive func(pid int) bool
	// Now is the local clock, used only to notice missed renewals.
	Now func() time.Time
}

// Name is the lease of an archive's shard ("" when not sharded).
func Name(shard string) string {
	if shard == "" {
		return "archive"
	}
	return "archive shard " + shard
}

// HeldError is the refusal to run beside another holder.
type HeldError struct {
	Lease  string
	Holder sink.LeaseRow
}

func (e *HeldError) Error() string {
	h := e.Holder
	return fmt.Sprintf("another archiver works on this archive (lease %q): host %s, pid %d, since %s, last heartbeat %s; "+
		"two archivers on one archive pay the API for the same messages twice. Stop the other one; if it is gone, its lease lapses at %s",
		e.Lease, h.Host, h.PID, h.Since.Format(time.RFC3339), h.Heartbeat.Format(time.RFC3339), h.Expires.Format(time.RFC3339))
}

// ErrLost: the lease lapsed while this process held it (no renewal for
// longer than its TTL) and another process holds it now.
var ErrLost = errors.New("the archive's lease was lost to another archiver")

// Lease is a lease held by this process.
type Lease struct {
	store  Store
	opts   Options
	holder string

	mu      sync.Mutex
	since   time.Time
	version uint64
	renewed time.Time // local clock: the last renewal that was stored
}

// Acquire takes the lease, or returns a *HeldError naming its holder.
// Taking it is "write my row, then read the live rows": a process that
// sees another live holder besides itself withdraws its row. Two that
// start at the same moment may both withdraw; neither runs beside the
// other.
func Acquire(ctx context.Context, store Store, opts Options) (*Lease, error) {
	if opts.Name == "" {
		return nil, errors.New("lease: no name")
	}
	if opts.Host == "" {
		opts.Host, _ = os.Hostname()
	}
	if opts.PID == 0 {
		opts.PID = os.Getpid()
	}
	if opts.Heartbeat <= 0 {
		opts.Heartbeat = DefaultHeartbeat
	}
	if opts.TTL <= 0 {
		opts.TTL = DefaultExpiryBeats * opts.Heartbeat
	}
	if opts.Alive == nil {
		opts.Alive = alive
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	l := &Lease{store: store, opts: opts, holder: fmt.Sprintf("%s:%d:%s", opts.Host, opts.PID, hex.EncodeToString(b[:]))}

	if other, err := l.other(ctx); err != nil || other != nil {
		return nil, l.held(other, err)
	}
	if err := l.write(ctx, false); err != nil {
		return nil, err
	}
	rows, err := store.LiveLeases(ctx, opts.Name)
	if err != nil {
		return nil, err
	}
	var mine *sink.LeaseRow
	for i := range rows {
		if rows[i].Holder == l.holder {
			mine = &rows[i]
		}
	}
	other := l.firstOther(rows)
	if mine == nil && other == nil {
		return nil, fmt.Errorf("lease %q: the row just written is not there to read", opts.Name)
	}
	if other != nil {
		// Someone else took it meanwhile: withdraw.
		_ = l.write(context.WithoutCancel(ctx), true)
		return nil, &HeldError{Lease: opts.Name, Holder: *other}
	}
	l.mu.Lock()
	l.since = mine.Since
	l.mu.Unlock()
	return l, nil
}

// Holder is this process's holder id.
func (l *Lease) Holder() string { return l.holder }

// Renew pushes the lease's expiry on. After a gap longer than the TTL (the
// archive was out of reach, the process stalled) another process may have
// taken the lease: it returns ErrLost (wrapped in a *HeldError's words)
// when one holds it now.
func (l *Lease) Renew(ctx context.Context) error {
	l.mu.Lock()
	lapsed := l.opts.Now().Sub(l.renewed) > l.opts.TTL
	l.mu.Unlock()
	if lapsed {
		other, err := l.other(ctx)
		if err != nil {
			return err
		}
		if other != nil {
			return fmt.Errorf("%w: %w", ErrLost, &HeldError{Lease: l.opts.Name, Holder: *other})
		}
	}
	return l.write(ctx, false)
}

// Release lets the lease go.
func (l *Lease) Release(ctx context.Context) error {
	return l.write(ctx, true)
}

// Keep renews the lease every heartbeat until ctx is done, then releases
// it. It returns ErrLost when the lease was lost; a renewal that fails
// otherwise is reported to onError and tried again at the next beat.
func (l *Lease) Keep(ctx context.Context, onError func(error)) error {
	t := time.NewTicker(l.opts.Heartbeat)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), l.opts.Heartbeat)
			defer cancel()
			return l.Release(rctx)
		case <-t.C:
			if err := l.Renew(ctx); err != nil {
				if errors.Is(err, ErrLost) {
					return err
				}
				if ctx.Err() == nil && onError != nil {
					onError(err)
				}
			}
		}
	}
}

func (l *Lease) write(ctx context.Context, released bool) error {
	l.mu.Lock()
	l.version = max(l.version+1, uint64(time.Now().UnixNano()))
	r := sink.LeaseRow{Lease: l.opts.Name, Holder: l.holder, Host: l.opts.Host, PID: uint32(l.opts.PID), Since: l.since,
		Released: released, Version: l.version}
	l.mu.Unlock()
	if err := l.store.WriteLease(ctx, r, l.opts.TTL); err != nil {
		return err
	}
	l.mu.Lock()
	l.renewed = l.opts.Now()
	l.mu.Unlock()
	return nil
}

// other is the first live holder besides this process.
func (l *Lease) other(ctx context.Context) (*sink.LeaseRow, error) {
	rows, err := l.store.LiveLeases(ctx, l.opts.Name)
	if err != nil {
		return nil, err
	}
	return l.firstOther(rows), nil
}

// firstOther is the earliest of rows held by another live process. A row
// of this host whose process is gone (or is this process: a container
// restarted with the same pid) is a killed predecessor's: not a holder.
func (l *Lease) firstOther(rows []sink.LeaseRow) *sink.LeaseRow {
	for i, r := range rows {
		if r.Holder == l.holder {
			continue
		}
		if r.Host == l.opts.Host && (int(r.PID) == l.opts.PID || !l.opts.Alive(int(r.PID))) {
			continue
		}
		return &rows[i]
	}
	return nil
}

func (l *Lease) held(other *sink.LeaseRow, err error) error {
	if err != nil {
		return err
	}
	return &HeldError{Lease: l.opts.Name, Holder: *other}
}

// alive reports whether a process of this host runs with pid.
func alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
