package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/cekat-archiver/cekat-archiver/sink/sinktest"
	"github.com/cekat-archiver/cekat-archiver/syncer"
)

// TestKilledRunsCountEveryRequest SIGKILLs `sync --once` eight times at
// random moments and then compares the requests the simulator received
// with what sync_runs records, which the daily budget reads: none may be
// missing, and the excess is bounded by the step each run records ahead.
func TestKilledRunsCountEveryRequest(t *testing.T) {
	chAddr := sinktest.Addr(t)
	if testing.Short() {
		t.Skip("builds the archiver and runs it nine times")
	}
	seed := crashSeed(t)
	rig := newCrashRig(t, chAddr, seed)
	rng := rand.New(rand.NewPCG(uint64(seed), 0xc0c0))
	killed := 0
	for i := range 8 {
		delay := 300*time.Millisecond + time.Duration(rng.Int64N(int64(2500*time.Millisecond)))
		if res := rig.killedRun(fmt.Sprintf("counted %d", i+1), delay); res.killed {
			killed++
		}
	}
	rig.cleanRun("final")

	served := rig.sim.Counts().Total
	var recorded uint64
	var runs, running uint64
	if err := rig.store.Conn().QueryRow(context.Background(), "SELECT sum(requests), count(), countIf(result = 'running') FROM "+
		rig.store.TableName("sync_runs")+" FINAL").Scan(&recorded, &runs, &running); err != nil {
		t.Fatal(err)
	}
	missing := max(0, served-int(recorded))
	t.Logf("%d runs killed, %d rows (%d left running); the simulator received %d requests, sync_runs records %d: %d missing, %d counted ahead",
		killed, runs, running, served, recorded, missing, max(0, int(recorded)-served))
	if missing > 0 {
		t.Errorf("%d requests the API received are missing from sync_runs", missing)
	}
	if over := int(recorded) - served; over > int(running)*syncer.DefaultRequestStep {
		t.Errorf("sync_runs records %d requests more than were made; at most %d (a step for each of %d killed runs)",
			over, int(running)*syncer.DefaultRequestStep, running)
	}
	if killed < 4 {
		t.Errorf("only %d of 8 runs were killed before they finished", killed)
	}
}
