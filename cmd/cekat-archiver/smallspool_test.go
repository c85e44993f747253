package main

import (
	"testing"
	"time"

	"github.com/cekat-archiver/cekat-archiver/sink/sinktest"
	"github.com/cekat-archiver/cekat-archiver/syncer/cekatsim"
)

// TestSmallestSpoolPaysNoCallTwice: with sync.spool_max_bytes at its
// smallest allowed value (1 MiB), INSERTs that rows and time would keep
// open far longer, and a healthy ClickHouse, a sync of some MiB of
// messages goes to the end: the archiver ends its INSERT before the spool
// would pass its bound, so no run fails on a full spool and no detail is
// paid twice. Prints the figure.
func TestSmallestSpoolPaysNoCallTwice(t *testing.T) {
	chAddr := sinktest.Addr(t)
	if testing.Short() {
		t.Skip("builds the archiver and runs it")
	}
	rig := newRig(t, chAddr, cekatsim.Options{
		Seed:          29,
		Shape:         cekatsim.ShapeReal,
		MessageCounts: []int{300, 900, 1600},
		Latency:       time.Millisecond,
	},
		"CEKAT_ARCHIVER_SYNC_SPOOL_MAX_BYTES=1048576",
		"CEKAT_ARCHIVER_SYNC_BATCH_ROWS=1000000",
		"CEKAT_ARCHIVER_SYNC_BATCH_INTERVAL=1h",
		// Every detail call is then an enrichment: re-checks would be
		// calls paid again on purpose.
		"CEKAT_ARCHIVER_SYNC_RECHECK_WINDOW=0s",
	)
	rig.cleanRun("1 MiB spool")
	rig.cleanRun("again")
	archived := len(rig.storedMessages())
	details := rig.sim.Counts().Endpoint(cekatsim.EndpointDetail)
	t.Logf("figure: spool_max_bytes 1 MiB, healthy ClickHouse: %d messages archived, %d detail calls, %d paid twice",
		archived, details, details-archived)
	if details != archived {
		t.Errorf("%d detail calls for %d messages archived: %d paid twice", details, archived, details-archived)
	}
	rig.assertArchiveMatchesTruth()
	rig.assertNoGaps()
}
