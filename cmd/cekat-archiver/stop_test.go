package main

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cekat-archiver/cekat-archiver/sink/sinktest"
	"github.com/cekat-archiver/cekat-archiver/syncer"
	"github.com/cekat-archiver/cekat-archiver/syncer/cekatsim"
)

// TestSurvivesStopSignals is TestSurvivesSIGKILL with the signals a
// scheduler or an operator sends: each run gets SIGTERM or SIGINT at a
// random moment (during the backfill, then during incremental walks while
// messages keep arriving upstream), and must stop the way docs/operating.md says
// a stopped `sync --once` does: it writes what it has, prints its summary
// as stopped, records itself in sync_runs as stopped with its requests,
// and exits 0. One clean run then leaves the archive equal to the
// simulator's truth, with no gap.
func TestSurvivesStopSignals(t *testing.T) {
	chAddr := sinktest.Addr(t)
	if testing.Short() {
		t.Skip("builds the archiver and runs it some twenty times")
	}
	seed := crashSeed(t)
	began := time.Now()

	rig := newCrashRig(t, chAddr, seed)
	rng := rand.New(rand.NewPCG(uint64(seed), 0x5e7e))
	delay := func(lo, hi time.Duration) time.Duration {
		return lo + time.Duration(rng.Int64N(int64(hi-lo)))
	}
	signal := func() syscall.Signal {
		if rng.IntN(2) == 0 {
			return syscall.SIGTERM
		}
		return syscall.SIGINT
	}
	outcomes := map[string]int{}
	stopped := func(name string, lo, hi time.Duration) stopOutcome {
		before := rig.states()
		res := rig.signalledRun(name, delay(lo, hi), signal())
		out := rig.checkStopped(res)
		outcomes[out.kind]++
		if out.kind == stopStopped {
			t.Logf("  stopped: %d requests, %d new messages", out.requests, out.newMessages)
		}
		// A stop is as safe as a crash: the states claim nothing the
		// archive lacks.
		if walks, _ := rig.checkStatesBehindArchive(before); len(walks) > 0 {
			t.Logf("  left its walk from the top unfinished in %s", strings.Join(walks, "; "))
		}
		return out
	}

	// Phase 1: the first sync, the backfill of every conversation, stopped
	// again and again. The first runs may be stopped while they start.
	for i := range 10 {
		stopped(fmt.Sprintf("backfill %d", i+1), 100*time.Millisecond, 2500*time.Millisecond)
	}

	// Phase 2: one run to completion, then incremental walks several pages
	// deep while live traffic keeps adding messages at the top, stopped
	// again and again. The simulator's clock stays where it is, as in
	// TestSurvivesSIGKILL: the archiver runs on the wall clock.
	rig.cleanRun("complete after backfill")
	ids := rig.sim.ConversationIDs()
	add := func(conv string, n int) {
		rig.sim.AddMessages(conv, n)
		t.Logf("added %d messages to %s", n, conv)
	}
	add(ids[len(ids)-1], 300+rng.IntN(150))
	add(ids[len(ids)-3], 300+rng.IntN(150))
	rig.live.Store(true)
	// Ten runs, and up to ten more while fewer than 14 of all runs were
	// stopped mid-run: on a busy machine a start (a race build, the
	// migrations) can outlast the signal's delay.
	for i := 0; i < 10 || (outcomes[stopStopped] < 14 && i < 20); i++ {
		if i > 0 {
			add(ids[1+rng.IntN(len(ids)-1)], 200+rng.IntN(120))
			add(ids[1+rng.IntN(len(ids)-1)], 5+rng.IntN(40))
		}
		stopped(fmt.Sprintf("incremental %d", i+1), 400*time.Millisecond, 3000*time.Millisecond)
	}

	// Phase 3: nothing new arrives, one clean run.
	rig.live.Store(false)
	rig.cleanRun("final")
	rig.assertArchiveMatchesTruth()
	rig.assertNoGaps()

	t.Logf("outcomes: %v; %s in all", outcomes, time.Since(began).Round(time.Millisecond))
	if n := outcomes[stopStopped]; n < 14 {
		t.Errorf("only %d runs were stopped mid-run (outcomes %v): the signals do not land mid-run", n, outcomes)
	}
}

