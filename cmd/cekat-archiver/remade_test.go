package main

import (
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cekat-archiver/cekat-archiver/sink/sinktest"
)

// TestSpoolReplayedIntoARemadeDatabaseLeavesNoHole is the reproduced hole,
// with the binary: a first sync; new messages upstream; a `sync --once`
// during which ClickHouse goes away (cut before its first detail call is
// answered), which fails and leaves a spool of rows and the states queued
// behind them; the database dropped and made again by `migrate`; one
// `sync --once --all`, which replays the spool. The states say that rows
// the old database held are archived: applied to the new one, the walks
// would stop at their heads. The archive must end equal to the truth.
func TestSpoolReplayedIntoARemadeDatabaseLeavesNoHole(t *testing.T) {
	rig, proxy := newCutRig(t, 31, []int{200, 120, 60, 30}, "1h")
	rig.cleanRun("first sync")
	for _, conv := range rig.sim.ConversationIDs() {
		rig.sim.AddMessages(conv, 6)
	}
	var cut atomic.Bool
	hook := func(r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/messages/") && cut.CompareAndSwap(false, true) {
			proxy.Cut()
		}
	}
	rig.onRequest.Store(&hook)
	if res := rig.signalledRun("ClickHouse away", time.Hour, 0); res.exitCode == 0 {
		t.Fatalf("the run whose ClickHouse went away succeeded:\n%s", crashTail(res.output, 3000))
	}
	rig.onRequest.Store(nil)
	spooled, _ := filepath.Glob(filepath.Join(rig.dir, "spool", "*", "*.spool"))
	if len(spooled) != 1 {
		t.Fatalf("spool after the failed run: %v, want one file", spooled)
	}
	proxy.Restore()

	if err := sinktest.Conn(t).Exec(t.Context(), "DROP DATABASE `"+rig.store.Database()+"`"); err != nil {
		t.Fatal(err)
	}
	if out, err := rig.command("migrate"); err != nil {
		t.Fatalf("migrate: %v\n%s", err, crashTail(out, 3000))
	}
	if out, err := rig.command("sync", "--once", "--all", "--progress=none"); err != nil {
		t.Fatalf("sync --once --all: %v\n%s", err, crashTail(out, 3000))
	} else if !strings.Contains(out, "written for another archive") {
		t.Errorf("the replay did not say the spool was another archive's:\n%s", crashTail(out, 3000))
	}
	rig.assertArchiveMatchesTruth()
}
