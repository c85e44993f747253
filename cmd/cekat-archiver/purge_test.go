package main

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cekat-archiver/cekat-archiver/sink"
	"github.com/cekat-archiver/cekat-archiver/sink/sinktest"
	"github.com/cekat-archiver/cekat-archiver/syncer/cekatsim"
)

// purgeRetention is the retention of these tests: the simulator's
// conversations end from a minute to 60 days before the wall clock.
const purgeRetention = 10 * 24 * time.Hour

// oldConversations are the simulator's conversations with messages whose
// newest message is past purgeRetention, sorted.
func oldConversations(t *testing.T, sim *cekatsim.Server) (old, recent []string) {
	t.Helper()
	newest := map[string]time.Time{}
	for _, m := range sim.Truth() {
		if m.Timestamp.After(newest[m.ConversationID]) {
			newest[m.ConversationID] = m.Timestamp
		}
	}
	cutoff := time.Now().Add(-purgeRetention)
	for id, ts := range newest {
		switch {
		case ts.Before(cutoff.Add(-time.Hour)):
			old = append(old, id)
		case ts.After(cutoff.Add(time.Hour)):
			recent = append(recent, id)
		}
	}
	sort.Strings(old)
	sort.Strings(recent)
	if len(old) < 4 || len(recent) < 2 {
		t.Fatalf("the simulator gives %d conversations past retention and %d recent; the test needs 4 and 2", len(old), len(recent))
	}
	return old, recent
}

