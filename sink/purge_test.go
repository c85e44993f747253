package sink_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/cekat-archiver/cekat-archiver/sink"
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
		if err := a.AddMessages(ctx, purgeMsgRow(conv, "m1", now, "", 1), purgeMsgRow(conv, "m1", now, "", 2)); err != nil {
			t.Fatal(err)
		}
		if _, err := a.AddQuarantine(ctx, sink.QuarantineRow{ReceivedAt: now, ConversationID: conv, Raw: "{bad"}); err != nil {
			t.Fatal(err)
		}
		if err := a.AddChecks(ctx, sink.StatusCheck{ConversationID: conv, MessageID: "m1", SentAt: now, Until: now.Add(time.Hour), Open: true, Version: 1}); err != nil {
			t.Fatal(err)
		}
		if err := a.AddState(ctx, sink.State{ConversationID: conv, Version: 1}); err != nil {
			t.Fatal(err)
		}
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
	for _, want := range []string{"messages", "quarantine", "status_checks", "sync_state", "tracked_conversations"} {
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
	if err != nil || len(byPhone) != 0 {
		t.Errorf("a number of other digits found %v, %v; want none", byPhone, err)
	}
	byPhone, err = a.ConversationsByPhone(ctx, "6281234567")
	if err != nil || !cmp.Equal(byPhone, []string{"gone", "kept"}) {
		t.Errorf("ConversationsByPhone = %v, %v; want both conversations", byPhone, err)
	}
	if _, err := a.ConversationsByPhone(ctx, "12"); err == nil {
		t.Error("a phone number of two digits was accepted")
	}

	counts, err := a.ConversationRows(ctx, tables, []string{"gone"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]map[string]uint64{"gone": {"message_index": 2, "messages": 2, "quarantine": 1, "status_checks": 1, "sync_state": 1, "tracked_conversations": 1}}
	if diff := cmp.Diff(want, counts); diff != "" {
		t.Errorf("rows before (-want +got):\n%s", diff)
	}
	if err := a.DeleteConversationRows(ctx, tables, []string{"gone"}); err != nil {
		t.Fatal(err)
	}
	counts, err = a.ConversationRows(ctx, tables, []string{"gone", "kept"})
	if err != nil {
		t.Fatal(err)
	}
	if len(counts["gone"]) != 0 || counts["kept"]["messages"] != 2 || counts["kept"]["sync_state"] != 1 {
		t.Errorf("rows after erasing gone: %v; want none of gone, all of kept", counts)
	}
	if rows, err := a.AuditRows(ctx, "gone"); err != nil || len(rows) != 1 {
		t.Errorf("audit rows of the erased conversation: %v, %v; want its intent kept", rows, err)
	}
}