// TestRateLimitedRunsKeepWhatTheyPaidFor runs `sync --once` again and
// again against a simulator that allows 10 requests a minute, with the
// archiver configured for 10 a minute, each run stopped by SIGTERM at a
// deadline as a scheduler would: every run keeps the detail answers it paid
// for (list calls are extra), records its requests, and the archive grows
// with every run.
func TestRateLimitedRunsKeepWhatTheyPaidFor(t *testing.T) {
	chAddr := sinktest.Addr(t)
	if testing.Short() {
		t.Skip("runs the archiver for a minute and a half at 10 requests a minute")
	}
	// A CronJob would give each run minutes (two, say: about 12 requests);
	// 25 s (three or four requests) keeps the test short on this 2-core
	// machine and still leaves every run room for a detail call after its
	// list calls, even behind a 429 at its start.
	const deadline = 25 * time.Second
	const runs = 3
	seed := crashSeed(t)
	rig := newRig(t, chAddr, cekatsim.Options{
		Seed:  seed,
		Shape: cekatsim.ShapeReal,
		// One conversation: each run lists its top, then the gap its first
		// sync left, and spends the rest on details.
		MessageCounts: []int{250},
		Latency:       3 * time.Millisecond,
		RatePerMinute: 10,
		RetryAfter:    true,
		// No faults, no malformed records: every detail answered 200 is a
		// message to keep.
	},
		"CEKAT_ARCHIVER_API_RATE_LIMIT_PER_MINUTE=10",
		// Re-checks cost detail calls that write nothing when nothing
		// changed; the runs never get that far, and this makes sure.
		"CEKAT_ARCHIVER_SYNC_RECHECK_WINDOW=0",
	)

	var throttled int
	for i := range runs {
		before, archived := rig.sim.Counts(), rig.archivedMessages()
		res := rig.signalledRun(fmt.Sprintf("rate-limited %d", i+1), deadline, syscall.SIGTERM)
		after, now := rig.sim.Counts(), rig.archivedMessages()
		out := rig.checkStopped(res)
		if out.kind != stopStopped {
			t.Errorf("run %d was not stopped mid-run at its deadline: %s", i+1, out.kind)
			continue
		}
		details := after.Status(cekatsim.EndpointDetail, 200) - before.Status(cekatsim.EndpointDetail, 200)
		lists := after.Endpoint(cekatsim.EndpointList) - before.Endpoint(cekatsim.EndpointList)
		total := after.Total - before.Total
		throttled += after.RateLimited - before.RateLimited
		grew := now - archived
		t.Logf("  run %d: %d requests upstream (list %d, detail answered 200 %d, 429 %d), %d recorded in sync_runs; archive %d -> %d messages",
			i+1, total, lists, details, after.RateLimited-before.RateLimited, out.requests, archived, now)
		if grew <= 0 {
			t.Errorf("run %d: the archive did not grow (%d messages), with %d detail answers paid for", i+1, now, details)
		}
		// An answer in flight when the signal came may be lost with the
		// run's context; every other one is archived, and nothing is
		// archived that was not paid for.
		if grew > int64(details) || int64(details)-grew > 1 {
			t.Errorf("run %d paid for %d detail answers but archived %d messages", i+1, details, grew)
		}
		// The client counts a request cancelled by the stop; the simulator
		// may not have seen it.
		if d := int64(out.requests) - int64(total); d < 0 || d > 1 {
			t.Errorf("run %d: sync_runs records %d requests, the simulator saw %d", i+1, out.requests, total)
		}
		rig.checkStatesBehindArchive(nil)
	}
	// The limiter spaces requests a little under 10 a minute within a
	// process, and each new process follows the server's X-RateLimit-*
	// from its first answer on: only that first request goes blind.
	if throttled > runs {
		t.Errorf("%d requests were answered 429 over %d runs: the budget does not hold 10 a minute", throttled, runs)
	}
}

// What a process stopped by a signal did, as far as it can tell.
const (
	stopStopped  = "stopped mid-run"
	stopBefore   = "stopped before the run began"
	stopFinished = "finished before the signal"
	stopEarly    = "ended by the signal before its handler was in place"
)

type stopOutcome struct {
	kind        string
	requests    uint64 // as sync_runs records them (stopped runs)
	newMessages uint64
}

var (
	summaryHead     = regexp.MustCompile(`(?m)^sync run (\S+): (.*)$`)
	summaryRequests = regexp.MustCompile(`(?m)^  requests\s+(\d+)`)
)

