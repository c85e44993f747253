package main

import (
	"bytes"
	"context"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cekat-archiver/cekat-archiver/sink"
	"github.com/cekat-archiver/cekat-archiver/sink/sinktest"
	"github.com/cekat-archiver/cekat-archiver/syncer/cekatsim"
)

// clusterScript starts and stops the test cluster's replicas.
const clusterScript = "../../deploy/clickhouse/cluster.sh"

// TestClusterReplicaStopsDuringRun archives the simulator into the test
// cluster (one shard, two replicas) and stops the replica the archiver is
// connected to in the middle of the run. The run must end by itself, and
// cleanly: it cannot complete through the other replica alone (every insert
// waits for both), so it fails with an error and leaves nothing on the
// surviving replica that a state claims and the rows lack. Reads fail over:
// `status` answers through the other replica while the first is down. Once
// the replica is back, a run completes, and each replica on its own holds
// the whole archive: every message as upstream has it, and the analyst's
// view messages_current agrees.
func TestClusterReplicaStopsDuringRun(t *testing.T) {
	cluster, addrs := sinktest.ClusterAlone(t)
	if len(addrs) != 2 {
		t.Skipf("the test cluster lists %d replicas; this test needs two", len(addrs))
	}
	if testing.Short() {
		t.Skip("builds the archiver and stops and starts a ClickHouse server")
	}
	db := sinktest.ClusterDatabaseName(t, addrs)
	rig := newClusterRig(t, cluster, addrs, db)

	// The database and schema first, so that the replica stops while the
	// run writes rows, not while it migrates.
	if out, err := rig.command("migrate"); err != nil {
		t.Fatalf("migrate: %v\n%s", err, out)
	}

	// The surviving replica on its own: what a reader there sees.
	survivor := clusterArchive(t, addrs[1], db)

	var stdout, stderr bytes.Buffer
	cmd, done := rig.start(&stdout, &stderr)
	t.Cleanup(func() {
		// The replica must be back for the next tests whatever happens here.
		clusterReplica(t, "start-replica", "1")
	})
	for {
		n := clusterCount(t, survivor.Store(), "messages")
		if n >= 300 {
			t.Logf("%d messages on replica 2: stopping replica 1", n)
			break
		}
		select {
		case <-done:
			t.Fatalf("the run ended before the replica could be stopped (%d messages written); make the simulated archive bigger\n%s",
				n, crashTail(stderr.String()+stdout.String(), 3000))
		case <-time.After(50 * time.Millisecond):
		}
	}
	clusterReplica(t, "stop-replica", "1")
	stopped := time.Now()
	select {
	case <-done:
	case <-time.After(3 * time.Minute):
		_ = cmd.Process.Signal(syscall.SIGKILL)
		<-done
		t.Fatalf("the run had not ended three minutes after the replica stopped:\n%s", crashTail(stderr.String()+stdout.String(), 4000))
	}
	out := stderr.String() + stdout.String()
	code := cmd.ProcessState.ExitCode()
	t.Logf("the run exited %d, %s after the replica had stopped:\n%s", code, time.Since(stopped).Round(time.Millisecond), crashTail(out, 1500))
	switch {
	case strings.Contains(out, "panic:") || strings.Contains(out, "WARNING: DATA RACE"):
		t.Fatalf("the run did not fail cleanly:\n%s", crashTail(out, 6000))
	case code == 0:
		// Possible only if every write was done before the stop; the
		// archive is then complete, which the checks below require anyway.
		t.Log("the run completed")
	case !strings.Contains(strings.ToLower(out), "clickhouse"):
		t.Errorf("the run failed (exit %d) without naming ClickHouse:\n%s", code, crashTail(out, 3000))
	}
	clusterStatesBehindRows(t, survivor, rig.sim, "replica 2 while replica 1 is down")

	// Reads fail over to the replica that answers.
	if out, err := rig.command("status"); err != nil {
		t.Errorf("status with replica 1 down: %v\n%s", err, crashTail(out, 3000))
	}
	// A run started while the replica is down gets as far as its first
	// write, and fails on the quorum (not on the schema check at start,
	// which must not wait for the missing replica).
	if out, err := rig.command("sync", "--once", "--progress=none"); err == nil || !strings.Contains(out, "quorum") {
		t.Errorf("sync with replica 1 down: %v, want a failure naming the quorum:\n%s", err, crashTail(out, 3000))
	}

	clusterReplica(t, "start-replica", "1")
	// The first runs after the return may still find an insert of the
	// stopped run waiting for its quorum until the replica has fetched it,
	// which it does by itself, in its own time: runs are retried, as the
	// daemon's next runs would be, for up to two minutes.
	deadline := time.Now().Add(2 * time.Minute)
	for attempt := 1; ; attempt++ {
		out, err := rig.command("sync", "--once", "--progress=none")
		if err == nil {
			t.Logf("run %d after the replica returned: ok", attempt)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no run completed in 2 minutes after the replica returned (%d runs); the last: %v\n%s", attempt, err, crashTail(out, 4000))
		}
		t.Logf("run %d after the replica returned failed: %v\n%s", attempt, err, crashTail(out, 800))
		time.Sleep(3 * time.Second)
	}

	want := 0
	for _, m := range rig.sim.Truth() {
		if !m.Malformed {
			want++
		}
	}
	archives := make([]*sink.Archive, len(addrs))
	for i, addr := range addrs {
		a := clusterArchive(t, addr, db)
		archives[i] = a
		clusterSyncReplica(t, a.Store())
		one := &crashRig{t: t, sim: rig.sim, archive: a}
		one.assertArchiveMatchesTruth()
		one.assertNoGaps()
		if got := clusterCount(t, a.Store(), "messages_current"); got != uint64(want) {
			t.Errorf("replica %d (%s): messages_current has %d rows, the truth %d messages", i+1, addr, got, want)
		}
	}

	// The rollup is fed by a materialized view, written after the rows of
	// an insert and not atomically with them: an insert cut off by the
	// replica's stop can leave rows that the rollup never counted. The
	// repair in docs/scaling.md is the rollup's fill migration again (sets: it adds
	// nothing twice).
	if got := clusterDaily(t, archives[0].Store()); got != uint64(want) {
		t.Logf("%s counts %d messages of %d after the stop: repairing", sink.DailyView, got, want)
		clusterRepairRollup(t, addrs[0], db)
	}
	for i, a := range archives {
		clusterSyncReplica(t, a.Store())
		if got := clusterDaily(t, a.Store()); got != uint64(want) {
			t.Errorf("replica %d (%s): %s counts %d messages, the truth %d", i+1, addrs[i], sink.DailyView, got, want)
		}
	}
}

