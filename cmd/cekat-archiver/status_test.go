package main

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cekat-archiver/cekat-archiver/sink"
	"github.com/cekat-archiver/cekat-archiver/sink/sinktest"
)

func statusRows() []sink.ConversationStatus {
	at := time.Date(2025, 3, 27, 15, 0, 0, 0, time.UTC)
	long := "cekat list: HTTP 503: " + strings.Repeat("upstream said no. ", 20)
	return []sink.ConversationStatus{
		{State: sink.State{ConversationID: "done", BackfillComplete: true, LastSuccessAt: at, NextDueAt: at.Add(time.Hour)},
			Archived: 10, NewestSentAt: at},
		{State: sink.State{ConversationID: "backfilling", Gaps: []sink.Gap{{Before: "m9"}}}, Archived: 5},
		{State: sink.State{ConversationID: "failing", BackfillComplete: true, LastError: long}, Archived: 7},
		{State: sink.State{ConversationID: "gone", Gone: true, BackfillComplete: true}},
		{State: sink.State{ConversationID: "purged", Gone: true, BackfillComplete: true, PurgedAt: at}, Archived: 3},
	}
}

func TestStatusTableHasTotalsZonesAndLongErrors(t *testing.T) {
	var out bytes.Buffer
	if err := printStatus(&out, statusRows(), 0); err != nil {
		t.Fatal(err)
	}
	s := out.String()
	for _, want := range []string{"2025-03-27T15:00:00Z", "2025-03-27T16:00:00Z", "purged 2025-03-27T15:00:00Z",
		"upstream said no. upstream said no. upstream said no. upstream said no. upstream said no. upstream said no.",
		"TOTAL 5", "25", "2 lagging, 1 gone, 1 purged", "1 failing"} {
		if !strings.Contains(s, want) {
			t.Errorf("status lacks %q:\n%s", want, s)
		}
	}
}

func TestStatusJSONAndLagging(t *testing.T) {
	rows := slices.DeleteFunc(statusRows(), func(r sink.ConversationStatus) bool { return !needsAttention(r) })
	var ids []string
	for _, r := range rows {
		ids = append(ids, r.ConversationID)
	}
	if want := []string{"backfilling", "failing", "gone"}; !slices.Equal(ids, want) {
		t.Errorf("--lagging keeps %v, want %v", ids, want)
	}

	var out bytes.Buffer
	if err := printStatusJSON(&out, statusRows(), 0); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Conversations []map[string]any `json:"conversations"`
		Totals        map[string]int   `json:"totals"`
	}
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out.String())
	}
	if len(got.Conversations) != 5 || got.Totals["archived"] != 25 || got.Totals["lagging"] != 2 || got.Totals["gone"] != 1 ||
		got.Totals["purged"] != 1 || got.Totals["failing"] != 1 {
		t.Errorf("JSON: %+v", got)
	}
	first, failing := got.Conversations[0], got.Conversations[2]
	if first["newest_sent_at"] != "2025-03-27T15:00:00Z" || got.Conversations[1]["newest_sent_at"] != nil {
		t.Errorf("times: %v and %v; want RFC 3339 in UTC, null when never", first["newest_sent_at"], got.Conversations[1]["newest_sent_at"])
	}
	if e, _ := failing["last_error"].(string); !strings.HasSuffix(e, "upstream said no. ") || failing["lagging"] != true {
		t.Errorf("failing conversation: %v; want its whole error, and lagging", failing)
	}
}

// status on a database that was never migrated says to migrate.
func TestStatusAsksForMigrate(t *testing.T) {
	addr := sinktest.Addr(t)
	cliEnv(t, "CEKAT_ARCHIVER_API_BASE_URL", "http://127.0.0.1:1", "CEKAT_ARCHIVER_API_KEY", "k",
		"CEKAT_ARCHIVER_CLICKHOUSE_ADDR", addr, "CEKAT_ARCHIVER_CLICKHOUSE_DATABASE", sinktest.FreshDatabase(t))
	var out, errOut bytes.Buffer
	if code := run([]string{"status"}, &out, &errOut); code != 1 {
		t.Fatalf("exit %d, want 1; stderr %q", code, errOut.String())
	}
	if !strings.Contains(errOut.String(), "run `cekat-archiver migrate`") {
		t.Errorf("stderr %q does not say to migrate", errOut.String())
	}
}

// status says per conversation and in total what is archived, enriched and
// waiting, and how long the backlog takes at the daily cap.
func TestStatusShowsTheEnrichmentBacklog(t *testing.T) {
	rows := []sink.ConversationStatus{
		{State: sink.State{ConversationID: "a", BackfillComplete: true}, Archived: 3000, Enriched: 1000, Waiting: 2000},
		{State: sink.State{ConversationID: "b", BackfillComplete: true}, Archived: 600, Enriched: 500, Waiting: 100},
	}
	var out bytes.Buffer
	if err := printStatus(&out, rows, 500); err != nil {
		t.Fatal(err)
	}
	s := out.String()
	for _, want := range []string{"ENRICHED\tWAITING", "3600", "1500", "2100", "2100 messages archived from the list wait",
		"at least 4.2 days at api.rate_limit.per_day 500"} {
		if !strings.Contains(strings.Join(strings.Fields(s), "\t"), strings.Join(strings.Fields(want), "\t")) {
			t.Errorf("status lacks %q:\n%s", want, s)
		}
	}
	out.Reset()
	if err := printStatusJSON(&out, rows, 500); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Conversations []map[string]any `json:"conversations"`
		Totals        map[string]any   `json:"totals"`
	}
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if got.Totals["enriched"] != 1500.0 || got.Totals["waiting"] != 2100.0 || got.Totals["waiting_days_at_least"] != 4.2 ||
		got.Conversations[0]["waiting"] != 2000.0 {
		t.Errorf("JSON: %+v", got)
	}
}
