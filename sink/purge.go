package sink

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// The retention purge's view of the archive: what each conversation holds,
// and the audit table that records every decision (see
// migrations/00010_create_purge_audit.sql).

// ConversationSummary is what the archive holds of one conversation.
type ConversationSummary struct {
	ConversationID string
	Archived       uint64    // messages archived
	NewestSentAt   time.Time // of its newest archived message
	// TransientUnenriched counts messages whose newest version lacks its
	// detail for a reason that may pass (enrich_error "transient: ...").
	TransientUnenriched uint64
}

// summaryChunk bounds the ids of one IN list.
const summaryChunk = 1000

// ConversationSummaries returns, for each conversation, its archived
// message count, newest message and messages left unenriched for a
// transient reason: of the conversations in only when it is not empty
// (whatever their age; those with no message are left out), else of every
// conversation whose newest archived message was sent before newestBefore.
// Sorted by newest message, oldest first.
func (a *Archive) ConversationSummaries(ctx context.Context, only []string, newestBefore time.Time) ([]ConversationSummary, error) {
	var out, part []ConversationSummary
	scan := func(rows driver.Rows) error {
		var (
			s      ConversationSummary
			newest time.Time
		)
		if err := rows.Scan(&s.ConversationID, &s.Archived, &newest); err != nil {
			return fmt.Errorf("scan conversation summary: %w", err)
		}
		s.NewestSentAt = fromDT(newest)
		part = append(part, s)
		return nil
	}
	// Counting per conversation reads two columns; the per-message argMax
	// below runs only for the conversations this returns.
	q := "SELECT conversation_id, uniqExact(message_id), max(sent_at) FROM " + a.s.TableName("messages")
	if len(only) > 0 {
		for ids := range chunks(only, summaryChunk) {
			err := a.read(ctx, "query conversation summaries", q+" WHERE conversation_id IN ? GROUP BY conversation_id",
				[]any{groupSet(ids)}, func() { part = nil }, scan)
			if err != nil {
				return nil, err
			}
			out = append(out, part...)
		}
	} else {
		err := a.read(ctx, "query conversation summaries", q+" GROUP BY conversation_id HAVING max(sent_at) < ?",
			[]any{dt(newestBefore)}, func() { part = nil }, scan)
		if err != nil {
			return nil, err
		}
		out = part
	}
	index := make(map[string]int, len(out))
	ids := make([]string, len(out))
	for i, s := range out {
		index[s.ConversationID], ids[i] = i, s.ConversationID
	}
	for chunk := range chunks(ids, summaryChunk) {
		// The newest version of each message decides: a failed enrichment
		// repaired later is not counted.
		err := a.read(ctx, "query unenriched messages", "SELECT conversation_id, sum(t) FROM (SELECT conversation_id, "+
			"argMax(enrich_error, version) LIKE 'transient:%' AS t FROM "+a.s.TableName("messages")+
			" WHERE conversation_id IN ? GROUP BY conversation_id, message_id) GROUP BY conversation_id",
			[]any{groupSet(chunk)}, func() {}, func(rows driver.Rows) error {
				var (
					id string
					n  uint64
				)
				if err := rows.Scan(&id, &n); err != nil {
					return fmt.Errorf("scan unenriched messages: %w", err)
				}
				if i, ok := index[id]; ok {
					out[i].TransientUnenriched = n
				}
				return nil
			})
		if err != nil {
			return nil, err
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].NewestSentAt.Equal(out[j].NewestSentAt) {
			return out[i].NewestSentAt.Before(out[j].NewestSentAt)
		}
		return out[i].ConversationID < out[j].ConversationID
	})
	return out, nil
}

func chunks(ids []string, n int) func(yield func([]string) bool) {
	return func(yield func([]string) bool) {
		for len(ids) > 0 {
			k := min(n, len(ids))
			if !yield(ids[:k]) {
				return
			}
			ids = ids[k:]
		}
	}
}

// Audit actions and events: the values of purge_audit.action and .event.
const (
	AuditPurge = "purge"
	AuditErase = "erase"

	EventIntent      = "intent"       // written before the delete call
	EventDeleted     = "deleted"      // the delete call removed it upstream
	EventGone        = "gone"         // already absent upstream (404); nothing sent
	EventFailed      = "failed"       // the call failed or did not remove it; see api_answer
	EventSkipped     = "skipped"      // not deleted, with the reason
	EventWouldDelete = "would_delete" // a dry run's decision
	EventErased      = "erased"       // every archive row of it removed, verified
)