func clusterDaily(t *testing.T, st *sink.Store) uint64 {
	t.Helper()
	var n uint64
	if err := st.Conn().QueryRow(context.Background(), "SELECT toUInt64(sum(messages)) FROM "+st.TableName(sink.DailyView)).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// clusterRepairRollup runs the rollup's fill migration as docs/scaling.md says
// (clickhouse-client --database DB --multiquery < the file).
func clusterRepairRollup(t *testing.T, addr, db string) {
	t.Helper()
	b, err := os.ReadFile("../../sink/migrations/00027_fill_message_rollup.sql")
	if err != nil {
		t.Fatal(err)
	}
	client, err := exec.LookPath("clickhouse-client")
	if err != nil {
		t.Fatal(err)
	}
	host, port, _ := strings.Cut(addr, ":")
	cmd := exec.Command(client, "--host", host, "--port", port, "--database", db, "--multiquery")
	cmd.Stdin = bytes.NewReader(b)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("repair the rollup: %v\n%s", err, out)
	}
}

// newClusterRig is the crash tests' rig pointed at the cluster: a
// simulator slow enough for a run to last a while, and the archiver
// configured with both replicas.
func newClusterRig(t *testing.T, cluster string, addrs []string, db string) *crashRig {
	t.Helper()
	rig := &crashRig{t: t, dir: t.TempDir()}
	rig.bin = crashBuildArchiver(t, rig.dir)
	const apiKey = "cluster-test-key"
	sim, err := cekatsim.New(cekatsim.Options{
		Seed:          12,
		APIKey:        apiKey,
		Shape:         cekatsim.ShapeReal,
		MessageCounts: []int{0, 1, 100, 101, 260, 520, 900, 1500},
		Latency:       5 * time.Millisecond,
		Start:         time.Now().UTC().Truncate(time.Second),
	})
	if err != nil {
		t.Fatal(err)
	}
	rig.sim = sim
	srv := httptest.NewServer(sim.Handler())
	t.Cleanup(srv.Close)
	convFile := filepath.Join(rig.dir, "conversations.txt")
	if err := os.WriteFile(convFile, []byte(strings.Join(sim.ConversationIDs(), "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	rig.env = cleanEnviron([]string{
		"CEKAT_ARCHIVER_API_BASE_URL=" + srv.URL,
		"CEKAT_ARCHIVER_API_KEY=" + apiKey,
		"CEKAT_ARCHIVER_API_RATE_LIMIT_PER_MINUTE=1000000",
		"CEKAT_ARCHIVER_API_RATE_LIMIT_PER_DAY=0",
		"CEKAT_ARCHIVER_CLICKHOUSE_ADDR=" + strings.Join(addrs, ","),
		"CEKAT_ARCHIVER_CLICKHOUSE_CLUSTER=" + cluster,
		"CEKAT_ARCHIVER_CLICKHOUSE_DATABASE=" + db,
		"CEKAT_ARCHIVER_CLICKHOUSE_DIAL_TIMEOUT=2s",
		"CEKAT_ARCHIVER_CONVERSATIONS_FILE=" + convFile,
		"CEKAT_ARCHIVER_SYNC_DETAIL_CONCURRENCY=4",
		"CEKAT_ARCHIVER_SYNC_BATCH_ROWS=100",
		"CEKAT_ARCHIVER_SYNC_BATCH_INTERVAL=200ms",
		"CEKAT_ARCHIVER_SYNC_POLL_IDLE_RUNS=1000",
		"CEKAT_ARCHIVER_LOG_FORMAT=console",
	})
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := exec.Command(clusterScript, "status").CombinedOutput()
			t.Logf("cluster: %s", b)
		}
	})
	return rig
}

