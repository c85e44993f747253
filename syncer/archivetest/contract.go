package archivetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/cekat-archiver/cekat-archiver/sink"
)

// Contract runs, against archives from open, every rule of the archive that
// the engine, the purge and erasure rely on: the ordering of rows before
// state, versions, lookups, the re-check schedule, quarantine, tracking,
// runs, and purge's and erasure's reads and writes. Each subtest opens an
// archive of its own. A rule the engine comes to rely on gets a subtest
// here, so that both archives are held to it.
func Contract(t *testing.T, open Opener) {
	for _, c := range []struct {
		name string
		test func(t *testing.T, a Archive)
	}{
		{"RowsBeforeState", contractRowsBeforeState},
		{"FailedFlushKeepsEverything", contractFailedFlush},
		{"NewestVersionWins", contractVersions},
		{"Lookups", contractLookups},
		{"Schedule", contractSchedule},
		{"Quarantine", contractQuarantine},
		{"TrackedAndRuns", contractTrackedAndRuns},
		{"SweepMark", contractSweepMark},
		{"PurgeSummaries", contractSummaries},
		{"Audit", contractAudit},
		{"Erase", contractErase},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			c.test(t, open(t))
		})
	}
}

// base is a whole second, so that times compare equal whatever the
// archive's precision (ClickHouse keeps seconds, and nanoseconds only of a
// message's send time and a head's).
var base = time.Date(2026, 11, 2, 8, 0, 0, 0, time.UTC)

func at(minutes int) time.Time { return base.Add(time.Duration(minutes) * time.Minute) }

func ptr(t time.Time) *time.Time { return &t }

// message is a row with every field set.
func message(conv, id string, minute int, version uint64) sink.MessageRow {
	return sink.MessageRow{ConversationID: conv, MessageID: id, Direction: "outbound", Type: "text", Status: "delivered",
		Text: "text of " + id, MediaURL: "https://x/" + id, Caption: "caption", Filename: "file.pdf", SenderName: "Agent",
		SenderPhone: "+62 812-3456-7890", SenderID: "u1", SenderType: "agent", SenderRole: sink.RoleAgent,
		RecipientPhone: "628111222333", ReplyTo: "m0", IsTemplate: true,
		SentAt:      at(minute).Add(123456789 * time.Nanosecond),
		DeliveredAt: ptr(at(minute + 1)), ReadAt: nil, UpdatedAt: ptr(at(minute + 1)), Enriched: true,
		Raw: `{"id":"` + id + `"}`, DetailRaw: `{"data":{"id":"` + id + `"}}`, FetchedAt: at(minute + 2), Version: version}
}

func state(conv string, version uint64) sink.State {
	return sink.State{ConversationID: conv, HeadMessageID: "m3", HeadSentAt: at(3).Add(5 * time.Nanosecond),
		Gaps: []sink.Gap{{Before: "m1", Stop: ""}}, LastAttemptAt: at(10), LastSuccessAt: at(10), LastError: "",
		NextDueAt: at(15), IdleRuns: 2, UpdatedAt: at(10), Version: version}
}

var ctx = context.Background()

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func states(t *testing.T, a Archive) map[string]sink.State {
	t.Helper()
	st, err := a.LoadStates(ctx)
	must(t, err)
	return st
}

func archived(t *testing.T, a Archive, conv string, ids ...string) map[string]sink.ArchivedMessage {
	t.Helper()
	got, err := a.Archived(ctx, conv, ids)
	must(t, err)
	return got
}

var equateEmpty = cmpopts.EquateEmpty()

