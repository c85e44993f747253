package sink_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/cekat-archiver/cekat-archiver/sink"
)

func newArchive(t *testing.T, opts sink.ArchiveOptions) (*sink.Archive, *sink.Store) {
	t.Helper()
	st := migratedStore(t)
	a, err := sink.OpenArchive(context.Background(), st, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close(context.Background()) })
	return a, st
}

func ts(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t.UTC()
}

func TestStateRoundTrip(t *testing.T) {
	a, _ := newArchive(t, sink.ArchiveOptions{})
	ctx := testContext(t)
	want := sink.State{
		ConversationID: "c1", HeadMessageID: "m9", HeadSentAt: ts("2025-03-27T15:00:00.123456789Z"),
		Gaps:          []sink.Gap{{Before: "m5", Stop: "m2"}, {Before: "m1", Stop: ""}},
		LastAttemptAt: ts("2025-03-28T00:00:00Z"), LastSuccessAt: ts("2025-03-28T00:00:01Z"),
		LastError: "boom", NextDueAt: ts("2025-03-28T00:05:00Z"), IdleRuns: 3, UpdatedAt: ts("2025-03-28T00:00:02Z"), Version: 7,
	}
	older := want
	older.Version, older.HeadMessageID = 6, "m8"
	never := sink.State{ConversationID: "c2", Gone: true, BackfillComplete: true, Version: 1}
	for _, st := range []sink.State{older, want, never} {
		if err := a.AddState(ctx, st); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	// A stale version written later must not win.
	if err := a.AddState(ctx, older); err != nil {
		t.Fatal(err)
	}
	if err := a.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := a.LoadStates(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]sink.State{"c1": want, "c2": never}, got); diff != "" {
		t.Errorf("LoadStates (-want +got):\n%s", diff)
	}
}

func msgRow(conv, id string, sent time.Time, version uint64) sink.MessageRow {
	return sink.MessageRow{ConversationID: conv, MessageID: id, Direction: "outbound", Type: "text", Status: "sent",
		Text: "hello " + id, SentAt: sent, Enriched: true, Raw: `{"id":"` + id + `"}`, FetchedAt: sent, Version: version}
}

func TestMessagesRoundTripAndArchived(t *testing.T) {
	a, _ := newArchive(t, sink.ArchiveOptions{})
	ctx := testContext(t)
	read := ts("2025-03-27T15:10:00Z")
	r1 := msgRow("c1", "m1", ts("2025-03-27T15:00:00.5Z"), 1)
	r1.ReadAt, r1.Status, r1.IsTemplate, r1.ReplyTo = &read, "read", true, "m0"
	r2 := msgRow("c1", "m2", ts("2025-03-27T15:00:00.5Z"), 1)
	r2v2 := r2
	r2v2.Status, r2v2.Version = "delivered", 2
	if err := a.AddMessages(ctx, r1, r2, r2v2, msgRow("c2", "m1", ts("2025-03-27T15:00:00Z"), 1)); err != nil {
		t.Fatal(err)
	}
	if err := a.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := a.Archived(ctx, "c1", []string{"m1", "m2", "m3"})
	if err != nil {
		t.Fatal(err)
	}
	want0 := map[string]sink.ArchivedMessage{"m1": {Status: "read", Enriched: true}, "m2": {Status: "delivered", Enriched: true}}
	if diff := cmp.Diff(want0, got); diff != "" {
		t.Errorf("Archived (-want +got):\n%s", diff)
	}
	current, err := a.CurrentMessages(ctx, "c1", []string{"m2", "m3"})
	if err != nil || len(current) != 1 || current[0].Version != 2 || current[0].Status != "delivered" {
		t.Errorf("CurrentMessages = %+v, %v; want m2's second version", current, err)
	}
	var rows []sink.MessageRow
	if err := a.Messages(ctx, func(r sink.MessageRow) error { rows = append(rows, r); return nil }); err != nil {
		t.Fatal(err)
	}
	want := []sink.MessageRow{r1, r2v2, msgRow("c2", "m1", ts("2025-03-27T15:00:00Z"), 1)}
	for i := range want {
		want[i].FetchedAt = want[i].FetchedAt.Truncate(time.Second)
		want[i].SenderRole = sink.RoleUnknown // filled in by the archive: outbound, no sender type
	}
	if diff := cmp.Diff(want, rows); diff != "" {
		t.Errorf("Messages (-want +got):\n%s", diff)
	}
}

