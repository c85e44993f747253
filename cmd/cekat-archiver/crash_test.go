package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/cekat-archiver/cekat-archiver/sink"
	"github.com/cekat-archiver/cekat-archiver/sink/sinktest"
	"github.com/cekat-archiver/cekat-archiver/syncer/cekatsim"
)

// crashSeedEnv replays TestSurvivesSIGKILL with the seed a failed run logged.
const crashSeedEnv = "CEKAT_ARCHIVER_TEST_CRASH_SEED"

// crashMessageCounts mixes empty, one-page, page-boundary and multi-page
// conversations with one of a few thousand messages.
var crashMessageCounts = []int{0, 1, 40, 100, 101, 260, 520, 2000}

// TestSurvivesSIGKILL runs the archiver binary many times against the
// simulator, killing each run with SIGKILL at a random moment (during the
// backfill, then during incremental walks several pages deep while new
// messages arrive upstream), then runs it once to completion and requires
// the archive to hold exactly the upstream's messages, with their current
// statuses and times, and no gap left in any conversation's state.
func TestSurvivesSIGKILL(t *testing.T) {
	chAddr := sinktest.Addr(t)
	if testing.Short() {
		t.Skip("builds the archiver and runs it some twenty times")
	}
	seed := crashSeed(t)
	began := time.Now()

	rig := newCrashRig(t, chAddr, seed)
	rng := rand.New(rand.NewPCG(uint64(seed), 0x5191))
	delay := func(lo, hi time.Duration) time.Duration {
		return lo + time.Duration(rng.Int64N(int64(hi-lo)))
	}

	// Phase 1: the first sync, the backfill of every conversation, killed
	// again and again.
	for i := range 10 {
		if res := rig.killedRun(fmt.Sprintf("backfill %d", i+1), delay(150*time.Millisecond, 2200*time.Millisecond)); res.killed {
			rig.checkStatesBehindArchive(nil)
		}
	}

	// Phase 2: one run to completion, then incremental walks several pages
	// deep (hundreds of new messages in a couple of conversations before
	// each run) while live traffic keeps adding messages at the top and
	// statuses move on, killed again and again.
	rig.cleanRun("complete after backfill")
	ids := rig.sim.ConversationIDs()
	add := func(conv string, n int) {
		rig.sim.AddMessages(conv, n)
		t.Logf("added %d messages to %s", n, conv)
	}
	add(ids[len(ids)-1], 300+rng.IntN(150))
	add(ids[len(ids)-3], 300+rng.IntN(150))
	rig.live.Store(true)
	gapRuns, deepest := 0, 0
	// Ten runs, and up to ten more while no kill has landed inside a walk
	// from the top several pages deep: the delays are random, and so is
	// how long a run takes on a busy machine.
	for i := 0; i < 10 || (gapRuns == 0 && i < 20); i++ {
		if i > 0 {
			add(ids[1+rng.IntN(len(ids)-1)], 200+rng.IntN(120))
			add(ids[1+rng.IntN(len(ids)-1)], 5+rng.IntN(40))
		}
		before := rig.states()
		res := rig.killedRun(fmt.Sprintf("incremental %d", i+1), delay(500*time.Millisecond, 3000*time.Millisecond))
		if !res.killed {
			continue
		}
		// A walk from the top that this run left unfinished proves the
		// kill landed inside a multi-page walk.
		if walks, depth := rig.checkStatesBehindArchive(before); len(walks) > 0 {
			gapRuns++
			deepest = max(deepest, depth)
			t.Logf("  left its walk from the top unfinished in %s", strings.Join(walks, "; "))
		}
	}

	// Phase 3: nothing new arrives, one clean run. The simulator's clock
	// stays where it is: the archiver runs on the wall clock, so statuses
	// moving on the simulator's clock would wait for their re-check
	// schedule (tested on one shared clock in package syncer).
	rig.live.Store(false)
	rig.cleanRun("final")

	rig.assertArchiveMatchesTruth()
	rig.assertNoGaps()

	killed, finished := 0, 0
	for _, r := range rig.results {
		switch {
		case !r.attempted:
		case r.killed:
			killed++
		default:
			finished++
		}
	}
	t.Logf("%d runs SIGKILLed before they finished, %d finished before their kill; %d killed incremental runs left their walk from the top unfinished, the deepest %d messages down; %s in all",
		killed, finished, gapRuns, deepest, time.Since(began).Round(time.Millisecond))
	if killed < 15 || killed < 3*(killed+finished)/4 {
		t.Errorf("only %d of %d runs were killed before they finished: the kills do not land mid-run", killed, killed+finished)
	}
	if gapRuns == 0 {
		t.Errorf("no killed incremental run left its walk from the top unfinished in sync_state: no kill landed inside a multi-page walk")
	}
}