// AuditRow is one row of purge_audit. It holds no message content.
type AuditRow struct {
	At               time.Time
	RunID            string
	Action           string // AuditPurge or AuditErase
	Event            string // EventIntent, ...
	ConversationID   string
	ArchivedMessages uint64
	NewestSentAt     time.Time
	DryRun           bool
	Reason           string
	APIAnswer        string
	Operator         string
	OperatorReason   string
}

const auditColumns = "at, run_id, action, event, conversation_id, archived_messages, newest_sent_at, dry_run, reason, " +
	"api_answer, operator, operator_reason"

// AddAudit writes audit rows at once, not through the write buffer: an
// intent must be stored before the call it announces is made.
func (a *Archive) AddAudit(ctx context.Context, rows ...AuditRow) error {
	if len(rows) == 0 {
		return nil
	}
	b, err := a.s.conn.PrepareBatch(ctx, "INSERT INTO "+a.s.TableName("purge_audit")+" ("+auditColumns+")")
	if err != nil {
		return fmt.Errorf("prepare audit insert: %w", err)
	}
	defer b.Abort()
	for _, r := range rows {
		if err := b.Append(dt(r.At), r.RunID, r.Action, r.Event, r.ConversationID, r.ArchivedMessages, dt(r.NewestSentAt),
			boolU8(r.DryRun), r.Reason, r.APIAnswer, r.Operator, r.OperatorReason); err != nil {
			return fmt.Errorf("audit row of %s: %w", r.ConversationID, err)
		}
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("insert %d audit rows: %w", len(rows), err)
	}
	return nil
}

// UnresolvedIntents returns the intents of action that have no outcome
// under the same run: calls whose answer a crash or a stop lost. Oldest
// first.
func (a *Archive) UnresolvedIntents(ctx context.Context, action string) ([]AuditRow, error) {
	var out []AuditRow
	q := "SELECT run_id, conversation_id, minIf(at, event = 'intent') AS t, anyIf(archived_messages, event = 'intent'), " +
		"anyIf(newest_sent_at, event = 'intent'), anyIf(operator, event = 'intent'), anyIf(operator_reason, event = 'intent') FROM " +
		a.s.TableName("purge_audit") + " WHERE action = ? GROUP BY run_id, conversation_id " +
		"HAVING countIf(event = 'intent') > 0 AND countIf(event != 'intent') = 0 ORDER BY t, conversation_id"
	err := a.read(ctx, "query unresolved intents", q, []any{action}, func() { out = nil }, func(rows driver.Rows) error {
		r := AuditRow{Action: action, Event: EventIntent}
		var at, newest time.Time
		if err := rows.Scan(&r.RunID, &r.ConversationID, &at, &r.ArchivedMessages, &newest, &r.Operator, &r.OperatorReason); err != nil {
			return fmt.Errorf("scan unresolved intent: %w", err)
		}
		r.At, r.NewestSentAt = fromDT(at), fromDT(newest)
		out = append(out, r)
		return nil
	})
	return out, err
}

// AuditRows returns the audit rows of a conversation (every conversation
// when conversationID is empty), one per fact, in the order they were
// written.
func (a *Archive) AuditRows(ctx context.Context, conversationID string) ([]AuditRow, error) {
	var out []AuditRow
	q := "SELECT " + auditColumns + " FROM " + a.s.TableName("purge_audit") + " FINAL"
	var args []any
	if conversationID != "" {
		q += " WHERE conversation_id = ?"
		args = append(args, conversationID)
	}
	q += " ORDER BY at, conversation_id, run_id, event"
	err := a.read(ctx, "query purge audit", q, args, func() { out = nil }, func(rows driver.Rows) error {
		var (
			r          AuditRow
			at, newest time.Time
			dry        uint8
		)
		if err := rows.Scan(&at, &r.RunID, &r.Action, &r.Event, &r.ConversationID, &r.ArchivedMessages, &newest, &dry,
			&r.Reason, &r.APIAnswer, &r.Operator, &r.OperatorReason); err != nil {
			return fmt.Errorf("scan audit row: %w", err)
		}
		r.At, r.NewestSentAt, r.DryRun = fromDT(at), fromDT(newest), dry == 1
		out = append(out, r)
		return nil
	})
	return out, err
}
