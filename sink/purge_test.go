package sink_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/cekat-archiver/cekat-archiver/sink"
	"github.com/cekat-archiver/cekat-archiver/sink/sinktest"
)

// purgeArchive is an archive on a fresh, migrated database.
func purgeArchive(t *testing.T) (*sink.Store, *sink.Archive) {
	t.Helper()
	st := migratedStore(t)
	a, err := sink.OpenArchive(context.Background(), st, sink.ArchiveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(context.Background()) })
	return st, a
}

func purgeMsgRow(conv, id string, sent time.Time, enrichErr string, version uint64) sink.MessageRow {
	return sink.MessageRow{ConversationID: conv, MessageID: id, Text: "secret text of " + id, SenderPhone: "+6281234567",
		SentAt: sent, Enriched: enrichErr == "", EnrichError: enrichErr, FetchedAt: sent, Version: version}
}

func TestConversationSummaries(t *testing.T) {
	_, a := purgeArchive(t)
	ctx := testContext(t)
	now := time.Now().UTC().Truncate(time.Second)
	old, older := now.Add(-400*24*time.Hour), now.Add(-500*24*time.Hour)
	if err := a.AddMessages(ctx,
		purgeMsgRow("old", "m1", older, "", 1), purgeMsgRow("old", "m2", old, "", 1),
		// enriched later: the newest version decides
		purgeMsgRow("old", "m3", old.Add(-time.Hour), "transient: 503", 1), purgeMsgRow("old", "m3", old.Add(-time.Hour), "", 2),
		purgeMsgRow("oldest", "m1", older, "transient: timeout", 1), purgeMsgRow("oldest", "m2", older, "detail: 404", 1),
		purgeMsgRow("new", "m1", older, "", 1), purgeMsgRow("new", "m2", now, "", 1),
	); err != nil {
		t.Fatal(err)
	}
	if err := a.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := a.ConversationSummaries(ctx, nil, now.Add(-365*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	want := []sink.ConversationSummary{
		{ConversationID: "oldest", Archived: 2, NewestSentAt: older, TransientUnenriched: 1},
		{ConversationID: "old", Archived: 3, NewestSentAt: old},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("summaries past retention (-want +got):\n%s", diff)
	}
	got, err = a.ConversationSummaries(ctx, []string{"new", "unknown"}, now.Add(-365*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	want = []sink.ConversationSummary{{ConversationID: "new", Archived: 2, NewestSentAt: now}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("summaries of named conversations (-want +got):\n%s", diff)
	}
}

func TestStateKeepsPurgedAt(t *testing.T) {
	_, a := purgeArchive(t)
	ctx := testContext(t)
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	if err := a.AddState(ctx, sink.State{ConversationID: "p", BackfillComplete: true, PurgedAt: at, Version: 2}); err != nil {
		t.Fatal(err)
	}
	if err := a.AddState(ctx, sink.State{ConversationID: "q", BackfillComplete: true, Version: 1}); err != nil {
		t.Fatal(err)
	}
	if err := a.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	states, err := a.LoadStates(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := states["p"].PurgedAt; !got.Equal(at) {
		t.Errorf("purged_at = %v, want %v", got, at)
	}
	if got := states["q"].PurgedAt; !got.IsZero() {
		t.Errorf("purged_at of a conversation never purged = %v, want zero", got)
	}
}

func TestAuditIntentsAndOutcomes(t *testing.T) {
	_, a := purgeArchive(t)
	ctx := testContext(t)
	at := time.Now().UTC().Truncate(time.Second)
	row := func(run, conv, event string) sink.AuditRow {
		return sink.AuditRow{At: at, RunID: run, Action: sink.AuditPurge, Event: event, ConversationID: conv,
			ArchivedMessages: 7, NewestSentAt: at.Add(-time.Hour), Operator: "ops", OperatorReason: "policy"}
	}
	rows := []sink.AuditRow{
		row("r1", "a", sink.EventIntent), row("r1", "a", sink.EventDeleted), // resolved
		row("r1", "b", sink.EventIntent), // lost its answer
		row("r2", "b", sink.EventIntent), row("r2", "b", sink.EventFailed),
		row("r1", "c", sink.EventSkipped),
	}
	// A repeated insert is harmless: the same facts again.
	for range 2 {
		if err := a.AddAudit(ctx, rows...); err != nil {
			t.Fatal(err)
		}
	}
	erase := row("r3", "d", sink.EventIntent)
	erase.Action = sink.AuditErase
	if err := a.AddAudit(ctx, erase); err != nil {
		t.Fatal(err)
	}
	got, err := a.UnresolvedIntents(ctx, sink.AuditPurge)
	if err != nil {
		t.Fatal(err)
	}
	want := []sink.AuditRow{row("r1", "b", sink.EventIntent)}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("unresolved purge intents (-want +got):\n%s", diff)
	}
	if got, err := a.UnresolvedIntents(ctx, sink.AuditErase); err != nil || len(got) != 1 || got[0].ConversationID != "d" {
		t.Errorf("unresolved erase intents = %+v, %v; want d's", got, err)
	}
	all, err := a.AuditRows(ctx, "b")
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 3 {
		t.Errorf("audit rows of b: %d, want 3 (one per fact): %+v", len(all), all)
	}
}

func TestEraseConversationRows(t *testing.T) {
	st, a := purgeArchive(t)
	ctx := testContext(t)
	now := time.Now().UTC().Truncate(time.Second)
	for _, conv := range []string{"gone", "kept"} {
		// Two messages, not two versions of one: a server may merge versions at any time.
		if err := a.AddMessages(ctx, purgeMsgRow(conv, conv+"-m1", now, "", 1), purgeMsgRow(conv, conv+"-m2", now, "", 1)); err != nil {
			t.Fatal(err)
		}
		if _, err := a.AddQuarantine(ctx, sink.QuarantineRow{ReceivedAt: now, ConversationID: conv, Raw: "{bad"}); err != nil {
			t.Fatal(err)
		}
		if err := a.AddChecks(ctx, sink.StatusCheck{ConversationID: conv, MessageID: conv + "-m1", SentAt: now, Until: now.Add(time.Hour), Open: true, Version: 1}); err != nil {
			t.Fatal(err)
		}
		if err := a.AddState(ctx, sink.State{ConversationID: conv, Version: 1}); err != nil {
			t.Fatal(err)
		}
	}
	// Webhook events: one that named only the message, as received and as
	// resolved; one that named the conversation; one of a message no
	// archived row ties to a conversation (its detail answered 404), which
	// names the number in its body; one of the kept conversation.
	body := func(msg string) string {
		return `{"event":"message.received","data":{"id":"` + msg + `","from":"+62 812-345-67","body":"secret"}}`
	}
	if err := st.SaveWebhookEvents(ctx,
		sink.WebhookEvent{EventID: "e1", ReceivedAt: now, Event: "message.received", MessageID: "gone-m1", Raw: body("gone-m1"), Version: 1},
		sink.WebhookEvent{EventID: "e1", ReceivedAt: now, Event: "message.received", ConversationID: "gone", MessageID: "gone-m1",
			Raw: body("gone-m1"), Processed: true, Version: 2},
		sink.WebhookEvent{EventID: "e2", ReceivedAt: now, Event: "conversation.resolved", ConversationID: "gone", Raw: "{}", Version: 1},
		sink.WebhookEvent{EventID: "e3", ReceivedAt: now, Event: "message.received", MessageID: "lost", Raw: `{"from":"6281234567"}`, Version: 1},
		sink.WebhookEvent{EventID: "e4", ReceivedAt: now, Event: "message.read", MessageID: "kept-m1", Raw: `{"status":"read"}`, Version: 1},
	); err != nil {
		t.Fatal(err)
	}
	if err := a.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := st.Conn().Exec(ctx, "INSERT INTO "+st.TableName("tracked_conversations")+" (conversation_id) SELECT 'gone'"); err != nil {
		t.Fatal(err)
	}
	if err := a.AddAudit(ctx, sink.AuditRow{At: now, RunID: "r", Action: sink.AuditErase, Event: sink.EventIntent, ConversationID: "gone"}); err != nil {
		t.Fatal(err)
	}

	tables, err := a.ConversationTables(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"messages", "quarantine", "status_checks", "sync_state", "tracked_conversations", "webhook_events"} {
		found := false
		for _, got := range tables {
			found = found || got == want
			if got == "purge_audit" || got == "messages_current" {
				t.Errorf("ConversationTables lists %s", got)
			}
		}
		if !found {
			t.Errorf("ConversationTables = %v, lacks %s", tables, want)
		}
	}
	byPhone, err := a.ConversationsByPhone(ctx, "0812-345-67")
	if err != nil || len(byPhone.Conversations)+len(byPhone.Messages) != 0 {
		t.Errorf("a number of other digits found %v, %v; want none", byPhone, err)
	}
	byPhone, err = a.ConversationsByPhone(ctx, "6281234567")
	if want := (sink.PhoneMatch{Conversations: []string{"gone", "kept"}, Messages: []string{"lost"}}); err != nil || !cmp.Equal(byPhone, want) {
		t.Errorf("ConversationsByPhone = %+v, %v; want %+v", byPhone, err, want)
	}
	if _, err := a.ConversationsByPhone(ctx, "12"); err == nil {
		t.Error("a phone number of two digits was accepted")
	}

	messages, err := a.ConversationMessages(ctx, tables, []string{"gone"})
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]string{"gone-m1": "gone", "gone-m2": "gone"}; !cmp.Equal(messages, want) {
		t.Errorf("ConversationMessages = %v, want %v", messages, want)
	}
	messages["lost"] = ""
	scope := sink.EraseScope{Tables: tables, Conversations: []string{"gone"}, Messages: messages}
	counts, err := a.ConversationRows(ctx, scope)
	if err != nil {
		t.Fatal(err)
	}
	// e1's two versions are two rows until the server merges them: three rows of gone's
	// events, or two.
	if n := counts["gone"]["webhook_events"]; n != 2 && n != 3 {
		t.Errorf("gone's webhook_events rows: %d, want e1 (one or two versions) and e2", n)
	}
	delete(counts["gone"], "webhook_events")
	want := map[string]map[string]uint64{
		"gone": {"message_index": 2, "messages": 2, "quarantine": 1, "status_checks": 1, "sync_state": 1, "tracked_conversations": 1},
		"":     {"webhook_events": 1},
	}
	if diff := cmp.Diff(want, counts); diff != "" {
		t.Errorf("rows before (-want +got):\n%s", diff)
	}
	if err := a.DeleteConversationRows(ctx, scope); err != nil {
		t.Fatal(err)
	}
	if counts, err = a.ConversationRows(ctx, scope); err != nil || len(counts) != 0 {
		t.Errorf("rows of the scope after erasing: %v, %v; want none", counts, err)
	}
	// A removal names the message ids only in the tables where a row names the message and
	// not the conversation: it evaluates its condition on every row of its table.
	var named []string
	if err := st.Conn().QueryRow(ctx, "SELECT groupArray(table) FROM (SELECT DISTINCT table FROM system.mutations WHERE database = ? AND position(command, 'gone-m2') > 0 ORDER BY table)",
		st.Database()).Scan(&named); err != nil {
		t.Fatal(err)
	}
	if want := []string{"webhook_events"}; !cmp.Equal(named, want) {
		t.Errorf("the removals naming the message ids are of %v, want %v", named, want)
	}
	counts, err = a.ConversationRows(ctx, sink.EraseScope{Tables: tables, Conversations: []string{"kept"}, Messages: map[string]string{"kept-m1": "kept"}})
	if err != nil {
		t.Fatal(err)
	}
	if counts["kept"]["messages"] != 2 || counts["kept"]["sync_state"] != 1 || counts["kept"]["webhook_events"] != 1 {
		t.Errorf("rows of kept after erasing gone: %v; want all", counts)
	}
	if rows, err := a.AuditRows(ctx, "gone"); err != nil || len(rows) != 1 {
		t.Errorf("audit rows of the erased conversation: %v, %v; want its intent kept", rows, err)
	}
	left, err := a.PhoneRows(ctx, "+62 812 345 67")
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]uint64{"messages": 2}; !cmp.Equal(left, want) {
		t.Errorf("rows naming the number after erasing gone: %v, want %v (kept's)", left, want)
	}
}

// A deletion of a scope without rows sends no mutation: it would rewrite
// every part of every table for nothing.
func TestEraseWithoutRowsSendsNoMutation(t *testing.T) {
	st, a := purgeArchive(t)
	ctx := testContext(t)
	now := time.Now().UTC().Truncate(time.Second)
	if err := a.AddMessages(ctx, purgeMsgRow("kept", "m1", now, "", 1)); err != nil {
		t.Fatal(err)
	}
	tables, err := a.ConversationTables(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Migrations of a current release change column types by mutations of their own.
	mutations := func() uint64 {
		t.Helper()
		var n uint64
		if err := st.Conn().QueryRow(ctx, "SELECT count() FROM system.mutations WHERE database = ?", st.Database()).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	before := mutations()
	if err := a.DeleteConversationRows(ctx, sink.EraseScope{Tables: tables, Conversations: []string{"typo"}}); err != nil {
		t.Fatal(err)
	}
	if n := mutations() - before; n != 0 {
		t.Errorf("%d mutations sent for a conversation without rows", n)
	}
}

// The phone number searched for never reaches a log: the driver logs each
// query's text at debug.
func TestPhoneSearchLogsNoNumber(t *testing.T) {
	db := migratedStore(t).Database()
	core, logs := observer.New(zapcore.DebugLevel)
	st, err := sink.Open(testContext(t), sink.Options{Addr: []string{sinktest.Addr(t)}, Database: db, Logger: zap.New(core)})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	a, err := sink.OpenArchive(testContext(t), st, sink.ArchiveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close(context.Background())
	ctx := testContext(t)
	if err := a.AddMessages(ctx, purgeMsgRow("c", "m1", time.Now().UTC(), "", 1)); err != nil {
		t.Fatal(err)
	}
	if err := a.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	found, err := a.ConversationsByPhone(ctx, "+62 812-345-67")
	if err != nil || !cmp.Equal(found.Conversations, []string{"c"}) {
		t.Fatalf("ConversationsByPhone = %+v, %v", found, err)
	}
	if left, err := a.PhoneRows(ctx, "6281234567"); err != nil || left["messages"] != 1 {
		t.Fatalf("PhoneRows = %v, %v", left, err)
	}
	queries := 0
	for _, e := range logs.All() {
		line := e.Message
		for k, v := range e.ContextMap() {
			line += " " + k + "=" + fmt.Sprint(v)
			if k == "query" {
				queries++
			}
		}
		if strings.Contains(line, "6281234567") || strings.Contains(line, "812-345-67") {
			t.Errorf("a log entry holds the phone number: %s", line)
		}
	}
	if queries == 0 {
		t.Fatal("the driver logged no query: the test sees nothing")
	}
}
