package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"text/tabwriter"
	"time"

	"go.uber.org/zap"

	"github.com/cekat-archiver/cekat-archiver/sink"
	"github.com/cekat-archiver/cekat-archiver/syncer"
)

type statusCmd struct {
	Output  string `help:"table (for people) or json (for scripts: every field, whole errors)." enum:"table,json" default:"table" short:"o"`
	Lagging bool   `help:"Only the conversations that need attention: never synced, history not complete, a failed last sync, or gone upstream. Exits 3 when some lag (all but the gone ones), 0 when none do, 1 when the archive cannot be read."`
}

// exitLagging is the exit code of status --lagging when some conversations lag.
const exitLagging = 3

func (s statusCmd) Run(ctx context.Context, e *env) error {
	cfg, _, store, err := e.openArchive(ctx)
	if err != nil {
		return err
	}
	defer store.Close()
	if err := needSchema(ctx, store); err != nil {
		return err
	}
	archive, err := sink.OpenArchive(ctx, store, sink.ArchiveOptions{}) // reads only: a private spool
	if err != nil {
		return err
	}
	defer archive.Close(ctx)
	// Conversations tracked but never synced are listed too: the lagging
	// gauge counts them. The engine's options say what is tracked (the
	// discovery filters among them); no API is asked.
	tracked, err := syncer.Tracked(ctx, archive, engineOptions(cfg, nil, nil, nil, nil, zap.NewNop()))
	if err != nil {
		return err
	}
	rows, err := archive.Status(ctx, tracked...)
	if err != nil {
		return err
	}
	if s.Lagging {
		rows = slices.DeleteFunc(rows, func(r sink.ConversationStatus) bool { return !needsAttention(r) })
	}
	perDay := cfg.RateLimit().PerDay
	if s.Output == "json" {
		err = printStatusJSON(e.stdout, rows, perDay)
	} else {
		err = printStatus(e.stdout, rows, perDay)
	}
	if err == nil && s.Lagging && slices.ContainsFunc(rows, lagging) {
		return exitCodeError{code: exitLagging}
	}
	return err
}

// needSchema says what to do when the archive's tables are missing or older
// than this binary: a ClickHouse error naming a missing table helps nobody.
func needSchema(ctx context.Context, store *sink.Store) error {
	tables, err := store.Schema(ctx)
	if err != nil {
		return err
	}
	have := map[string]bool{}
	for _, t := range tables {
		have[t.Name] = true
	}
	for _, want := range []string{"sync_state", "message_index"} {
		if !have[want] {
			return fmt.Errorf("database %s has no table %s: run `cekat-archiver migrate` to create or update the schema", store.Database(), want)
		}
	}
	return nil
}

// lagging is what the engine counts as lagging (cekat_archiver_conversations_lagging).
func lagging(r sink.ConversationStatus) bool { return syncer.Lagging(r.State) }

func needsAttention(r sink.ConversationStatus) bool {
	return lagging(r) || r.PurgedAt.IsZero() && r.Gone
}

// printStatus prints one line per conversation and a line of totals. Times
// are UTC and say so. Ids and errors come from the configuration and
// upstream: they go through display, errors cut at a terminal line
// (--output json has them whole).
func printStatus(w io.Writer, rows []sink.ConversationStatus, perDay int) error {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CONVERSATION\tARCHIVED\tENRICHED\tWAITING\tNEWEST\tBACKFILL\tLAST SUCCESS\tNEXT DUE\tLAST ERROR")
	var archived, enriched, waiting uint64
	var nLagging, nGone, nPurged, nFailing int
	for _, r := range rows {
		archived += r.Archived
		enriched += r.Enriched
		waiting += r.Waiting
		backfill := "complete"
		switch {
		case r.NeverSynced:
			backfill = "never synced"
		case !r.PurgedAt.IsZero():
			backfill = "purged " + statusTime(r.PurgedAt)
			nPurged++
		case r.Gone:
			backfill = "gone"
			nGone++
		case !r.BackfillComplete:
			backfill = fmt.Sprintf("pending (%d gaps)", len(r.Gaps))
		case len(r.Gaps) > 0:
			backfill = fmt.Sprintf("complete, %d gaps", len(r.Gaps))
		}
		if lagging(r) {
			nLagging++
		}
		lastError := "-"
		if r.LastError != "" {
			lastError = display(r.LastError, maxLineRunes)
			nFailing++
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\t%s\t%s\t%s\t%s\n", display(r.ConversationID, maxIDRunes), r.Archived, r.Enriched,
			r.Waiting, statusTime(r.NewestSentAt), backfill, statusTime(r.LastSuccessAt), statusTime(r.NextDueAt), lastError)
	}
	fmt.Fprintf(tw, "TOTAL %d\t%d\t%d\t%d\t\t%d lagging, %d gone, %d purged\t\t\t%d failing\n", len(rows), archived, enriched,
		waiting, nLagging, nGone, nPurged, nFailing)
	if err := tw.Flush(); err != nil {
		return err
	}
	if waiting > 0 {
		fmt.Fprintf(w, "enrichment backlog: %d messages archived from the list wait for their detail call; %s\n", waiting,
			drainText(waiting, perDay))
	}
	return nil
}