// The commands in process: purge needs retention.enabled or --dry-run; a
// dry run deletes nothing; a purge deletes the old conversations, status
// shows them purged; erase needs --yes, then leaves no row.
func TestPurgeAndEraseCommands(t *testing.T) {
	chAddr := sinktest.Addr(t)
	sim, err := cekatsim.New(cekatsim.Options{Seed: 4, MessageCounts: []int{2, 3, 5, 1, 4, 2, 6, 3, 2, 4, 3, 5},
		Start: time.Now().UTC().Truncate(time.Second), APIKey: "k"})
	if err != nil {
		t.Fatal(err)
	}
	api := httptest.NewServer(sim.Handler())
	t.Cleanup(api.Close)
	bo := httptest.NewServer(sim.BackofficeHandler())
	t.Cleanup(bo.Close)
	old, recent := oldConversations(t, sim)
	env := []string{
		"CEKAT_ARCHIVER_API_BASE_URL", api.URL, "CEKAT_ARCHIVER_API_KEY", "k",
		"CEKAT_ARCHIVER_API_BACKOFFICE_URL", bo.URL, "CEKAT_ARCHIVER_API_BACKOFFICE_TOKEN", cekatsim.DefaultBackofficeToken,
		"CEKAT_ARCHIVER_API_BACKOFFICE_AUTH", "bearer",
		"CEKAT_ARCHIVER_API_RATE_LIMIT_PER_MINUTE", "1000000", "CEKAT_ARCHIVER_API_RATE_LIMIT_PER_DAY", "0",
		"CEKAT_ARCHIVER_CLICKHOUSE_ADDR", chAddr, "CEKAT_ARCHIVER_CLICKHOUSE_DATABASE", sinktest.DatabaseName(t),
		"CEKAT_ARCHIVER_CONVERSATIONS_IDS", strings.Join(sim.ConversationIDs(), ","),
		"CEKAT_ARCHIVER_RETENTION_PURGE_AFTER", purgeRetention.String(), "CEKAT_ARCHIVER_LOG_LEVEL", "warn",
	}
	cli := func(wantCode int, extraEnv []string, args ...string) string {
		t.Helper()
		cliEnv(t, append(slices.Clone(env), extraEnv...)...)
		var out, errOut bytes.Buffer
		if code := run(args, &out, &errOut); code != wantCode {
			t.Fatalf("%s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, wantCode, out.String(), errOut.String())
		}
		return out.String() + errOut.String()
	}
	has := func(out string, want ...string) {
		t.Helper()
		for _, w := range want {
			if !strings.Contains(out, w) {
				t.Errorf("output lacks %q:\n%s", w, out)
			}
		}
	}
	enabled := []string{"CEKAT_ARCHIVER_RETENTION_ENABLED", "true"}

	// config check reports a purge without the backoffice.
	has(cli(1, []string{"CEKAT_ARCHIVER_RETENTION_ENABLED", "true", "CEKAT_ARCHIVER_API_BACKOFFICE_URL", ""}, "config", "check"),
		"api.backoffice_url: must be set when retention.enabled is true")
	cli(0, nil, "sync", "--once", "--progress=none")
	has(cli(1, nil, "purge"), "retention.enabled is false")
	// Dry runs: with the policy off and --dry-run, and with the policy on
	// (dry_run is its default).
	has(cli(0, nil, "purge", "--dry-run"), "(dry run: nothing deleted): ok", fmt.Sprintf("would delete    %d", len(old)), old[0])
	has(cli(0, enabled, "purge", "--reason", "first look"), "(dry run: nothing deleted)", "would delete")
	if d := sim.Deletions(); len(d) != 0 {
		t.Fatalf("dry runs deleted upstream: %+v", d)
	}
	out := cli(0, append(slices.Clone(enabled), "CEKAT_ARCHIVER_RETENTION_DRY_RUN", "false"), "purge", "--operator", "ops@test")
	has(out, ": ok", fmt.Sprintf("deleted         %d", len(old)))
	var deleted []string
	for _, d := range sim.Deletions() {
		deleted = append(deleted, d.Deleted...)
	}
	sort.Strings(deleted)
	if !slices.Equal(deleted, old) {
		t.Errorf("deleted upstream %v, want %v", deleted, old)
	}
	has(cli(0, nil, "status"), "purged 20")

	// erase: a preview without --yes exits non-zero and changes nothing.
	target := recent[0]
	has(cli(1, nil, "erase", "--conversation", target), "would erase", "nothing erased: add --yes")
	has(cli(0, nil, "erase", "--conversation", target, "--yes", "--reason", "DSR-7"), "erased, verified: no row left",
		"remove from conversations.ids")
	has(cli(1, nil, "erase"), "name what to erase")
}

// The purge binary killed with SIGKILL at random moments, then run to the
// end: the audit table holds, for every conversation the simulator's log
// says was deleted, one intent and one outcome "deleted" under the same
// run, no intent is left unconfirmed, nothing was asked for again once
// deleted, every deleted conversation is marked purged and keeps its
// archived messages, and no other was touched.
func TestPurgeSurvivesSIGKILL(t *testing.T) {
	chAddr := sinktest.Addr(t)
	if testing.Short() {
		t.Skip("builds the archiver and kills its purge a dozen times")
	}
	seed := crashSeed(t)
	began := time.Now()
	counts := make([]int, 40)
	rng := rand.New(rand.NewPCG(uint64(seed), 0x9e7))
	for i := range counts {
		counts[i] = 1 + rng.IntN(6)
	}
	// The backoffice answers slowly, so that a purge lasts long enough for
	// kills to land between its intents and its outcomes; it says when a
	// delete call arrives, so that some kills follow the purge's progress
	// rather than the clock (a purge of few conversations can be over
	// before a kill timed from its start lands).
	var sim atomic.Pointer[cekatsim.Server]
	deleting := make(chan struct{}, 1)
	bo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case deleting <- struct{}{}:
		default:
		}
		time.Sleep(250 * time.Millisecond)
		sim.Load().BackofficeHandler().ServeHTTP(w, r)
	}))
	t.Cleanup(bo.Close)
	rig := newRig(t, chAddr, cekatsim.Options{Seed: seed, MessageCounts: counts, Latency: 5 * time.Millisecond},
		"CEKAT_ARCHIVER_API_BACKOFFICE_URL="+bo.URL, "CEKAT_ARCHIVER_API_BACKOFFICE_TOKEN="+cekatsim.DefaultBackofficeToken,
		"CEKAT_ARCHIVER_API_BACKOFFICE_AUTH=bearer",
		"CEKAT_ARCHIVER_RETENTION_ENABLED=true", "CEKAT_ARCHIVER_RETENTION_DRY_RUN=false",
		"CEKAT_ARCHIVER_RETENTION_PURGE_AFTER="+purgeRetention.String(), "CEKAT_ARCHIVER_RETENTION_BATCH_SIZE=2")
	sim.Store(rig.sim)
	rig.cleanRun("sync")
	old, recent := oldConversations(t, rig.sim)
	archivedBefore := rig.messagesByConversation()
	newest := map[string]time.Time{} // before anything is deleted upstream
	for _, m := range rig.sim.Truth() {
		if m.Timestamp.After(newest[m.ConversationID]) {
			newest[m.ConversationID] = m.Timestamp
		}
	}

	// purgeRun runs a purge and kills it kill after it started or, with
	// afterCall, kill after its first delete call arrived; kill 0: never.
	purgeRun := func(name string, kill time.Duration, afterCall bool) (killed bool, out string) {
		t.Helper()
		select {
		case <-deleting: // left by an earlier purge
		default:
		}
		var stdout, stderr bytes.Buffer
		cmd := exec.Command(rig.bin, "purge", "--operator", "crash-test")
		cmd.Env, cmd.Dir, cmd.Stdout, cmd.Stderr = rig.env, rig.dir, &stdout, &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		var fire <-chan time.Time // the kill, once armed
		arm := deleting
		if kill <= 0 {
			arm = nil
		} else if !afterCall {
			fire, arm = time.After(kill), nil
		}
		giveUp := time.After(2 * time.Minute)
	wait:
		for {
			select {
			case <-done:
				break wait
			case <-arm:
				fire, arm = time.After(kill), nil
			case <-fire:
				_ = cmd.Process.Signal(syscall.SIGKILL)
				<-done
				break wait
			case <-giveUp:
				_ = cmd.Process.Signal(syscall.SIGKILL)
				<-done
				t.Fatalf("purge %s did not finish in two minutes:\n%s", name, crashTail(stderr.String()+stdout.String(), 4000))
			}
		}
		ws := cmd.ProcessState.Sys().(syscall.WaitStatus)
		out = stderr.String() + stdout.String()
		if strings.Contains(out, "WARNING: DATA RACE") {
			t.Errorf("purge %s: the race detector found a data race:\n%s", name, crashTail(out, 6000))
		}
		return ws.Signaled() && ws.Signal() == syscall.SIGKILL, out
	}

	killed, midway := 0, 0
	for i := 0; i < 12; i++ {
		before := len(rig.deletedUpstream())
		if before == len(old) {
			break
		}
		// Every other kill, the first among them, follows the first delete call, by up to two
		// calls' time: between an intent and its outcome, or between batches.
		afterCall := i%2 == 0
		delay := 500*time.Millisecond + time.Duration(rng.Int64N(int64(2000*time.Millisecond)))
		if afterCall {
			delay = time.Millisecond + time.Duration(rng.Int64N(int64(500*time.Millisecond)))
		}
		k, out := purgeRun(fmt.Sprintf("killed %d", i+1), delay, afterCall)
		after := len(rig.deletedUpstream())
		pending := len(rig.unresolvedIntents())
		t.Logf("purge killed %-3d delay %5s (after the first delete call: %v): killed %v, deleted upstream %d -> %d, intents without outcome %d",
			i+1, delay.Round(time.Millisecond), afterCall, k, before, after, pending)
		if !k && !strings.Contains(out, ": ok") {
			t.Fatalf("purge %d finished but failed:\n%s", i+1, crashTail(out, 4000))
		}
		if k {
			killed++
			if pending > 0 || (after > before && after < len(old)) {
				midway++
			}
		}
	}
	if _, out := purgeRun("final", 0, false); !strings.Contains(out, ": ok") {
		t.Fatalf("final purge failed:\n%s", crashTail(out, 4000))
	}
	if _, out := purgeRun("again", 0, false); !strings.Contains(out, "deleted         0") {
		t.Errorf("a purge after the final one deleted more:\n%s", crashTail(out, 4000))
	}

	// The simulator's log against the audit.
	// Every conversation past retention was deleted, and only those: one
	// within an hour of the cutoff when the test began may have crossed it
	// since (the cutoff follows the wall clock), so each deletion is checked
	// against the cutoff now.
	deleted := rig.deletedUpstream()
	for _, id := range old {
		if !slices.Contains(deleted, id) {
			t.Errorf("%s is past retention but was not deleted (deleted %v)", id, deleted)
		}
	}
	cutoff := time.Now().Add(-purgeRetention)
	for _, id := range deleted {
		if !newest[id].Before(cutoff) {
			t.Errorf("%s deleted upstream, but its newest message (%v) is not past retention (cutoff %v)", id, newest[id], cutoff)
		}
	}
	if n := rig.askedWhenGone(); n != 0 {
		t.Errorf("%d delete requests named a conversation already deleted", n)
	}
	if pending := rig.unresolvedIntents(); len(pending) != 0 {
		t.Errorf("intents left without outcome: %+v", pending)
	}
	rows, err := rig.archive.AuditRows(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	intents := map[string]time.Time{}  // run/conversation
	deletedIn := map[string][]string{} // conversation -> runs
	for _, r := range rows {
		if r.Action != sink.AuditPurge {
			continue
		}
		switch r.Event {
		case sink.EventIntent:
			intents[r.RunID+"/"+r.ConversationID] = r.At
		case sink.EventDeleted:
			deletedIn[r.ConversationID] = append(deletedIn[r.ConversationID], r.RunID)
		case sink.EventGone:
			t.Errorf("%s recorded as gone: nothing but the purge deletes here", r.ConversationID)
		}
	}
	var audited []string
	for conv, runs := range deletedIn {
		audited = append(audited, conv)
		if len(runs) != 1 {
			t.Errorf("%s: %d deleted outcomes (runs %v), want 1", conv, len(runs), runs)
		}
		for _, run := range runs {
			if _, ok := intents[run+"/"+conv]; !ok {
				t.Errorf("%s: deleted in run %s without an intent of that run", conv, run)
			}
		}
	}
	sort.Strings(audited)
	if !slices.Equal(audited, deleted) {
		t.Errorf("audited as deleted %v, deleted upstream %v", audited, deleted)
	}
	states := rig.states()
	after := rig.messagesByConversation()
	for _, id := range old {
		if states[id].PurgedAt.IsZero() {
			t.Errorf("%s deleted but not marked purged", id)
		}
		if after[id] != archivedBefore[id] || after[id] == 0 {
			t.Errorf("%s: %d messages archived before the purge, %d after", id, archivedBefore[id], after[id])
		}
	}
	for _, id := range recent {
		if !states[id].PurgedAt.IsZero() || slices.Contains(deleted, id) {
			t.Errorf("recent conversation %s purged", id)
		}
	}
	t.Logf("%d purges killed, %d of them between an intent and its outcome or part-way through; %s in all",
		killed, midway, time.Since(began).Round(time.Millisecond))
	if killed > 0 && midway == 0 {
		t.Errorf("no kill landed in the middle of a purge")
	}
}

