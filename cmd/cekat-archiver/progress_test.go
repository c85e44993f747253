package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/cekat-archiver/cekat-archiver/syncer"
)

// The progress line tells conversations and messages done of those known,
// the history complete of the tracked, a rate, and the time left in the
// phase at the pace of the phase so far (the backfill's capped by its
// limit).
func TestProgressLine(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	m := &progressMeter{backfillMax: 4 * time.Minute}
	s := progressSnapshot{Phase: "new messages", Conversations: 300, Tracked: 300, HistoryComplete: 12}
	if st := m.observe(s, t0); st.ETA >= 0 || !strings.Contains(st.String(), "conversations 0/300") || strings.Contains(st.String(), "ETA") {
		t.Errorf("at the start: %q (ETA %v); want no estimate yet", st.String(), st.ETA)
	}
	s.Done, s.Found, s.Archived, s.HistoryComplete = 100, 1500, 1200, 88
	st := m.observe(s, t0.Add(time.Minute))
	want := "new messages: conversations 100/300; messages 1200/1500 found; history complete 88/300; 20.0 msg/s; ETA 2m0s"
	if st.String() != want {
		t.Errorf("line\n%q, want\n%q", st.String(), want)
	}
	// Under a daily cap: what is enriched, what waits, and how long the wait lasts at least.
	capped := &progressMeter{perDay: 1000}
	capped.observe(progressSnapshot{Phase: "new messages", Conversations: 300, Tracked: 300, HistoryComplete: 12}, t0)
	s.Enriched, s.Waiting = 300, 900
	st = capped.observe(s, t0.Add(time.Minute))
	want = "new messages: conversations 100/300; messages 1200/1500 found; history complete 88/300; enriched 300, waiting 900 (0.9 days at 1000 a day, at least); 20.0 msg/s; ETA 2m0s"
	if st.String() != want {
		t.Errorf("capped line\n%q, want\n%q", st.String(), want)
	}
	// Backfill: 10 of 40 conversations in a minute would take 3 more
	// minutes, but the phase stops after 4 in all.
	s = progressSnapshot{Phase: "backfill", Backlog: 40, Archived: 2400, Found: 2400, Tracked: 300, HistoryComplete: 120}
	m.observe(s, t0.Add(2*time.Minute))
	s.BackfillDone = 10
	if st := m.observe(s, t0.Add(3*time.Minute)); st.ETA != 3*time.Minute {
		t.Errorf("backfill ETA %v, want 3m", st.ETA)
	}
	s.BackfillDone = 12
	if st := m.observe(s, t0.Add(5*time.Minute)); st.ETA != time.Minute || !strings.Contains(st.String(), "backfill: conversations 12/40") {
		t.Errorf("backfill: %q; want the ETA capped at the phase's limit, 1m", st.String())
	}
	if st := m.observe(progressSnapshot{Phase: "re-checks"}, t0.Add(6*time.Minute)); st.ETA >= 0 {
		t.Errorf("re-checks ETA %v, want none", st.ETA)
	}
}

// The run's log line and summary count the conversations skipped as
// unchanged by the conversation list.
func TestRunLogCountsUnchanged(t *testing.T) {
	core, logs := observer.New(zap.InfoLevel)
	sum := syncer.Summary{RunID: "r1", Conversations: 3, Synced: 3, Listed: 50, Unchanged: 47, NotDue: 2}
	logSummary(zap.New(core), sum)
	f := logs.FilterMessage("sync run finished").All()
	if len(f) != 1 || f[0].ContextMap()["unchanged"] != int64(47) || f[0].ContextMap()["listed"] != int64(50) ||
		f[0].ContextMap()["not_due"] != int64(2) {
		t.Errorf("run log: %v", logs.All())
	}
	var out bytes.Buffer
	printSummary(&out, sum)
	if !strings.Contains(out.String(), "not due 2; unchanged 47)") {
		t.Errorf("summary:\n%s", out.String())
	}
}