// checkStopped requires a run sent SIGTERM or SIGINT to have ended the way
// docs/operating.md says: exit 0, the summary printed as stopped (or as ok, when
// the run had finished), and a sync_runs row saying stopped with the
// requests of the summary. Only a signal that came before the process
// could handle it may end it, and then it has said nothing yet.
func (rig *crashRig) checkStopped(res crashRun) stopOutcome {
	rig.t.Helper()
	switch {
	case res.killed:
		if strings.TrimSpace(res.output) != "" {
			rig.t.Errorf("run %s was ended by %s instead of stopping:\n%s", res.name, crashSignalName(res.signal), crashTail(res.output, 3000))
		}
		return stopOutcome{kind: stopEarly}
	case res.exitCode != 0:
		rig.t.Errorf("run %s exited %d after %s, want 0 (a stopped run is not a failure):\n%s",
			res.name, res.exitCode, crashSignalName(res.signal), crashTail(res.output, 3000))
		return stopOutcome{kind: fmt.Sprintf("exit %d", res.exitCode)}
	case strings.HasPrefix(res.stdout, "sync stopped before the run began: "):
		return stopOutcome{kind: stopBefore}
	}
	m := summaryHead.FindStringSubmatch(res.stdout)
	if m == nil {
		rig.t.Errorf("run %s printed no summary:\n%s", res.name, crashTail(res.output, 3000))
		return stopOutcome{kind: "no summary"}
	}
	runID, result := m[1], m[2]
	var printed uint64
	if r := summaryRequests.FindStringSubmatch(res.stdout); r != nil {
		printed, _ = strconv.ParseUint(r[1], 10, 64)
	} else {
		rig.t.Errorf("run %s: no request count in its summary:\n%s", res.name, res.stdout)
	}
	var row struct {
		result, err           string
		requests, newMessages uint64
	}
	if err := rig.store.Conn().QueryRow(context.Background(), "SELECT result, error, requests, new_messages FROM "+
		rig.store.TableName("sync_runs")+" FINAL WHERE run_id = ?", runID).Scan(&row.result, &row.err, &row.requests, &row.newMessages); err != nil {
		rig.t.Errorf("run %s: its sync_runs row %s: %v", res.name, runID, err)
		return stopOutcome{kind: "no sync_runs row"}
	}
	kind, want := stopFinished, "ok"
	if !strings.HasPrefix(result, "ok") {
		kind, want = stopStopped, "stopped"
		if !strings.HasPrefix(result, "stopped") {
			rig.t.Errorf("run %s: its summary says %q after %s, want stopped:\n%s", res.name, result, crashSignalName(res.signal), res.stdout)
		}
		if !strings.Contains(row.err, "signal received") {
			rig.t.Errorf("run %s: sync_runs says it stopped because %q, want the signal", res.name, row.err)
		}
	}
	if row.result != want {
		rig.t.Errorf("run %s: sync_runs says %q (%s), its summary %q", res.name, row.result, row.err, result)
	}
	if row.requests != printed {
		rig.t.Errorf("run %s: sync_runs records %d requests, its summary %d", res.name, row.requests, printed)
	}
	return stopOutcome{kind: kind, requests: row.requests, newMessages: row.newMessages}
}

// archivedMessages counts the messages archived, each once.
func (rig *crashRig) archivedMessages() int64 {
	rig.t.Helper()
	ctx := context.Background()
	var n uint64
	if err := rig.store.Conn().QueryRow(ctx, "SELECT count() FROM system.tables WHERE database = ? AND name = 'messages'",
		rig.store.Database()).Scan(&n); err != nil {
		rig.t.Fatalf("look up messages: %v", err)
	}
	if n == 0 {
		return 0 // before the first migration
	}
	if err := rig.store.Conn().QueryRow(ctx, "SELECT uniqExact(conversation_id, message_id) FROM "+
		rig.store.TableName("messages")).Scan(&n); err != nil {
		rig.t.Fatalf("count archived messages: %v", err)
	}
	return int64(n)
}

// A stopped run is printed as stopped, not as failed, and says why.
func TestSummaryOfAStoppedRun(t *testing.T) {
	var b bytes.Buffer
	printSummary(&b, syncer.Summary{RunID: "r1", Stopped: true, StoppedBy: "stopped: terminated signal received",
		Requests: map[string]int64{"detail": 3, "list": 2}})
	out := b.String()
	if !strings.HasPrefix(out, "sync run r1: stopped") || strings.Contains(out, "FAILED") {
		t.Errorf("summary of a stopped run:\n%s", out)
	}
	if r := summaryRequests.FindStringSubmatch(out); !strings.Contains(out, "terminated signal received") || r == nil || r[1] != "5" {
		t.Errorf("summary of a stopped run does not say why or what it asked:\n%s", out)
	}
}
