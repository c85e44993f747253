package sink_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/cekat-archiver/cekat-archiver/sink"
	"github.com/cekat-archiver/cekat-archiver/sink/sinktest"
)

// On the test cluster (one shard, two replicas), Migrate makes the same
// schema on both replicas, with replicated tables and the analyst's views,
// and a second Migrate does nothing. Rows and states written through one
// replica are on the other as soon as the flush returns (the insert quorum),
// with no wait: a state read on either replica never claims rows it lacks.
func TestClusterMigrateAndQuorum(t *testing.T) {
	cluster, addrs := sinktest.Cluster(t)
	if len(addrs) < 2 {
		t.Skipf("the test cluster lists %d replica; this test needs two", len(addrs))
	}
	db := sinktest.ClusterDatabaseName(t, addrs)
	ctx := testContext(t)

	st, err := sink.Open(ctx, sink.Options{Addr: addrs, Database: db, Cluster: cluster, Compression: sink.CompressionNone})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	applied, err := st.Migrate(ctx)
	if err != nil {
		t.Fatalf("migrate on cluster %s: %v (applied %v)", cluster, err, applied)
	}
	if again, err := st.Migrate(ctx); err != nil || len(again) != 0 {
		t.Fatalf("second migrate: applied %v, %v; want nothing", again, err)
	}

	// Each replica on its own, as an analyst connected to it would be.
	replicas := make([]*sink.Store, len(addrs))
	for i, addr := range addrs {
		r, err := sink.Open(ctx, sink.Options{Addr: []string{addr}, Database: db})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = r.Close() })
		replicas[i] = r
	}
	var first string
	for i, r := range replicas {
		tables, err := r.Schema(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var list []string
		for _, tb := range tables {
			list = append(list, tb.Name+" "+tb.Engine)
			isView := strings.HasSuffix(tb.Engine, "View")
			if !isView && !strings.HasPrefix(tb.Engine, "Replicated") {
				t.Errorf("replica %s: table %s has engine %s, want a Replicated one", addrs[i], tb.Name, tb.Engine)
			}
		}
		sort.Strings(list)
		got := strings.Join(list, "\n")
		for _, want := range []string{"messages_current View", "messages_daily View", "message_turns View",
			"conversation_summary View", "message_rollup_mv MaterializedView", "message_index_mv MaterializedView",
			"sync_state ReplicatedReplacingMergeTree", sink.MigrationsTable + " ReplicatedMergeTree"} {
			if !strings.Contains(got, want) {
				t.Errorf("replica %s lacks %q; it has:\n%s", addrs[i], want, got)
			}
		}
		if i == 0 {
			first = got
		} else if got != first {
			t.Errorf("replicas differ:\n%s:\n%s\n%s:\n%s", addrs[0], first, addrs[i], got)
		}
	}

	// Every session of the cluster's store waits for both replicas.
	var quorum string
	if err := st.Conn().QueryRow(ctx, "SELECT value FROM system.settings WHERE name = 'insert_quorum'").Scan(&quorum); err != nil {
		t.Fatal(err)
	}
	if quorum != fmt.Sprint(len(addrs)) {
		t.Errorf("insert_quorum %s, want %d", quorum, len(addrs))
	}

	a, err := sink.OpenArchive(context.Background(), st, sink.ArchiveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close(context.Background()) })
	sent := ts("2025-03-27T15:00:00Z")
	const n = 50
	for round := range 3 {
		for i := range n {
			if err := a.AddMessages(ctx, msgRow("c1", fmt.Sprintf("m%d_%d", round, i), sent.Add(time.Duration(round*n+i)*time.Second), 1)); err != nil {
				t.Fatal(err)
			}
		}
		head := fmt.Sprintf("m%d_%d", round, n-1)
		if err := a.AddState(ctx, sink.State{ConversationID: "c1", HeadMessageID: head, Version: uint64(round + 1)}); err != nil {
			t.Fatal(err)
		}
		if err := a.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		for i, r := range replicas {
			ra, err := sink.OpenArchive(ctx, r, sink.ArchiveOptions{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = ra.Close(context.Background()) })
			states, err := ra.LoadStates(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if got := states["c1"].HeadMessageID; got != head {
				t.Errorf("round %d, replica %s: state head %q, want %q", round, addrs[i], got, head)
			}
			var msgs, current uint64
			if err := r.Conn().QueryRow(ctx, "SELECT count() FROM "+r.TableName("messages")).Scan(&msgs); err != nil {
				t.Fatal(err)
			}
			if err := r.Conn().QueryRow(ctx, "SELECT count() FROM "+r.TableName("messages_current")).Scan(&current); err != nil {
				t.Fatal(err)
			}
			var daily uint64
			if err := r.Conn().QueryRow(ctx, "SELECT toUInt64(sum(messages)) FROM "+r.TableName("messages_daily")).Scan(&daily); err != nil {
				t.Fatal(err)
			}
			if want := uint64((round + 1) * n); msgs != want || current != want || daily != want {
				t.Errorf("round %d, replica %s: messages %d, messages_current %d, messages_daily %d; want %d each",
					round, addrs[i], msgs, current, daily, want)
			}
			_ = ra.Close(ctx)
		}
	}
}
