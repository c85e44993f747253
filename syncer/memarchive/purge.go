package memarchive

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode"

	"github.com/cekat-archiver/cekat-archiver/sink"
)

// The retention purge's and erasure's view of the archive, as the
// ClickHouse archive gives it: summaries of what each conversation holds,
// the audit table, and the removal of a conversation's rows.

// The tables this archive holds rows of conversations in, named as the
// ClickHouse archive's.
const (
	tableConversations = "conversations"
	tableMessages      = "messages"
	tableQuarantine    = "quarantine"
	tableChecks        = "status_checks"
	tableStates        = "sync_state"
	tableTracked       = "tracked_conversations"
)

var conversationTables = []string{tableConversations, tableMessages, tableQuarantine, tableChecks, tableStates, tableTracked}

// auditKey is what one logical audit row is: repeated facts collapse.
type auditKey struct{ conv, run, event string }

// seconds is a time as a ClickHouse DateTime column keeps it: whole seconds,
// UTC, and the zero time for anything up to 1970.
func seconds(t time.Time) time.Time {
	if !t.After(time.Unix(0, 0)) {
		return time.Time{}
	}
	return t.UTC().Truncate(time.Second)
}

// ConversationSummaries implements purge.Archive.
func (a *Archive) ConversationSummaries(_ context.Context, only []string, newestBefore time.Time) ([]sink.ConversationSummary, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	sums := map[string]*sink.ConversationSummary{}
	for _, r := range a.msgs {
		s := sums[r.ConversationID]
		if s == nil {
			s = &sink.ConversationSummary{ConversationID: r.ConversationID}
			sums[r.ConversationID] = s
		}
		s.Archived++
		if t := seconds(r.SentAt); t.After(s.NewestSentAt) {
			s.NewestSentAt = t
		}
		if strings.HasPrefix(r.EnrichError, "transient:") {
			s.TransientUnenriched++
		}
	}
	var out []sink.ConversationSummary
	if len(only) > 0 {
		for _, id := range only {
			if s := sums[id]; s != nil {
				out = append(out, *s)
				delete(sums, id) // an id named twice is summarised once
			}
		}
	} else {
		for _, s := range sums {
			if s.NewestSentAt.Before(seconds(newestBefore)) {
				out = append(out, *s)
			}
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

// AddAudit implements purge.Archive: rows are stored at once, not through
// the write buffer. Of rows of the same conversation, run and event, the
// latest by At is kept.
func (a *Archive) AddAudit(_ context.Context, rows ...sink.AuditRow) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.failWrites != nil {
		return a.failWrites
	}
	for _, r := range rows {
		r.At, r.NewestSentAt = seconds(r.At), seconds(r.NewestSentAt)
		k := auditKey{r.ConversationID, r.RunID, r.Event}
		if old, ok := a.audit[k]; !ok || !r.At.Before(old.At) {
			a.audit[k] = r
		}
	}
	return nil
}

// AuditRows returns the audit rows of a conversation (every conversation
// when conversationID is empty) in the order they were written: by time,
// conversation, run and event.
func (a *Archive) AuditRows(_ context.Context, conversationID string) ([]sink.AuditRow, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []sink.AuditRow
	for _, r := range a.audit {
		if conversationID == "" || r.ConversationID == conversationID {
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		x, y := out[i], out[j]
		if !x.At.Equal(y.At) {
			return x.At.Before(y.At)
		}
		return strings.Compare(x.ConversationID+"\x00"+x.RunID+"\x00"+x.Event, y.ConversationID+"\x00"+y.RunID+"\x00"+y.Event) < 0
	})
	return out, nil
}

// UnresolvedIntents implements purge.Archive.
func (a *Archive) UnresolvedIntents(_ context.Context, action string) ([]sink.AuditRow, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	type call struct{ run, conv string }
	intents := map[call]sink.AuditRow{}
	resolved := map[call]bool{}
	for _, r := range a.audit {
		if r.Action != action {
			continue
		}
		c := call{r.RunID, r.ConversationID}
		if r.Event != sink.EventIntent {
			resolved[c] = true
			continue
		}
		intents[c] = r
	}
	var out []sink.AuditRow
	for c, r := range intents {
		if !resolved[c] {
			out = append(out, sink.AuditRow{At: r.At, RunID: r.RunID, Action: action, Event: sink.EventIntent,
				ConversationID: r.ConversationID, ArchivedMessages: r.ArchivedMessages, NewestSentAt: r.NewestSentAt,
				Operator: r.Operator, OperatorReason: r.OperatorReason})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].At.Equal(out[j].At) {
			return out[i].At.Before(out[j].At)
		}
		return out[i].ConversationID < out[j].ConversationID
	})
	return out, nil
}

// ConversationTables implements purge.EraseArchive.
func (a *Archive) ConversationTables(context.Context) ([]string, error) {
	return slices.Clone(conversationTables), nil
}

// ConversationRows implements purge.EraseArchive: every version of a row
// stored counts, as in a ClickHouse table whose parts are not merged.
func (a *Archive) ConversationRows(_ context.Context, tables, ids []string) (map[string]map[string]uint64, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := map[string]map[string]uint64{}
	for _, id := range ids {
		for _, table := range tables {
			if n := a.rows[table][id]; n > 0 {
				if out[id] == nil {
					out[id] = map[string]uint64{}
				}
				out[id][table] = n
			}
		}
	}
	return out, nil
}

// DeleteConversationRows implements purge.EraseArchive. What waits in the
// buffer is stored first, as the ClickHouse archive ends its open INSERT
// before a deletion, so that no queued row of the conversations lands
// after it.
func (a *Archive) DeleteConversationRows(ctx context.Context, tables, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	if err := a.Flush(ctx); err != nil {
		return fmt.Errorf("write what waits before deleting: %w", err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	gone := map[string]bool{}
	for _, id := range ids {
		gone[id] = true
	}
	for _, table := range tables {
		switch table {
		case tableMessages:
			deleteFunc(a.msgs, func(r sink.MessageRow) bool { return gone[r.ConversationID] })
		case tableQuarantine:
			deleteFunc(a.quar, func(r sink.QuarantineRow) bool { return gone[r.ConversationID] })
		case tableChecks:
			deleteFunc(a.checks, func(r sink.StatusCheck) bool { return gone[r.ConversationID] })
		case tableConversations:
			deleteFunc(a.convs, func(r sink.ConversationRow) bool { return gone[r.ConversationID] })
		case tableStates:
			deleteFunc(a.states, func(r sink.State) bool { return gone[r.ConversationID] })
		case tableTracked:
			a.tracked = slices.DeleteFunc(a.tracked, func(id string) bool { return gone[id] })
		default:
			return fmt.Errorf("delete rows from %s: no such table", table)
		}
		for id := range gone {
			delete(a.rows[table], id)
		}
	}
	return nil
}

func deleteFunc[V any](m map[string]V, del func(V) bool) {
	for k, v := range m {
		if del(v) {
			delete(m, k)
		}
	}
}

// ConversationsByPhone implements purge.EraseArchive: the conversations
// whose messages or conversation rows name the number, digits compared.
func (a *Archive) ConversationsByPhone(_ context.Context, phone string) ([]string, error) {
	digits := sink.PhoneDigits(phone)
	if len(digits) < 6 || strings.IndexFunc(phone, func(r rune) bool {
		return !unicode.IsDigit(r) && !strings.ContainsRune("+ -()./", r)
	}) >= 0 {
		return nil, fmt.Errorf("phone number %q: want digits, optionally with + and separators, at least 6 digits", phone)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	seen := map[string]bool{}
	for _, r := range a.msgs {
		if sink.PhoneDigits(r.SenderPhone) == digits || sink.PhoneDigits(r.RecipientPhone) == digits {
			seen[r.ConversationID] = true
		}
	}
	for _, c := range a.convs {
		if sink.PhoneDigits(c.ContactPhone) == digits {
			seen[c.ConversationID] = true
		}
	}
	out := make([]string, 0, len(seen))
	for id := range seen {
		out = append(out, id)
	}
	sort.Strings(out)
	return out, nil
}

// countRow records one more stored row of a conversation in a table.
func (a *Archive) countRow(table, conv string) {
	if a.rows[table] == nil {
		a.rows[table] = map[string]uint64{}
	}
	a.rows[table][conv]++
}
