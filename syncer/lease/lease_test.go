package lease_test

// Leases on a real ClickHouse (skipped without one; see sink/sinktest).
// Expiry is tested with a TTL of zero (a lease that has lapsed when it is
// written), never by waiting.

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cekat-archiver/cekat-archiver/sink"
	"github.com/cekat-archiver/cekat-archiver/sink/storetest"
	"github.com/cekat-archiver/cekat-archiver/syncer/lease"
)

func openStore(t *testing.T) *sink.Store {
	t.Helper()
	return storetest.Migrated(t, sink.Options{})
}

// process is one archiver process's options: its host and pid, alive.
func process(name, host string, pid int) lease.Options {
	return lease.Options{Name: name, Host: host, PID: pid, Alive: func(int) bool { return true }}
}

func TestSecondArchiverIsRefusedAndNamesTheFirst(t *testing.T) {
	store := openStore(t)
	ctx := context.Background()
	first, err := lease.Acquire(ctx, store, process(lease.Name(""), "host-a", 101))
	if err != nil {
		t.Fatal(err)
	}
	_, err = lease.Acquire(ctx, store, process(lease.Name(""), "host-b", 202))
	var held *lease.HeldError
	if !errors.As(err, &held) {
		t.Fatalf("second archiver: %v, want a refusal", err)
	}
	for _, want := range []string{"host host-a", "pid 101", "since "} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("refusal %q does not say %q", err, want)
		}
	}
	// The refused one left no live row: the first renews alone, and once
	// it lets go the second may start.
	if err := first.Renew(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := lease.Acquire(ctx, store, process(lease.Name(""), "host-b", 202)); err == nil {
		t.Fatal("second archiver started beside a renewed lease")
	}
	if err := first.Release(ctx); err != nil {
		t.Fatal(err)
	}
	second, err := lease.Acquire(ctx, store, process(lease.Name(""), "host-b", 202))
	if err != nil {
		t.Fatalf("after the first released: %v", err)
	}
	_ = second.Release(ctx)
}

func TestShardsHoldTheirOwnLeases(t *testing.T) {
	store := openStore(t)
	ctx := context.Background()
	for i, shard := range []string{"1/3", "2/3", "3/3"} {
		if _, err := lease.Acquire(ctx, store, process(lease.Name(shard), "host", 100+i)); err != nil {
			t.Errorf("shard %s: %v", shard, err)
		}
	}
	if _, err := lease.Acquire(ctx, store, process(lease.Name("2/3"), "other", 7)); err == nil {
		t.Error("a second process of shard 2/3 started")
	}
}

// lapse makes a holder's lease lapse on the server, as it does when the
// holder stops renewing.
func lapse(t *testing.T, store *sink.Store, name, holder, host string, pid int) {
	t.Helper()
	r := sink.LeaseRow{Lease: name, Holder: holder, Host: host, PID: uint32(pid), Since: time.Now().Add(-time.Hour),
		Version: uint64(time.Now().UnixNano())}
	if err := store.WriteLease(context.Background(), r, 0); err != nil {
		t.Fatal(err)
	}
}

func TestLapsedOrDeadHolderIsNoHolder(t *testing.T) {
	store := openStore(t)
	ctx := context.Background()
	first, err := lease.Acquire(ctx, store, process(lease.Name(""), "host-a", 101))
	if err != nil {
		t.Fatal(err)
	}
	lapse(t, store, lease.Name(""), first.Holder(), "host-a", 101)
	if _, err := lease.Acquire(ctx, store, process(lease.Name(""), "host-b", 202)); err != nil {
		t.Fatalf("beside a lapsed lease: %v", err)
	}

	// A killed holder on this host (its pid is gone, or is this process's
	// own, as in a restarted container) is no holder either.
	name := lease.Name("1/2")
	if _, err := lease.Acquire(ctx, store, process(name, "host-c", 1)); err != nil {
		t.Fatal(err)
	}
	dead := process(name, "host-c", 2)
	dead.Alive = func(pid int) bool { return pid != 1 }
	if _, err := lease.Acquire(ctx, store, dead); err != nil {
		t.Fatalf("after a killed process of this host: %v", err)
	}
	restarted := dead // the same pid as the holder just made
	if _, err := lease.Acquire(ctx, store, restarted); err != nil {
		t.Fatalf("restarted with the same pid: %v", err)
	}
}

// A holder that could not renew for longer than its TTL finds the lease
// taken and says so; one that finds it free takes it again.
func TestRenewAfterALapse(t *testing.T) {
	store := openStore(t)
	ctx := context.Background()
	now := time.Now()
	o := process(lease.Name(""), "host-a", 101)
	o.Now = func() time.Time { return now }
	first, err := lease.Acquire(ctx, store, o)
	if err != nil {
		t.Fatal(err)
	}
	lapse(t, store, lease.Name(""), first.Holder(), "host-a", 101)
	now = now.Add(time.Hour)
	if err := first.Renew(ctx); err != nil {
		t.Fatalf("renew after a lapse, nobody else: %v", err)
	}
	if _, err := lease.Acquire(ctx, store, process(lease.Name(""), "host-b", 202)); err == nil {
		t.Fatal("the renewed lease was taken")
	}
	lapse(t, store, lease.Name(""), first.Holder(), "host-a", 101)
	second, err := lease.Acquire(ctx, store, process(lease.Name(""), "host-b", 202))
	if err != nil {
		t.Fatal(err)
	}
	now = now.Add(time.Hour)
	if err := first.Renew(ctx); !errors.Is(err, lease.ErrLost) || !strings.Contains(err.Error(), "host-b") {
		t.Errorf("renew after the lease was taken: %v, want it lost to host-b", err)
	}
	_ = second.Release(ctx)
}