// crashSeed is a new seed, or the one crashSeedEnv names to replay a
// failed run of TestSurvivesSIGKILL or TestSurvivesStopSignals.
func crashSeed(t *testing.T) int64 {
	t.Helper()
	seed := time.Now().UnixNano()
	if s := os.Getenv(crashSeedEnv); s != "" {
		var err error
		if seed, err = strconv.ParseInt(s, 10, 64); err != nil {
			t.Fatalf("%s=%q: %v", crashSeedEnv, s, err)
		}
	}
	t.Logf("seed %d (replay with %s=%d)", seed, crashSeedEnv, seed)
	return seed
}

// crashRig is the simulator over HTTP, the archiver binary and a
// throwaway archive database; the tests that stop or kill
// `sync --once` at random moments share it.
type crashRig struct {
	t       *testing.T
	bin     string
	dir     string
	env     []string
	sim     *cekatsim.Server
	store   *sink.Store
	archive *sink.Archive
	live    atomic.Bool // add live traffic before list requests
	// onRequest, when set, sees every API request before the simulator.
	onRequest atomic.Pointer[func(*http.Request)]
	results   []crashRun
}

// crashRun is one subprocess run.
type crashRun struct {
	name      string
	attempted bool // a signal was planned
	delay     time.Duration
	signal    syscall.Signal // the signal planned
	sent      bool           // the signal was sent before the run finished
	killed    bool           // the signal itself ended the process (SIGKILL, or a stop signal before the handler was in place)
	exitCode  int
	elapsed   time.Duration
	output    string // stderr, then stdout
	stdout    string
}

// newCrashRig is the rig of TestSurvivesSIGKILL: a simulator with faults,
// malformed records and conversations from empty to a few thousand
// messages, and an archiver without a rate limit.
func newCrashRig(t *testing.T, chAddr string, seed int64) *crashRig {
	t.Helper()
	return newRig(t, chAddr, cekatsim.Options{
		Seed:          seed,
		Shape:         cekatsim.ShapeReal,
		MessageCounts: crashMessageCounts,
		Latency:       3 * time.Millisecond,
		Fault5xx:      0.02,
		FaultDrop:     0.01,
		FaultTruncate: 0.01,
		MalformedRate: 0.01,
	})
}