func (rig *crashRig) deletedUpstream() []string {
	var out []string
	for _, d := range rig.sim.Deletions() {
		out = append(out, d.Deleted...)
	}
	sort.Strings(out)
	return out
}

func (rig *crashRig) askedWhenGone() int {
	gone := map[string]bool{}
	n := 0
	for _, d := range rig.sim.Deletions() {
		for _, id := range d.Asked {
			if gone[id] {
				n++
			}
		}
		for _, id := range d.Deleted {
			gone[id] = true
		}
	}
	return n
}

func (rig *crashRig) unresolvedIntents() []sink.AuditRow {
	rig.t.Helper()
	rows, err := rig.archive.UnresolvedIntents(context.Background(), sink.AuditPurge)
	if err != nil && !strings.Contains(err.Error(), "doesn't exist") {
		rig.t.Fatal(err)
	}
	return rows
}

func (rig *crashRig) messagesByConversation() map[string]uint64 {
	rig.t.Helper()
	sums, err := rig.archive.ConversationSummaries(context.Background(), rig.sim.ConversationIDs(), time.Time{})
	if err != nil {
		rig.t.Fatal(err)
	}
	out := map[string]uint64{}
	for _, s := range sums {
		out[s.ConversationID] = s.Archived
	}
	return out
}