func TestDueChecks(t *testing.T) {
	a, _ := newArchive(t, sink.ArchiveOptions{})
	ctx := testContext(t)
	now := ts("2025-04-01T00:00:00Z")
	sent := now.Add(-time.Hour)
	entry := func(id string, next time.Time, open bool, version uint64) sink.StatusCheck {
		return sink.StatusCheck{ConversationID: "c", MessageID: id, SentAt: sent, Until: sent.Add(7 * 24 * time.Hour),
			CheckedAt: sent, NextCheckAt: next, Checks: uint16(version), Open: open, Version: version}
	}
	expired := entry("expired", now.Add(-time.Minute), true, 1)
	expired.Until = now.Add(-time.Second)
	checks := []sink.StatusCheck{
		entry("due", now.Add(-time.Minute), true, 1),
		entry("later", now.Add(time.Minute), true, 1),
		entry("closed", now.Add(-time.Minute), true, 1), entry("closed", now.Add(-time.Minute), false, 2),
		entry("moved", now.Add(-time.Hour), true, 1), entry("moved", now.Add(time.Hour), true, 2),
		entry("most-overdue", now.Add(-2*time.Hour), true, 1),
		expired,
	}
	if err := a.AddChecks(ctx, checks...); err != nil {
		t.Fatal(err)
	}
	if err := a.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := a.DueChecks(ctx, now, 10)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, c := range got {
		ids = append(ids, c.MessageID)
	}
	if diff := cmp.Diff([]string{"most-overdue", "due"}, ids); diff != "" {
		t.Errorf("DueChecks (-want +got):\n%s", diff)
	}
	if len(got) == 2 && !cmp.Equal(got[1], checks[0]) {
		t.Errorf("DueChecks read back %+v, want %+v", got[1], checks[0])
	}
	if got, err := a.DueChecks(ctx, now, 1); err != nil || len(got) != 1 {
		t.Errorf("DueChecks with limit 1 = %v, %v", got, err)
	}
}

func TestBatchFlushesWhenFull(t *testing.T) {
	a, _ := newArchive(t, sink.ArchiveOptions{BatchRows: 3, BatchInterval: time.Hour})
	ctx := testContext(t)
	for i := range 3 {
		if err := a.AddMessages(ctx, msgRow("c", fmt.Sprint(i), ts("2025-03-27T15:00:00Z"), 1)); err != nil {
			t.Fatal(err)
		}
	}
	if s := a.Stats(); s.Flushes != 1 || s.MessageRows != 3 {
		t.Errorf("stats after a full batch = %+v", s)
	}
}

