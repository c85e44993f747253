package main

import (
	"testing"
	"time"

	"github.com/cekat-archiver/cekat-archiver/sink/sinktest"
	"github.com/cekat-archiver/cekat-archiver/syncer/cekatsim"
)

// newCutRig is a rig whose archiver reaches ClickHouse through a proxy the
// test cuts, on a simulator that answers as the real API does. One INSERT
// stays open across many blocks (ended by batchInterval), and re-checks
// are off: every detail call is an enrichment, so a call paid twice shows.
// It needs ClickHouse, and skips under -short (it builds the archiver).
func newCutRig(t *testing.T, seed int64, counts []int, batchInterval string) (*crashRig, *sinktest.Proxy) {
	t.Helper()
	chAddr := sinktest.Addr(t)
	if testing.Short() {
		t.Skip("builds the archiver and runs it more than once")
	}
	proxy := sinktest.NewProxy(t, chAddr)
	rig := newRig(t, chAddr, cekatsim.Options{Seed: seed, Shape: cekatsim.ShapeReal, MessageCounts: counts, Latency: time.Millisecond},
		"CEKAT_ARCHIVER_CLICKHOUSE_ADDR="+proxy.Addr(),
		"CEKAT_ARCHIVER_SYNC_BATCH_ROWS=50000",
		"CEKAT_ARCHIVER_SYNC_BATCH_INTERVAL="+batchInterval,
		"CEKAT_ARCHIVER_SYNC_RECHECK_WINDOW=0s",
	)
	return rig, proxy
}