// newRig builds the archiver and starts a simulator with opts (its APIKey
// and Start are set here). env, CEKAT_ARCHIVER_ settings, overrides the
// rig's.
func newRig(t *testing.T, chAddr string, opts cekatsim.Options, env ...string) *crashRig {
	t.Helper()
	rig := &crashRig{t: t, dir: t.TempDir()}
	db := sinktest.DatabaseName(t)
	rig.bin = crashBuildArchiver(t, rig.dir)

	const apiKey = "crash-test-key"
	opts.APIKey = apiKey
	// History just behind the wall clock, so the re-check window covers
	// the statuses that can still change.
	opts.Start = time.Now().UTC().Truncate(time.Second)
	sim, err := cekatsim.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	rig.sim = sim
	var liveMu sync.Mutex
	liveRng := rand.New(rand.NewPCG(uint64(opts.Seed), 0x11fe))
	api := sim.Handler()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if rig.live.Load() && r.URL.Path == "/messages" {
			if conv := r.URL.Query().Get("conversation_id"); conv != "" {
				liveMu.Lock()
				n := 0
				if liveRng.IntN(2) == 0 {
					n = 1 + liveRng.IntN(3)
				}
				liveMu.Unlock()
				sim.AddMessages(conv, n)
			}
		}
		if h := rig.onRequest.Load(); h != nil {
			(*h)(r)
		}
		api.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)

	convFile := filepath.Join(rig.dir, "conversations.txt")
	if err := os.WriteFile(convFile, []byte("# every simulated conversation\n"+strings.Join(sim.ConversationIDs(), "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	rig.env = cleanEnviron([]string{
		"CEKAT_ARCHIVER_API_BASE_URL=" + srv.URL,
		"CEKAT_ARCHIVER_API_KEY=" + apiKey,
		"CEKAT_ARCHIVER_API_MAX_RETRIES=20",
		"CEKAT_ARCHIVER_API_TIMEOUT=10s",
		// The simulator has no rate limit: neither has the client.
		"CEKAT_ARCHIVER_API_RATE_LIMIT_PER_MINUTE=1000000",
		"CEKAT_ARCHIVER_API_RATE_LIMIT_PER_DAY=0",
		"CEKAT_ARCHIVER_CLICKHOUSE_ADDR=" + chAddr,
		"CEKAT_ARCHIVER_CLICKHOUSE_DATABASE=" + db,
		"CEKAT_ARCHIVER_CONVERSATIONS_FILE=" + convFile,
		"CEKAT_ARCHIVER_SYNC_SPOOL_DIR=" + filepath.Join(rig.dir, "spool"),
		"CEKAT_ARCHIVER_SYNC_DETAIL_CONCURRENCY=16",
		"CEKAT_ARCHIVER_SYNC_BATCH_ROWS=150",
		"CEKAT_ARCHIVER_SYNC_BATCH_INTERVAL=200ms",
		// Every conversation is polled at every run: adaptive polling
		// would leave quiet ones alone for minutes, and live traffic
		// reaches them too.
		"CEKAT_ARCHIVER_SYNC_POLL_IDLE_RUNS=1000",
		"CEKAT_ARCHIVER_LOG_FORMAT=console",
	})
	// The last of duplicate entries wins (os/exec).
	rig.env = append(rig.env, env...)

	// The test reads what the runs left; the database itself is created
	// by the first run (which may be killed while it migrates).
	ctx := context.Background()
	store, err := sink.Open(ctx, sink.Options{Addr: []string{chAddr}, Database: db})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	rig.store = store
	rig.archive, err = sink.OpenArchive(context.Background(), store, sink.ArchiveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rig.archive.Close(context.Background()) })

	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		for _, r := range rig.results {
			t.Logf("output of run %q (delay %s, signal %v sent %v, killed %v, exit %d):\n%s", r.name, r.delay, r.signal, r.sent, r.killed, r.exitCode, crashTail(r.output, 3000))
		}
	})
	return rig
}

// crashBuildArchiver builds this package's binary into dir, with the race
// detector when the test has it.
func crashBuildArchiver(t *testing.T, dir string) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		root := os.Getenv("GOROOT")
		if root == "" {
			t.Fatalf("no go command to build the archiver with: %v", err)
		}
		goTool = filepath.Join(root, "bin", "go")
	}
	bin := filepath.Join(dir, "cekat-archiver")
	args := []string{"build", "-o", bin}
	if crashRaceEnabled() {
		args = append(args, "-race")
	}
	start := time.Now()
	if out, err := exec.Command(goTool, append(args, ".")...).CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	t.Logf("go %s . took %s", strings.Join(args, " "), time.Since(start).Round(time.Millisecond))
	return bin
}

// crashRaceEnabled reports whether this test binary was built with -race.
func crashRaceEnabled() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}