func TestBatchFlushesOnTimer(t *testing.T) {
	a, _ := newArchive(t, sink.ArchiveOptions{BatchRows: 1000, BatchInterval: 50 * time.Millisecond})
	ctx := testContext(t)
	if err := a.AddMessages(ctx, msgRow("c", "1", ts("2025-03-27T15:00:00Z"), 1)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for a.Stats().MessageRows == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the timer never flushed")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A failed flush must keep rows and states together for the next one: a
// state stored without its rows would leave a hole in the archive.
func TestFailedFlushKeepsEverything(t *testing.T) {
	a, st := newArchive(t, sink.ArchiveOptions{BatchInterval: time.Hour})
	ctx := testContext(t)
	if err := a.AddMessages(ctx, msgRow("c", "1", ts("2025-03-27T15:00:00Z"), 1)); err != nil {
		t.Fatal(err)
	}
	if err := a.AddState(ctx, sink.State{ConversationID: "c", HeadMessageID: "1", Version: 1}); err != nil {
		t.Fatal(err)
	}
	if err := st.Conn().Exec(ctx, "RENAME TABLE "+st.TableName("messages")+" TO "+st.TableName("messages_away")); err != nil {
		t.Fatal(err)
	}
	if err := a.Flush(ctx); err == nil {
		t.Fatal("flush into a missing table succeeded")
	}
	states, err := a.LoadStates(ctx)
	if err != nil || len(states) != 0 {
		t.Fatalf("state stored ahead of its rows: %v %v", states, err)
	}
	if err := st.Conn().Exec(ctx, "RENAME TABLE "+st.TableName("messages_away")+" TO "+st.TableName("messages")); err != nil {
		t.Fatal(err)
	}
	if err := a.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	ids, err := a.Archived(ctx, "c", []string{"1"})
	if _, ok := ids["1"]; err != nil || !ok {
		t.Errorf("row lost after a failed flush: %v %v", ids, err)
	}
	if states, err = a.LoadStates(ctx); err != nil || states["c"].HeadMessageID != "1" {
		t.Errorf("state lost after a failed flush: %v %v", states, err)
	}
}

func TestQuarantineOncePerRecord(t *testing.T) {
	a, st := newArchive(t, sink.ArchiveOptions{})
	ctx := testContext(t)
	row := func(conv, endpoint, raw string) sink.QuarantineRow {
		return sink.QuarantineRow{ReceivedAt: ts("2025-03-27T15:00:00Z"), Endpoint: endpoint, ConversationID: conv, Error: "bad", Raw: raw}
	}
	for i, tt := range []struct {
		rows []sink.QuarantineRow
		want int
	}{
		{[]sink.QuarantineRow{row("c1", "list", "1"), row("c1", "list", "1"), row("c1", "list", "2")}, 2},
		{[]sink.QuarantineRow{row("c1", "list", "1")}, 0},                           // still in the buffer
		{[]sink.QuarantineRow{row("c2", "list", "1"), row("c1", "detail", "1")}, 2}, // other conversation, other endpoint
	} {
		n, err := a.AddQuarantine(ctx, tt.rows...)
		if err != nil || n != tt.want {
			t.Errorf("step %d: AddQuarantine = %d, %v; want %d", i, n, err, tt.want)
		}
	}
	if err := a.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if n, err := a.AddQuarantine(ctx, row("c1", "list", "2"), row("c1", "list", "3")); err != nil || n != 1 {
		t.Errorf("after flush: AddQuarantine = %d, %v; want 1", n, err)
	}
	if err := a.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	var count uint64
	if err := st.Conn().QueryRow(ctx, "SELECT count() FROM "+st.TableName("quarantine")).Scan(&count); err != nil || count != 5 {
		t.Errorf("quarantine holds %d rows (%v), want 5", count, err)
	}
}

func TestRequestsSince(t *testing.T) {
	a, _ := newArchive(t, sink.ArchiveOptions{})
	ctx := testContext(t)
	for _, r := range []sink.RunRow{
		{RunID: "yesterday", StartedAt: ts("2025-03-26T23:59:59Z"), Requests: 1000},
		{RunID: "a", StartedAt: ts("2025-03-27T00:00:00Z"), Requests: 7},
		{RunID: "b", StartedAt: ts("2025-03-27T12:00:00Z"), Requests: 5},
		{RunID: "shard 1", Shard: "1/3", StartedAt: ts("2025-03-27T12:00:00Z"), Requests: 20},
		{RunID: "shard 2", Shard: "2/3", StartedAt: ts("2025-03-27T12:00:00Z"), Requests: 300},
		{RunID: "shard 1 again", Shard: "1/3", StartedAt: ts("2025-03-27T13:00:00Z"), Requests: 1},
	} {
		if err := a.SaveRun(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	// Each shard counts its own runs: the shards' daily budgets are parts
	// of the one upstream limit.
	for shard, want := range map[string]int{"": 12, "1/3": 21, "2/3": 300, "0/3": 0} {
		if n, err := a.RequestsSince(ctx, ts("2025-03-27T00:00:00Z"), shard); err != nil || n != want {
			t.Errorf("RequestsSince(shard %q) = %d, %v; want %d", shard, n, err, want)
		}
	}
}

// Ids are opaque: quotes, backslashes and non-ASCII must round-trip.
func TestArchivedWithOddIDs(t *testing.T) {
	a, _ := newArchive(t, sink.ArchiveOptions{})
	ctx := testContext(t)
	odd := []string{`it's`, `back\slash`, `"dq"`, `a,b`, `)`, "ünï", `\'`}
	for _, id := range odd {
		if err := a.AddMessages(ctx, msgRow("c'1", id, ts("2025-03-27T15:00:00Z"), 1)); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := a.Archived(ctx, "c'1", append([]string{"missing"}, odd...))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := got["missing"]; len(got) != len(odd) || ok {
		t.Errorf("Archived = %v", got)
	}
	held, err := a.ConversationsArchived(ctx, []string{"c'1", "c'2", `'`})
	if err != nil {
		t.Fatal(err)
	}
	if len(held) != 1 || !held["c'1"] {
		t.Errorf("ConversationsArchived = %v, want only c'1", held)
	}
}

// The backlog is served in its order: new messages' enrichment newest
// first, then re-checks most overdue first, then the history newest first;
// status counts what is enriched and what waits.
func TestBacklogOrderAndCounts(t *testing.T) {
	a, _ := newArchive(t, sink.ArchiveOptions{})
	ctx := testContext(t)
	now := ts("2025-04-01T00:00:00Z")
	entry := func(id string, kind uint8, sent, next time.Time) sink.StatusCheck {
		// Until is ahead of the wall clock too: status counts what waits now.
		return sink.StatusCheck{ConversationID: "c", MessageID: id, SentAt: sent, Until: time.Now().Add(24 * time.Hour),
			CheckedAt: sent, NextCheckAt: next, Open: true, Kind: kind, Version: 1}
	}
	checks := []sink.StatusCheck{
		entry("old-history", sink.CheckEnrichHistory, now.Add(-90*24*time.Hour), now),
		entry("recheck-late", sink.CheckRecheck, now.Add(-time.Hour), now.Add(-time.Minute)),
		entry("new-older", sink.CheckEnrichNew, now.Add(-2*time.Hour), now),
		entry("history", sink.CheckEnrichHistory, now.Add(-30*24*time.Hour), now),
		entry("recheck-overdue", sink.CheckRecheck, now.Add(-time.Hour), now.Add(-30*time.Minute)),
		entry("new", sink.CheckEnrichNew, now.Add(-time.Hour), now),
		entry("not-due", sink.CheckEnrichNew, now.Add(-time.Hour), now.Add(time.Hour)),
	}
	if err := a.AddChecks(ctx, checks...); err != nil {
		t.Fatal(err)
	}
	rows := []sink.MessageRow{msgRow("c", "new", now.Add(-time.Hour), 1), msgRow("c", "history", now.Add(-30*24*time.Hour), 1)}
	rows[0].Enriched, rows[1].Enriched = false, true
	if err := a.AddMessages(ctx, rows...); err != nil {
		t.Fatal(err)
	}
	if err := a.AddState(ctx, sink.State{ConversationID: "c", Version: 1}); err != nil {
		t.Fatal(err)
	}
	if err := a.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := a.DueChecks(ctx, now, 10)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, c := range got {
		ids = append(ids, c.MessageID)
	}
	want := []string{"new", "new-older", "recheck-overdue", "recheck-late", "history", "old-history"}
	if diff := cmp.Diff(want, ids); diff != "" {
		t.Errorf("DueChecks (-want +got):\n%s", diff)
	}
	if len(got) > 0 && got[0].Kind != sink.CheckEnrichNew {
		t.Errorf("kind read back %d", got[0].Kind)
	}
	counts, err := a.Backlog(ctx, now)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[uint8]uint64{sink.CheckEnrichNew: 2, sink.CheckRecheck: 2, sink.CheckEnrichHistory: 2}, counts); diff != "" {
		t.Errorf("Backlog (-want +got):\n%s", diff)
	}
	status, err := a.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(status) != 1 || status[0].Archived != 2 || status[0].Enriched != 1 || status[0].Waiting != 5 {
		t.Errorf("Status = %+v, want 2 archived, 1 enriched, 5 waiting", status)
	}
}