// command runs the archiver with the rig's settings and returns its output.
func (rig *crashRig) command(args ...string) (string, error) {
	cmd := exec.Command(rig.bin, args...)
	cmd.Env = rig.env
	cmd.Dir = rig.dir
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// clusterReplica runs cluster.sh with args (stop-replica N, start-replica N).
func clusterReplica(t *testing.T, args ...string) {
	t.Helper()
	out, err := exec.Command(clusterScript, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", clusterScript, strings.Join(args, " "), err, out)
	}
	t.Logf("%s", bytes.TrimSpace(out))
}

// clusterArchive reads the archive on one replica only.
func clusterArchive(t *testing.T, addr, db string) *sink.Archive {
	t.Helper()
	st, err := sink.Open(context.Background(), sink.Options{Addr: []string{addr}, Database: db})
	if err != nil {
		t.Fatal(err)
	}
	a, err := sink.OpenArchive(context.Background(), st, sink.ArchiveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = a.Close(context.Background())
		_ = st.Close()
	})
	return a
}

func clusterCount(t *testing.T, st *sink.Store, table string) uint64 {
	t.Helper()
	var n uint64
	if err := st.Conn().QueryRow(context.Background(), "SELECT count() FROM "+st.TableName(table)).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// clusterSyncReplica waits until the replica has fetched every part the
// other replica wrote (SYSTEM SYNC REPLICA, table by table).
func clusterSyncReplica(t *testing.T, st *sink.Store) {
	t.Helper()
	ctx := context.Background()
	rows, err := st.Conn().Query(ctx, "SELECT name FROM system.tables WHERE database = ? AND engine LIKE 'Replicated%'", st.Database())
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		tables = append(tables, name)
	}
	rows.Close()
	for _, table := range tables {
		if err := st.Conn().Exec(ctx, "SYSTEM SYNC REPLICA "+st.TableName(table)); err != nil {
			t.Fatalf("sync replica %s: %v", table, err)
		}
	}
}

// clusterStatesBehindRows requires every state on a replica to claim only
// rows that replica holds: its head message and, for a conversation whose
// history is complete (backfill done, no gap), every message upstream has
// (nothing arrives upstream during the test).
func clusterStatesBehindRows(t *testing.T, a *sink.Archive, sim *cekatsim.Server, where string) {
	t.Helper()
	ctx := context.Background()
	states, err := a.LoadStates(ctx)
	if err != nil {
		t.Fatal(err)
	}
	upstream := map[string]int{}
	for _, m := range sim.Truth() {
		if !m.Malformed {
			upstream[m.ConversationID]++
		}
	}
	have := map[string]map[string]bool{}
	err = a.Messages(ctx, func(r sink.MessageRow) error {
		if have[r.ConversationID] == nil {
			have[r.ConversationID] = map[string]bool{}
		}
		have[r.ConversationID][r.MessageID] = true
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	complete := 0
	for id, st := range states {
		if st.HeadMessageID != "" && !have[id][st.HeadMessageID] {
			t.Errorf("%s: the state of %s claims head %s, which the replica lacks", where, id, st.HeadMessageID)
		}
		if st.BackfillComplete && len(st.Gaps) == 0 {
			complete++
			if len(have[id]) != upstream[id] {
				t.Errorf("%s: the state of %s says its history is complete; the replica holds %d of its %d messages",
					where, id, len(have[id]), upstream[id])
			}
		}
	}
	t.Logf("%s: %d states (%d complete), %d conversations with messages", where, len(states), complete, len(have))
}