// A state is stored only with or after the rows queued before it: never is
// a state visible whose rows are not.
func contractRowsBeforeState(t *testing.T, a Archive) {
	rows := []sink.MessageRow{message("c1", "m1", 1, 1), message("c1", "m2", 2, 1), message("c1", "m3", 3, 1)}
	must(t, a.AddMessages(ctx, rows...))
	check := sink.StatusCheck{ConversationID: "c1", MessageID: "m3", SentAt: at(3), Until: at(60 * 24), CheckedAt: at(4),
		NextCheckAt: at(9), Checks: 1, Open: true, Version: 1}
	must(t, a.AddChecks(ctx, check))
	must(t, a.AddState(ctx, state("c1", 1)))
	purged := state("c2", 4)
	purged.Gone, purged.BackfillComplete, purged.LastError, purged.PurgedAt, purged.Gaps = true, true, "HTTP 404", at(20), nil
	must(t, a.AddState(ctx, purged))
	if st, ok := states(t, a)["c1"]; ok {
		if n := len(archived(t, a, "c1", "m1", "m2", "m3")); n != 3 {
			t.Fatalf("state %+v stored with %d of its 3 rows", st, n)
		}
	}
	must(t, a.Flush(ctx))
	if diff := cmp.Diff(map[string]sink.State{"c1": state("c1", 1), "c2": purged}, states(t, a), equateEmpty); diff != "" {
		t.Errorf("states after the flush (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(rows, a.Messages()); diff != "" {
		t.Errorf("messages after the flush (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]sink.StatusCheck{"c1/m3": check}, a.Checks()); diff != "" {
		t.Errorf("schedule after the flush (-want +got):\n%s", diff)
	}
	// Nothing queued: a flush writes nothing, and does not fail.
	must(t, a.Flush(ctx))
}

// A flush that fails keeps every queued write, and the next one stores it.
func contractFailedFlush(t *testing.T, a Archive) {
	must(t, a.AddMessages(ctx, message("c1", "m1", 1, 1)))
	must(t, a.AddState(ctx, state("c1", 1)))
	a.SetFailWrites(errors.New("archive down"))
	failCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err := a.Flush(failCtx)
	runErr := a.SaveRun(failCtx, sink.RunRow{RunID: "r1", StartedAt: at(1), FinishedAt: at(2), Result: "ok"})
	cancel()
	a.SetFailWrites(nil)
	if err == nil {
		t.Fatal("a flush while the archive is down succeeded")
	}
	if runErr == nil {
		t.Error("a run saved while the archive is down")
	}
	if _, ok := states(t, a)["c1"]; ok {
		t.Fatal("a failed flush stored the state")
	}
	must(t, a.Flush(ctx))
	if n := len(a.Messages()); n != 1 {
		t.Errorf("%d messages after the repaired flush, want 1", n)
	}
	if _, ok := states(t, a)["c1"]; !ok {
		t.Error("the repaired flush did not store the state")
	}
}

// Of several versions of a row, the newest is current, whatever the order
// they were written in, in one flush or several.
func contractVersions(t *testing.T, a Archive) {
	newer := message("c1", "m1", 1, 2)
	newer.Status, newer.ReadAt = "read", ptr(at(5))
	older := message("c1", "m1", 1, 1)
	must(t, a.AddMessages(ctx, newer))
	must(t, a.AddState(ctx, state("c1", 2)))
	must(t, a.AddConversations(ctx, sink.ConversationRow{ConversationID: "c1", ContactName: "new", ListedAt: at(2), Version: 2}))
	must(t, a.Flush(ctx))
	must(t, a.AddMessages(ctx, older, message("c1", "m2", 2, 1), message("c1", "m2", 2, 3)))
	stale := state("c1", 1)
	stale.HeadMessageID = "stale"
	must(t, a.AddState(ctx, stale))
	must(t, a.AddConversations(ctx, sink.ConversationRow{ConversationID: "c1", ContactName: "old", ListedAt: at(1), Version: 1}))
	must(t, a.Flush(ctx))

	m2 := message("c1", "m2", 2, 3)
	if diff := cmp.Diff([]sink.MessageRow{newer, m2}, a.Messages()); diff != "" {
		t.Errorf("current messages (-want +got):\n%s", diff)
	}
	cur, err := a.CurrentMessages(ctx, "c1", []string{"m1", "m2", "absent"})
	must(t, err)
	slices.SortFunc(cur, func(x, y sink.MessageRow) int { return cmpString(x.MessageID, y.MessageID) })
	if diff := cmp.Diff([]sink.MessageRow{newer, m2}, cur); diff != "" {
		t.Errorf("CurrentMessages (-want +got):\n%s", diff)
	}
	if got := states(t, a)["c1"]; got.Version != 2 || got.HeadMessageID != "m3" {
		t.Errorf("state after an older version was written: %+v", got)
	}
	convs, err := a.Conversations(ctx)
	must(t, err)
	if got := convs["c1"]; got.Version != 2 || got.ContactName != "new" {
		t.Errorf("conversation after an older version was written: %+v", got)
	}
	got := archived(t, a, "c1", "m1")["m1"]
	if got.Status != "read" || !got.Enriched || got.UpdatedAt == nil || !got.UpdatedAt.Equal(at(2)) {
		t.Errorf("Archived of a message with two versions: %+v, want the newest's status", got)
	}
}

func cmpString(x, y string) int {
	switch {
	case x < y:
		return -1
	case x > y:
		return 1
	}
	return 0
}

// Lookups answer of the conversation asked about, from stored rows only.
func contractLookups(t *testing.T, a Archive) {
	plain := message("c1", "m2", 2, 1)
	plain.Enriched, plain.UpdatedAt, plain.Status = false, nil, "sent"
	must(t, a.AddMessages(ctx, message("c1", "m1", 1, 1), plain, message("c2", "x1", 30, 1)))
	if got := archived(t, a, "c1", "m1"); len(got) != 0 {
		t.Errorf("Archived sees queued rows: %v", got)
	}
	must(t, a.Flush(ctx))
	want := map[string]sink.ArchivedMessage{
		"m1": {Status: "delivered", UpdatedAt: ptr(at(2)), Enriched: true},
		"m2": {Status: "sent"},
	}
	if diff := cmp.Diff(want, archived(t, a, "c1", "m1", "m2", "x1", "absent")); diff != "" {
		t.Errorf("Archived (-want +got):\n%s", diff)
	}
	if got := archived(t, a, "c1"); len(got) != 0 {
		t.Errorf("Archived of no ids: %v", got)
	}
	convs, err := a.ConversationsArchived(ctx, []string{"c1", "c3"})
	must(t, err)
	if diff := cmp.Diff(map[string]bool{"c1": true}, convs, equateEmpty); diff != "" {
		t.Errorf("ConversationsArchived (-want +got):\n%s", diff)
	}
	cur, err := a.CurrentMessages(ctx, "c2", []string{"m1", "x1"})
	must(t, err)
	if len(cur) != 1 || cur[0].MessageID != "x1" {
		t.Errorf("CurrentMessages of c2: %+v", cur)
	}
	// Sent after t, compared in whole seconds: m1 is sent 0.12 s after
	// minute 1, which is not after minute 1.
	for _, c := range []struct {
		t    time.Time
		want uint64
	}{{at(0), 2}, {at(1), 1}, {at(1).Add(500 * time.Millisecond), 1}, {at(2), 0}} {
		n, err := a.NewerThan(ctx, "c1", c.t)
		must(t, err)
		if n != c.want {
			t.Errorf("NewerThan(%v) = %d, want %d", c.t, n, c.want)
		}
	}
}

// DueChecks returns the open entries due, the most overdue first, up to
// the limit, as their newest version has them; an entry's until never
// moves earlier.
func contractSchedule(t *testing.T, a Archive) {
	entry := func(id string, next int, open bool, version uint64) sink.StatusCheck {
		return sink.StatusCheck{ConversationID: "c1", MessageID: id, SentAt: at(0), Until: at(600), CheckedAt: at(0),
			NextCheckAt: at(next), Checks: uint16(version), Open: open, Version: version}
	}
	expired := entry("expired", 10, true, 1)
	expired.Until = at(50)
	must(t, a.AddChecks(ctx, entry("late", 30, true, 1), entry("early", 20, true, 1), entry("closed", 10, false, 1),
		entry("moved", 10, true, 1), entry("future", 200, true, 1), expired, entry("reopened", 10, false, 1)))
	must(t, a.Flush(ctx))
	must(t, a.AddChecks(ctx, entry("moved", 300, true, 2), entry("reopened", 25, true, 2)))
	must(t, a.Flush(ctx))
	due, err := a.DueChecks(ctx, at(100), 10)
	must(t, err)
	var ids []string
	for _, c := range due {
		ids = append(ids, c.MessageID)
	}
	if want := []string{"early", "reopened", "late"}; !slices.Equal(ids, want) {
		t.Errorf("due at minute 100: %v, want %v", ids, want)
	}
	if len(due) > 0 && !cmp.Equal(due[0], entry("early", 20, true, 1)) {
		t.Errorf("a due entry as read: %+v", due[0])
	}
	due, err = a.DueChecks(ctx, at(100), 2)
	must(t, err)
	if len(due) != 2 || due[0].MessageID != "early" || due[1].MessageID != "reopened" {
		t.Errorf("due with limit 2: %+v", due)
	}
	// A version with an earlier until does not shorten the entry.
	shorter := entry("late", 30, true, 2)
	shorter.Until = at(60)
	must(t, a.AddChecks(ctx, shorter))
	must(t, a.Flush(ctx))
	if got := a.Checks()["c1/late"]; !got.Until.Equal(at(600)) || got.Version != 2 {
		t.Errorf("entry after a version with an earlier until: %+v", got)
	}
}

// A record is quarantined once: by its message id when it has one (its
// content may change between answers), else by its content.
func contractQuarantine(t *testing.T, a Archive) {
	q := func(id, raw string) sink.QuarantineRow {
		return sink.QuarantineRow{ReceivedAt: at(1), RunID: "r1", Endpoint: "list", ConversationID: "c1", MessageID: id,
			Error: "bad", Raw: raw}
	}
	n, err := a.AddQuarantine(ctx, q("m1", `{"a":1}`), q("m1", `{"a":2}`), q("", `{"b":1}`))
	must(t, err)
	if n != 2 {
		t.Errorf("first records quarantined: %d, want 2", n)
	}
	must(t, a.Flush(ctx))
	n, err = a.AddQuarantine(ctx, q("m1", `{"a":3}`), q("", `{"b":1}`), q("", `{"b":2}`))
	must(t, err)
	if n != 1 {
		t.Errorf("records quarantined again: %d, want 1 (the new content)", n)
	}
	must(t, a.Flush(ctx))
	got := a.Quarantine()
	var raws []string
	for _, r := range got {
		raws = append(raws, r.MessageID+" "+r.Raw)
	}
	slices.Sort(raws)
	if want := []string{` {"b":1}`, ` {"b":2}`, `m1 {"a":1}`}; !slices.Equal(raws, want) {
		t.Errorf("quarantine holds %q, want %q", raws, want)
	}
}

func contractTrackedAndRuns(t *testing.T, a Archive) {
	a.Track("c2", "c1")
	a.Track("c1")
	ids, err := a.TrackedConversations(ctx)
	must(t, err)
	if want := []string{"c1", "c2"}; !slices.Equal(ids, want) {
		t.Errorf("tracked: %v, want %v", ids, want)
	}
	run := sink.RunRow{RunID: "r1", Kind: sink.RunSync, Shard: "0/2", StartedAt: at(1), FinishedAt: at(2), Result: sink.RunRunning,
		Requests: 50, Version: 1}
	must(t, a.SaveRun(ctx, run))
	// A later version of the run replaces it; an older one written late does not.
	older := run
	run = sink.RunRow{RunID: "r1", Kind: sink.RunSync, Shard: "0/2", StartedAt: at(1), FinishedAt: at(2), Result: "partial", Conversations: 3,
		NewMessages: 4, Enriched: 5, Rechecked: 6, Quarantined: 7, Requests: 8, Error: "budget", Version: 2}
	must(t, a.SaveRun(ctx, run))
	must(t, a.SaveRun(ctx, older))
	if diff := cmp.Diff([]sink.RunRow{run}, a.Runs()); diff != "" {
		t.Errorf("runs (-want +got):\n%s", diff)
	}
}

// The inbox sweep's mark: none until saved, then the highest version of
// its scope, with the nanoseconds of its times; scopes apart.
func contractSweepMark(t *testing.T, a Archive) {
	if _, ok, err := a.LoadSweep(ctx, "|"); err != nil || ok {
		t.Fatalf("LoadSweep of an empty archive: ok %v, err %v; want none", ok, err)
	}
	m := sink.SweepMark{Scope: "|", Mark: at(5).Add(7 * time.Millisecond), ChainStart: at(1).Add(9 * time.Nanosecond),
		Order: "newest first by created_at", UpdatedAt: at(6), Version: 2}
	must(t, a.SaveSweep(ctx, m))
	older := m
	older.Mark, older.Version = at(4), 1
	must(t, a.SaveSweep(ctx, older))
	must(t, a.SaveSweep(ctx, sink.SweepMark{Scope: "0/2|inbox", Mark: at(9), Version: 3}))
	got, ok, err := a.LoadSweep(ctx, "|")
	must(t, err)
	if diff := cmp.Diff(m, got); !ok || diff != "" {
		t.Errorf("sweep mark (ok %v; -want +got):\n%s", ok, diff)
	}
}

// What the purge reads of each conversation: its messages, newest send
// time (whole seconds) and messages left unenriched for a reason that may
// pass, as their newest version has it; oldest first.
func contractSummaries(t *testing.T, a Archive) {
	transient := message("old", "o2", 2, 1)
	transient.Enriched, transient.EnrichError = false, "transient: 503"
	repaired := message("old", "o3", 3, 1)
	repaired.Enriched, repaired.EnrichError = false, "transient: timeout"
	permanent := message("older", "p1", 1, 1)
	permanent.Enriched, permanent.EnrichError = false, "permanent: 404"
	must(t, a.AddMessages(ctx, message("old", "o1", 1, 1), transient, repaired, message("old", "o3", 3, 2), permanent,
		message("new", "n1", 500, 1)))
	must(t, a.Flush(ctx))
	old := sink.ConversationSummary{ConversationID: "old", Archived: 3, NewestSentAt: at(3), TransientUnenriched: 1}
	older := sink.ConversationSummary{ConversationID: "older", Archived: 1, NewestSentAt: at(1)}
	newer := sink.ConversationSummary{ConversationID: "new", Archived: 1, NewestSentAt: at(500)}
	for _, c := range []struct {
		only   []string
		before time.Time
		want   []sink.ConversationSummary
	}{
		{nil, at(100), []sink.ConversationSummary{older, old}},
		{nil, at(1), nil},
		{[]string{"new", "old", "absent"}, at(0), []sink.ConversationSummary{old, newer}},
	} {
		got, err := a.ConversationSummaries(ctx, c.only, c.before)
		must(t, err)
		if diff := cmp.Diff(c.want, got, equateEmpty); diff != "" {
			t.Errorf("ConversationSummaries(%v, %v) (-want +got):\n%s", c.only, c.before, diff)
		}
	}
}

// Audit rows are stored at once; a fact written twice is one row; an
// intent with no outcome in its run is unresolved.
func contractAudit(t *testing.T, a Archive) {
	row := func(conv, run, action, event string, minute int) sink.AuditRow {
		return sink.AuditRow{At: at(minute), RunID: run, Action: action, Event: event, ConversationID: conv,
			ArchivedMessages: 3, NewestSentAt: at(0), Reason: "past retention", Operator: "op", OperatorReason: "why"}
	}
	must(t, a.AddAudit(ctx,
		row("c1", "r1", sink.AuditPurge, sink.EventIntent, 1),
		row("c1", "r1", sink.AuditPurge, sink.EventDeleted, 2),
		row("c2", "r1", sink.AuditPurge, sink.EventIntent, 1),
		row("c3", "r0", sink.AuditPurge, sink.EventIntent, 0),
		row("c4", "r1", sink.AuditErase, sink.EventIntent, 1),
	))
	must(t, a.AddAudit(ctx, row("c2", "r1", sink.AuditPurge, sink.EventIntent, 1)))
	all, err := a.AuditRows(ctx, "")
	must(t, err)
	var got []string
	for _, r := range all {
		got = append(got, fmt.Sprintf("%d %s %s %s", int(r.At.Sub(base).Minutes()), r.ConversationID, r.RunID, r.Event))
	}
	want := []string{"0 c3 r0 intent", "1 c1 r1 intent", "1 c2 r1 intent", "1 c4 r1 intent", "2 c1 r1 deleted"}
	if !slices.Equal(got, want) {
		t.Errorf("audit rows: %q, want %q", got, want)
	}
	one, err := a.AuditRows(ctx, "c1")
	must(t, err)
	if len(one) != 2 || !cmp.Equal(one[0], row("c1", "r1", sink.AuditPurge, sink.EventIntent, 1)) {
		t.Errorf("audit rows of c1: %+v", one)
	}
	open, err := a.UnresolvedIntents(ctx, sink.AuditPurge)
	must(t, err)
	got = nil
	for _, r := range open {
		got = append(got, r.ConversationID+" "+r.RunID)
		if r.Action != sink.AuditPurge || r.Event != sink.EventIntent || r.ArchivedMessages != 3 || r.Operator != "op" ||
			r.OperatorReason != "why" || !r.NewestSentAt.Equal(at(0)) {
			t.Errorf("unresolved intent as read: %+v", r)
		}
	}
	if want := []string{"c3 r0", "c2 r1"}; !slices.Equal(got, want) {
		t.Errorf("unresolved purge intents: %v, want %v (oldest first)", got, want)
	}
}

// Erasure finds a conversation's rows in every table, by id or by phone,
// and removes them all, queued ones too, leaving other conversations'.
func contractErase(t *testing.T, a Archive) {
	must(t, a.AddMessages(ctx, message("c1", "m1", 1, 1), message("c1", "m2", 2, 1), message("c2", "x1", 3, 1)))
	_, err := a.AddQuarantine(ctx, sink.QuarantineRow{ReceivedAt: at(1), ConversationID: "c1", Endpoint: "list", Raw: "{}"})
	must(t, err)
	// An answer quarantined before its conversation was known names only
	// its message (m2 of c1), and in its raw body the contact's number.
	_, err = a.AddQuarantine(ctx, sink.QuarantineRow{ReceivedAt: at(1), MessageID: "m2", Endpoint: "detail",
		Raw: `{"id":"m2","phone":"6289900001110"}`})
	must(t, err)
	must(t, a.AddChecks(ctx, sink.StatusCheck{ConversationID: "c1", MessageID: "m1", SentAt: at(1), Until: at(600),
		NextCheckAt: at(5), Open: true, Version: 1}))
	must(t, a.AddConversations(ctx, sink.ConversationRow{ConversationID: "c1", ContactPhone: "+62 899 0000 111", Version: 1},
		sink.ConversationRow{ConversationID: "c2", Version: 1}))
	must(t, a.AddState(ctx, state("c1", 1)))
	must(t, a.AddState(ctx, state("c2", 1)))
	must(t, a.Flush(ctx))
	a.Track("c1", "c2")

	tables, err := a.ConversationTables(ctx)
	must(t, err)
	for _, want := range []string{"conversations", "messages", "quarantine", "status_checks", "sync_state", "tracked_conversations"} {
		if !slices.Contains(tables, want) {
			t.Errorf("conversation tables %v lack %s", tables, want)
		}
	}
	if slices.Contains(tables, sink.AuditTable) {
		t.Errorf("conversation tables %v hold the audit table", tables)
	}
	msgs, err := a.ConversationMessages(ctx, tables, []string{"c1", "c3"})
	must(t, err)
	if want := map[string]string{"m1": "c1", "m2": "c1"}; !cmp.Equal(msgs, want) {
		t.Errorf("messages of c1 and c3: %v, want %v", msgs, want)
	}
	scope := sink.EraseScope{Tables: tables, Conversations: []string{"c1", "c2", "c3"}, Messages: msgs}
	rows, err := a.ConversationRows(ctx, scope)
	must(t, err)
	wantC1 := map[string]uint64{"messages": 2, "quarantine": 2, "status_checks": 1, "conversations": 1, "sync_state": 1,
		"tracked_conversations": 1}
	for table, n := range wantC1 {
		if rows["c1"][table] != n {
			t.Errorf("rows of c1 in %s: %d, want %d (all: %v)", table, rows["c1"][table], n, rows["c1"])
		}
	}
	if len(rows["c3"]) != 0 {
		t.Errorf("rows of a conversation never written: %v", rows["c3"])
	}

	for _, phone := range []string{"6281234567890", "+62 812 3456 7890", "62899-0000-111"} {
		match, err := a.ConversationsByPhone(ctx, phone)
		must(t, err)
		want := sink.PhoneMatch{Conversations: []string{"c1", "c2"}, Messages: []string{}} // every message of the suite names the first number
		if phone == "62899-0000-111" {
			want = sink.PhoneMatch{Conversations: []string{"c1"}, Messages: []string{"m2"}}
		}
		if !cmp.Equal(match, want) {
			t.Errorf("ConversationsByPhone(%q) = %+v, want %+v", phone, match, want)
		}
	}
	for _, bad := range []string{"12345", "62812abc999"} {
		if _, err := a.ConversationsByPhone(ctx, bad); err == nil {
			t.Errorf("ConversationsByPhone(%q) is not an error", bad)
		}
	}
	naming, err := a.PhoneRows(ctx, "62899-0000-111")
	must(t, err)
	if want := map[string]uint64{"conversations": 1, "quarantine": 1}; !cmp.Equal(naming, want) {
		t.Errorf("rows naming the contact's number: %v, want %v", naming, want)
	}

	// A row queued when the deletion starts is removed too.
	must(t, a.AddMessages(ctx, message("c1", "m3", 3, 1)))
	c1 := sink.EraseScope{Tables: tables, Conversations: []string{"c1"}, Messages: msgs}
	must(t, a.DeleteConversationRows(ctx, c1))
	rows, err = a.ConversationRows(ctx, sink.EraseScope{Tables: tables, Conversations: []string{"c1", "c2"}, Messages: msgs})
	must(t, err)
	if len(rows["c1"]) != 0 {
		t.Errorf("rows of c1 left after its deletion: %v", rows["c1"])
	}
	naming, err = a.PhoneRows(ctx, "62899-0000-111")
	must(t, err)
	if len(naming) != 0 {
		t.Errorf("rows naming the contact's number after c1's deletion: %v", naming)
	}
	if rows["c2"]["messages"] != 1 || rows["c2"]["sync_state"] != 1 {
		t.Errorf("rows of c2 after c1's deletion: %v", rows["c2"])
	}
	if _, ok := states(t, a)["c1"]; ok {
		t.Error("c1's state is left after its deletion")
	}
	ids, err := a.TrackedConversations(ctx)
	must(t, err)
	if !slices.Equal(ids, []string{"c2"}) {
		t.Errorf("tracked after c1's deletion: %v", ids)
	}
}
