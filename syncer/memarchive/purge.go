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

// ConversationMessages implements purge.EraseArchive: the message ids that
// rows of the conversations name, in the tables with a message id.
func (a *Archive) ConversationMessages(_ context.Context, tables, ids []string) (map[string]string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	in := setOf(ids)
	out := map[string]string{}
	add := func(conv, msg string) {
		if in[conv] && msg != "" {
			out[msg] = conv
		}
	}
	for _, table := range tables {
		a.eachMessageRow(table, add)
	}
	return out, nil
}

// eachMessageRow calls fn with the conversation and message id of each row
// of table, when it is a table with a message id.
func (a *Archive) eachMessageRow(table string, fn func(conv, msg string)) {
	switch table {
	case tableMessages:
		for _, r := range a.msgs {
			fn(r.ConversationID, r.MessageID)
		}
	case tableQuarantine:
		for _, r := range a.quar {
			fn(r.ConversationID, r.MessageID)
		}
	case tableChecks:
		for _, r := range a.checks {
			fn(r.ConversationID, r.MessageID)
		}
	}
}

// ConversationRows implements purge.EraseArchive: every version of a row
// stored counts, as in a ClickHouse table whose parts are not merged. A row
// that names only one of the scope's messages counts for the message's
// conversation.
func (a *Archive) ConversationRows(_ context.Context, scope sink.EraseScope) (map[string]map[string]uint64, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := map[string]map[string]uint64{}
	add := func(conv, table string, n uint64) {
		if n == 0 {
			return
		}
		if out[conv] == nil {
			out[conv] = map[string]uint64{}
		}
		out[conv][table] += n
	}
	in := setOf(scope.Conversations)
	for _, id := range scope.Conversations {
		for _, table := range scope.Tables {
			add(id, table, a.rows[table][id])
		}
	}
	for _, table := range scope.Tables {
		a.eachMessageOnlyRow(table, scope, in, func(msg string) { add(scope.Messages[msg], table, 1) })
	}
	return out, nil
}

// eachMessageOnlyRow calls fn with the message id of each row of the table
// that is in the scope by its message alone (its conversation is not).
func (a *Archive) eachMessageOnlyRow(table string, scope sink.EraseScope, in map[string]bool, fn func(msg string)) {
	a.eachMessageRow(table, func(conv, msg string) {
		if _, ok := scope.Messages[msg]; ok && msg != "" && !in[conv] {
			fn(msg)
		}
	})
}

// DeleteConversationRows implements purge.EraseArchive. What waits in the
// buffer is stored first, as the ClickHouse archive ends its open INSERT
// before a deletion, so that no queued row of the conversations lands
// after it.
func (a *Archive) DeleteConversationRows(ctx context.Context, scope sink.EraseScope) error {
	if len(scope.Conversations) == 0 && len(scope.Messages) == 0 {
		return nil
	}
	if err := a.Flush(ctx); err != nil {
		return fmt.Errorf("write what waits before deleting: %w", err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	gone := setOf(scope.Conversations)
	named := func(conv, msg string) bool {
		if gone[conv] {
			return true
		}
		_, ok := scope.Messages[msg]
		return ok && msg != ""
	}
	for _, table := range scope.Tables {
		switch table {
		case tableMessages:
			deleteFunc(a.msgs, func(r sink.MessageRow) bool { return named(r.ConversationID, r.MessageID) })
		case tableQuarantine:
			deleteFunc(a.quar, func(r sink.QuarantineRow) bool { return named(r.ConversationID, r.MessageID) })
		case tableChecks:
			deleteFunc(a.checks, func(r sink.StatusCheck) bool { return named(r.ConversationID, r.MessageID) })
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

func setOf(ids []string) map[string]bool {
	out := make(map[string]bool, len(ids))
	for _, id := range ids {
		out[id] = true
	}
	return out
}

// checkPhone returns the digits of a phone number, or the error the
// ClickHouse archive gives for a number that would match too much.
func checkPhone(phone string) (string, error) {
	digits := sink.PhoneDigits(phone)
	if len(digits) < 6 || strings.IndexFunc(phone, func(r rune) bool {
		return !unicode.IsDigit(r) && !strings.ContainsRune("+ -()./", r)
	}) >= 0 {
		return "", fmt.Errorf("phone number: want digits, optionally with + and separators, at least 6 digits")
	}
	return digits, nil
}

// eachPhoneRow calls fn with the table, conversation and message id of each
// row naming the number: its phone columns compared by digits, or, for a
// quarantined answer, its raw body containing them.
func (a *Archive) eachPhoneRow(digits string, fn func(table, conv, msg string)) {
	for _, r := range a.msgs {
		if sink.PhoneDigits(r.SenderPhone) == digits || sink.PhoneDigits(r.RecipientPhone) == digits {
			fn(tableMessages, r.ConversationID, r.MessageID)
		}
	}
	for _, c := range a.convs {
		if sink.PhoneDigits(c.ContactPhone) == digits {
			fn(tableConversations, c.ConversationID, "")
		}
	}
	for _, q := range a.quar {
		if strings.Contains(q.Raw, digits) {
			fn(tableQuarantine, q.ConversationID, q.MessageID)
		}
	}
}

// ConversationsByPhone implements purge.EraseArchive.
func (a *Archive) ConversationsByPhone(_ context.Context, phone string) (sink.PhoneMatch, error) {
	digits, err := checkPhone(phone)
	if err != nil {
		return sink.PhoneMatch{}, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	convs, msgs := map[string]bool{}, map[string]bool{}
	a.eachPhoneRow(digits, func(_, conv, msg string) {
		switch {
		case conv != "":
			convs[conv] = true
		case msg != "":
			msgs[msg] = true
		}
	})
	return sink.PhoneMatch{Conversations: sortedKeys(convs), Messages: sortedKeys(msgs)}, nil
}

// PhoneRows implements purge.EraseArchive.
func (a *Archive) PhoneRows(_ context.Context, phone string) (map[string]uint64, error) {
	digits, err := checkPhone(phone)
	if err != nil {
		return nil, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	out := map[string]uint64{}
	a.eachPhoneRow(digits, func(table, _, _ string) { out[table]++ })
	return out, nil
}

func sortedKeys(set map[string]bool) []string {
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// countRow records one more stored row of a conversation in a table.
func (a *Archive) countRow(table, conv string) {
	if a.rows[table] == nil {
		a.rows[table] = map[string]uint64{}
	}
	a.rows[table][conv]++
}