// start starts `cekat-archiver sync --once` and returns a channel closed
// when it has exited.
func (rig *crashRig) start(stdout, stderr *bytes.Buffer) (*exec.Cmd, <-chan struct{}) {
	rig.t.Helper()
	cmd := exec.Command(rig.bin, "sync", "--once", "--progress=none")
	cmd.Env = rig.env
	cmd.Dir = rig.dir
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Start(); err != nil {
		rig.t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	return cmd, done
}

// killedRun starts a run and sends it SIGKILL after delay, unless it has
// finished by then.
func (rig *crashRig) killedRun(name string, delay time.Duration) crashRun {
	rig.t.Helper()
	return rig.signalledRun(name, delay, syscall.SIGKILL)
}

// signalledRun starts a run and sends it sig after delay, unless it has
// finished by then, and waits for it to exit (two minutes at most: a
// stopped run writes what it has, it does not go on).
func (rig *crashRig) signalledRun(name string, delay time.Duration, sig syscall.Signal) crashRun {
	rig.t.Helper()
	var stdout, stderr bytes.Buffer
	began := time.Now()
	cmd, done := rig.start(&stdout, &stderr)
	res := crashRun{name: name, attempted: true, delay: delay, signal: sig}
	timer := time.NewTimer(delay)
	select {
	case <-done:
		timer.Stop()
	case <-timer.C:
		err := cmd.Process.Signal(sig)
		if err != nil && !errors.Is(err, os.ErrProcessDone) {
			rig.t.Fatalf("signal run %s: %v", name, err)
		}
		res.sent = err == nil
		select {
		case <-done:
		case <-time.After(2 * time.Minute):
			_ = cmd.Process.Signal(syscall.SIGKILL)
			<-done
			rig.t.Errorf("run %s had not exited two minutes after %v:\n%s", name, sig, crashTail(stderr.String()+stdout.String(), 4000))
		}
	}
	res.elapsed = time.Since(began)
	res.output, res.stdout = stderr.String()+stdout.String(), stdout.String()
	ws := cmd.ProcessState.Sys().(syscall.WaitStatus)
	res.killed = ws.Signaled() && ws.Signal() == sig
	res.exitCode = cmd.ProcessState.ExitCode()
	rig.results = append(rig.results, res)
	if strings.Contains(res.output, "WARNING: DATA RACE") {
		rig.t.Errorf("run %s: the race detector found a data race:\n%s", name, crashTail(res.output, 6000))
	}
	var what string
	switch {
	case res.killed:
		what = "ended by " + crashSignalName(sig)
	case res.sent:
		what = fmt.Sprintf("exited %d after %s", res.exitCode, crashSignalName(sig))
	default:
		what = fmt.Sprintf("finished first (exit %d)", res.exitCode)
	}
	rig.t.Logf("run %-15s delay %5s: %s after %s", name, delay.Round(time.Millisecond), what, res.elapsed.Round(time.Millisecond))
	return res
}

func crashSignalName(sig syscall.Signal) string {
	switch sig {
	case syscall.SIGKILL:
		return "SIGKILL"
	case syscall.SIGTERM:
		return "SIGTERM"
	case syscall.SIGINT:
		return "SIGINT"
	}
	return sig.String()
}

// cleanRun runs the archiver to completion and requires success.
func (rig *crashRig) cleanRun(name string) {
	rig.t.Helper()
	var stdout, stderr bytes.Buffer
	began := time.Now()
	cmd, done := rig.start(&stdout, &stderr)
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		_ = cmd.Process.Signal(syscall.SIGKILL)
		<-done
		rig.t.Fatalf("run %s did not finish in two minutes:\n%s", name, crashTail(stderr.String()+stdout.String(), 4000))
	}
	res := crashRun{name: name, exitCode: cmd.ProcessState.ExitCode(), elapsed: time.Since(began), output: stderr.String() + stdout.String()}
	rig.results = append(rig.results, res)
	rig.t.Logf("run %-15s clean: exit %d after %s\n%s", name, res.exitCode, res.elapsed.Round(time.Millisecond), stdout.String())
	if res.exitCode != 0 {
		rig.t.Fatalf("run %s exited %d:\n%s", name, res.exitCode, crashTail(res.output, 4000))
	}
}

// states returns the stored sync states (none before the first migration).
// migrated says whether a run got through every migration: one stopped
// while migrating leaves the schema between versions, for the next run to
// finish.
func (rig *crashRig) migrated() bool {
	rig.t.Helper()
	files, err := os.ReadDir("../../sink/migrations")
	if err != nil {
		rig.t.Fatal(err)
	}
	var tables, applied uint64
	ctx := context.Background()
	if err := rig.store.Conn().QueryRow(ctx, "SELECT count() FROM system.tables WHERE database = ? AND name = ?",
		rig.store.Database(), sink.MigrationsTable).Scan(&tables); err != nil {
		rig.t.Fatalf("look up %s: %v", sink.MigrationsTable, err)
	}
	if tables == 0 {
		return false
	}
	if err := rig.store.Conn().QueryRow(ctx, "SELECT uniqExact(version_id) FROM "+rig.store.TableName(sink.MigrationsTable)+
		" WHERE version_id > 0").Scan(&applied); err != nil {
		rig.t.Fatalf("count applied migrations: %v", err)
	}
	return applied >= uint64(len(files))
}

