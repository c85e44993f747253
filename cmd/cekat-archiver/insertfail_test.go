package main

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cekat-archiver/cekat-archiver/syncer/cekatsim"
)

// TestFailedInsertCostsNoAPICall cuts ClickHouse off in the middle of a
// first sync (through a proxy, while INSERTs are open and detail calls in
// flight), then lets a second run go to the end with ClickHouse back: the
// detail calls of the two runs together equal the messages archived (none
// paid twice: what the first run was given waited in its spool), and the
// archive is exactly the simulator's truth, with no gap left.
func TestFailedInsertCostsNoAPICall(t *testing.T) {
	// The interval ends the open INSERT while detail calls are in flight.
	rig, proxy := newCutRig(t, 13, []int{1, 250, 900, 1800, 2600}, "1s")
	total := len(rig.sim.Truth())
	var details atomic.Int64
	cutAt := int64(total * 2 / 5)
	hook := func(r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/messages/") && details.Add(1) == cutAt {
			proxy.Cut() // before this call is answered: its row cannot be stored through the proxy
		}
	}
	rig.onRequest.Store(&hook)

	first := rig.signalledRun("cut off", time.Hour, 0) // no signal: it ends by itself
	if first.exitCode == 0 {
		t.Fatalf("the run whose ClickHouse was cut off succeeded:\n%s", crashTail(first.output, 3000))
	}
	paid := rig.sim.Counts().Status(cekatsim.EndpointDetail, http.StatusOK)
	stored := len(rig.storedMessages())
	spooled, _ := filepath.Glob(filepath.Join(rig.dir, "spool", "*", "*.spool"))
	t.Logf("first run: %d of %d messages enriched, %d stored, spool %v", paid, total, stored, spooled)
	if paid <= stored {
		t.Fatalf("the cut left nothing paid for unstored (%d enriched, %d stored): it came too late to test anything", paid, stored)
	}
	if len(spooled) != 1 || fileSize(t, spooled[0]) == 0 {
		t.Fatalf("spool after the failed run: %v, want one file holding the unstored rows", spooled)
	}

	proxy.Restore()
	rig.cleanRun("ClickHouse back")
	if spooled, _ := filepath.Glob(filepath.Join(rig.dir, "spool", "*", "*.spool")); len(spooled) != 0 {
		t.Errorf("spool files left after a clean run: %v", spooled)
	}
	counts := rig.sim.Counts()
	archived := len(rig.storedMessages())
	if got := counts.Endpoint(cekatsim.EndpointDetail); got != archived {
		t.Errorf("%d detail calls over both runs for %d messages archived: %d paid twice", got, archived, got-archived)
	}
	// The first run's row was written ahead of its requests, before the
	// cut: the daily budget counts every request of both runs.
	var recorded uint64
	if err := rig.store.Conn().QueryRow(context.Background(), "SELECT sum(requests) FROM "+rig.store.TableName("sync_runs")+" FINAL").
		Scan(&recorded); err != nil {
		t.Fatal(err)
	}
	if int(recorded) < counts.Total {
		t.Errorf("sync_runs records %d requests; the API received %d", recorded, counts.Total)
	}
	rig.assertArchiveMatchesTruth()
	rig.assertNoGaps()
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// storedMessages are the distinct messages in the archive.
func (rig *crashRig) storedMessages() map[string]bool {
	rig.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rows, err := rig.store.Conn().Query(ctx, "SELECT DISTINCT conversation_id, message_id FROM "+rig.store.TableName("messages"))
	if err != nil {
		if strings.Contains(err.Error(), "doesn't exist") {
			return nil
		}
		rig.t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var conv, id string
		if err := rows.Scan(&conv, &id); err != nil {
			rig.t.Fatal(err)
		}
		out[conv+"/"+id] = true
	}
	if err := rows.Err(); err != nil {
		rig.t.Fatal(err)
	}
	return out
}