// drainText says how long a backlog of n detail calls takes at a daily cap
// of perDay: at least n / perDay days, more by what the runs' listing takes
// (the daemon's metric cekat_archiver_enrichment_backlog_drained_timestamp_seconds
// has the estimate with it).
func drainText(n uint64, perDay int) string {
	if perDay <= 0 {
		return "no daily cap: the next runs enrich it at the pace of api.rate_limit.per_minute"
	}
	return fmt.Sprintf("at least %.1f days at api.rate_limit.per_day %d (less what the runs' listing takes)",
		float64(n)/float64(perDay), perDay)
}

// statusTime is a time in UTC, marked as such.
func statusTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

// statusJSON is one conversation of `status --output json`. Times are
// RFC 3339 in UTC, null when never.
type statusJSON struct {
	ConversationID   string     `json:"conversation_id"`
	Archived         uint64     `json:"archived"`
	Enriched         uint64     `json:"enriched"`
	Waiting          uint64     `json:"waiting"`
	NewestSentAt     *time.Time `json:"newest_sent_at"`
	BackfillComplete bool       `json:"backfill_complete"`
	Gaps             int        `json:"gaps"`
	Gone             bool       `json:"gone"`
	PurgedAt         *time.Time `json:"purged_at"`
	Lagging          bool       `json:"lagging"`
	NeverSynced      bool       `json:"never_synced"`
	LastAttemptAt    *time.Time `json:"last_attempt_at"`
	LastSuccessAt    *time.Time `json:"last_success_at"`
	NextDueAt        *time.Time `json:"next_due_at"`
	IdleRuns         uint32     `json:"idle_runs"`
	LastError        string     `json:"last_error"`
}

type statusTotals struct {
	Conversations int    `json:"conversations"`
	Archived      uint64 `json:"archived"`
	Enriched      uint64 `json:"enriched"`
	Waiting       uint64 `json:"waiting"`
	// WaitingDaysAtLeast: the backlog over api.rate_limit.per_day (null
	// without a daily cap).
	WaitingDaysAtLeast *float64 `json:"waiting_days_at_least"`
	Lagging            int      `json:"lagging"`
	Gone               int      `json:"gone"`
	Purged             int      `json:"purged"`
	Failing            int      `json:"failing"`
}

func printStatusJSON(w io.Writer, rows []sink.ConversationStatus, perDay int) error {
	out := struct {
		Conversations []statusJSON `json:"conversations"`
		Totals        statusTotals `json:"totals"`
	}{Conversations: []statusJSON{}}
	when := func(t time.Time) *time.Time {
		if t.IsZero() {
			return nil
		}
		u := t.UTC()
		return &u
	}
	for _, r := range rows {
		out.Conversations = append(out.Conversations, statusJSON{ConversationID: r.ConversationID, Archived: r.Archived,
			Enriched: r.Enriched, Waiting: r.Waiting,
			NewestSentAt: when(r.NewestSentAt), BackfillComplete: r.BackfillComplete, Gaps: len(r.Gaps), Gone: r.Gone,
			PurgedAt: when(r.PurgedAt), Lagging: lagging(r), NeverSynced: r.NeverSynced, LastAttemptAt: when(r.LastAttemptAt),
			LastSuccessAt: when(r.LastSuccessAt), NextDueAt: when(r.NextDueAt), IdleRuns: r.IdleRuns, LastError: r.LastError})
		t := &out.Totals
		t.Conversations++
		t.Archived += r.Archived
		t.Enriched += r.Enriched
		t.Waiting += r.Waiting
		switch {
		case !r.PurgedAt.IsZero():
			t.Purged++
		case r.Gone:
			t.Gone++
		}
		if lagging(r) {
			t.Lagging++
		}
		if r.LastError != "" {
			t.Failing++
		}
	}
	if perDay > 0 {
		days := float64(out.Totals.Waiting) / float64(perDay)
		out.Totals.WaitingDaysAtLeast = &days
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}