func (rig *crashRig) states() map[string]sink.State {
	rig.t.Helper()
	ctx := context.Background()
	var tables uint64
	if err := rig.store.Conn().QueryRow(ctx, "SELECT count() FROM system.tables WHERE database = ? AND name = 'sync_state'",
		rig.store.Database()).Scan(&tables); err != nil {
		rig.t.Fatalf("look up sync_state: %v", err)
	}
	if tables == 0 || !rig.migrated() {
		return map[string]sink.State{}
	}
	states, err := rig.archive.LoadStates(ctx)
	if err != nil {
		rig.t.Fatalf("load sync state: %v", err)
	}
	return states
}

// checkStatesBehindArchive requires, after a killed run, that the stored
// sync states claim nothing the archive lacks: in every conversation each
// message from the start of the history up to the state's head is archived
// unless a pending gap of the state covers it (a gap's stretch lies
// strictly between its stop message, or the start of the history, and its
// cursor message).
//
// Given the states from before the run, it also describes the walks from
// the top that the run left unfinished (a new gap stopping at the previous
// head), and returns how many messages the deepest had gone down.
func (rig *crashRig) checkStatesBehindArchive(before map[string]sink.State) (walks []string, deepest int) {
	rig.t.Helper()
	ctx := context.Background()
	store := rig.store
	// States first: the archive only grows, and the truth only grows at
	// the top, so reading them later cannot make a sound state look wrong.
	states := rig.states()
	if len(states) == 0 {
		// Nothing claimed yet; the messages table may not even exist
		// when the run was ended while it migrated.
		return nil, 0
	}
	archived := map[string]bool{}
	rows, err := store.Conn().Query(ctx, "SELECT conversation_id, message_id FROM "+store.TableName("messages"))
	if err != nil {
		rig.t.Fatalf("query archived ids: %v", err)
	}
	for rows.Next() {
		var conv, id string
		if err := rows.Scan(&conv, &id); err != nil {
			rig.t.Fatal(err)
		}
		archived[conv+"/"+id] = true
	}
	if err := rows.Err(); err != nil {
		rig.t.Fatal(err)
	}
	rows.Close()
	byConv := map[string][]cekatsim.TruthMessage{} // oldest first
	for _, m := range rig.sim.Truth() {
		byConv[m.ConversationID] = append(byConv[m.ConversationID], m)
	}

	for conv, st := range states {
		msgs := byConv[conv]
		pos := make(map[string]int, len(msgs))
		for i, m := range msgs {
			pos[m.ID] = i
		}
		position := func(what, id string) int {
			p, ok := pos[id]
			if !ok {
				rig.t.Errorf("conversation %s: the state's %s %q is not a message upstream (state %+v)", conv, what, id, st)
			}
			return p
		}
		type stretch struct{ lo, hi int } // exclusive bounds
		var pending []stretch
		reachesStart := false
		for _, g := range st.Gaps {
			lo := -1
			if g.Stop != "" {
				lo = position("gap stop", g.Stop)
			} else {
				reachesStart = true
			}
			pending = append(pending, stretch{lo, position("gap cursor", g.Before)})
		}
		if prev, ok := before[conv]; ok && prev.HeadMessageID != "" && len(st.Gaps) > 0 && st.Gaps[0].Stop == prev.HeadMessageID &&
			st.HeadMessageID != prev.HeadMessageID && (len(prev.Gaps) == 0 || prev.Gaps[0].Stop != prev.HeadMessageID) {
			// This run's walk from the top: it set the head from its first
			// page and left the rest down to the old head as a gap.
			walked := position("head", st.HeadMessageID) - pending[0].hi + 1
			deepest = max(deepest, walked)
			walks = append(walks, fmt.Sprintf("%s (%d messages down, %d left above the old head)", conv[:8], walked, pending[0].hi-pending[0].lo-1))
		}
		if !st.BackfillComplete && !reachesStart && st.HeadMessageID != "" {
			rig.t.Errorf("conversation %s: backfill incomplete but no gap reaches the start of the history: %+v", conv, st)
		}
		if st.HeadMessageID == "" {
			continue
		}
		head := position("head", st.HeadMessageID)
		var holes []int
		for p := 0; p <= head && p < len(msgs); p++ {
			if msgs[p].Malformed || archived[conv+"/"+msgs[p].ID] {
				continue
			}
			covered := false
			for _, s := range pending {
				covered = covered || (s.lo < p && p < s.hi)
			}
			if !covered {
				holes = append(holes, p)
			}
		}
		if len(holes) > 0 {
			rig.t.Errorf("conversation %s: the stored state is ahead of the archive: %d messages at or below its head (position %d) are neither archived nor in a gap, positions %v...; gaps %+v",
				conv, len(holes), head, holes[:min(len(holes), 20)], st.Gaps)
		}
	}
	sort.Strings(walks)
	return walks, deepest
}

// crashMessage is one message as the analyst view holds it, in the terms of
// the simulator's truth. Delivery times are kept at the archive's
// precision, whole seconds.
type crashMessage struct {
	ID, ConversationID, Direction, Type, Status, Text, MediaURL, Caption, Filename string
	SenderName, SenderPhone, SenderID, SenderType, RecipientPhone, ReplyTo         string
	IsTemplate                                                                     bool
	Timestamp                                                                      time.Time
	DeliveredAt, ReadAt                                                            int64
}

func crashUnix(t *time.Time) int64 {
	if t == nil {
		return 0
	}
	return t.Unix()
}

// assertArchiveMatchesTruth compares the archive with the simulator,
// message by message.
func (rig *crashRig) assertArchiveMatchesTruth() {
	rig.t.Helper()
	want := map[string]crashMessage{}
	for _, m := range rig.sim.Truth() {
		if m.Malformed {
			continue
		}
		want[m.ConversationID+"/"+m.ID] = crashMessage{m.ID, m.ConversationID, m.Direction, m.Type, m.Status, m.Text,
			m.MediaURL, m.Caption, m.Filename, m.SenderName, m.SenderPhone, m.SenderID, m.SenderType, m.RecipientPhone,
			m.ReplyTo, m.IsTemplate, m.Timestamp.UTC(), crashUnix(m.DeliveredAt), crashUnix(m.ReadAt)}
	}
	got := map[string]crashMessage{}
	err := rig.archive.Messages(context.Background(), func(r sink.MessageRow) error {
		got[r.ConversationID+"/"+r.MessageID] = crashMessage{r.MessageID, r.ConversationID, r.Direction, r.Type, r.Status,
			r.Text, r.MediaURL, r.Caption, r.Filename, r.SenderName, r.SenderPhone, r.SenderID, r.SenderType,
			r.RecipientPhone, r.ReplyTo, r.IsTemplate, r.SentAt, crashUnix(r.DeliveredAt), crashUnix(r.ReadAt)}
		return nil
	})
	if err != nil {
		rig.t.Fatal(err)
	}
	if len(want) == 0 {
		rig.t.Fatal("the simulator holds no messages")
	}
	rig.t.Logf("archive: %d messages, truth: %d (not malformed)", len(got), len(want))
	if diff := cmp.Diff(want, got); diff != "" {
		var missing, extra, differ int
		for k := range want {
			if g, ok := got[k]; !ok {
				missing++
			} else if g != want[k] {
				differ++
			}
		}
		for k := range got {
			if _, ok := want[k]; !ok {
				extra++
			}
		}
		rig.t.Errorf("archive differs from the simulator's truth: %d missing, %d not upstream, %d different (-truth +archive):\n%s",
			missing, extra, differ, crashTail(diff, 6000))
	}
}

// assertNoGaps requires every conversation's state to be complete.
func (rig *crashRig) assertNoGaps() {
	rig.t.Helper()
	states, err := rig.archive.LoadStates(context.Background())
	if err != nil {
		rig.t.Fatal(err)
	}
	for _, id := range rig.sim.ConversationIDs() {
		st, ok := states[id]
		switch {
		case !ok:
			rig.t.Errorf("conversation %s has no sync state", id)
		case len(st.Gaps) > 0 || !st.BackfillComplete:
			rig.t.Errorf("conversation %s: %d gaps %v, backfill complete %v", id, len(st.Gaps), st.Gaps, st.BackfillComplete)
		case st.LastError != "":
			rig.t.Errorf("conversation %s: last error %q", id, st.LastError)
		}
	}
}

// crashTail keeps the last n bytes of s.
func crashTail(s string, n int) string {
	if len(s) > n {
		return "...\n" + s[len(s)-n:]
	}
	return s
}
