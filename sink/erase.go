package sink

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/ext"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Erasure removes every row of a conversation from the archive (a
// customer's right to be forgotten). The tables are found rather than
// listed: every table of the archive's database with a conversation_id
// column, so tables added by later migrations (analyst tables, the inner
// tables of materialized views) are covered too. Views hold no rows of
// their own. The audit table is the record of the erasure and keeps the
// conversation's id (and no content).

// AuditTable is the table of purge and erase decisions; erasure leaves it.
const AuditTable = "purge_audit"

// ConversationTables lists the tables of the archive that hold rows of
// conversations (a conversation_id column), except the audit table and
// views, sorted by name.
func (a *Archive) ConversationTables(ctx context.Context) ([]string, error) {
	var out []string
	err := a.read(ctx, "list conversation tables", "SELECT table FROM system.columns WHERE database = ? AND name = 'conversation_id' "+
		"AND table IN (SELECT name FROM system.tables WHERE database = ? AND engine NOT IN ('View', 'MaterializedView')) ORDER BY table",
		[]any{a.s.database, a.s.database}, func() { out = nil }, func(rows driver.Rows) error {
			var name string
			if err := rows.Scan(&name); err != nil {
				return fmt.Errorf("scan table name: %w", err)
			}
			if name != AuditTable {
				out = append(out, name)
			}
			return nil
		})
	return out, err
}

// EraseScope is what an erasure removes: every row of the conversations,
// and every row that names one of their messages without naming the
// conversation (a webhook event that named only its message and was not
// resolved, an answer quarantined before its conversation was known).
type EraseScope struct {
	Tables        []string // from ConversationTables
	Conversations []string
	// Messages maps message ids to their conversation; "" for a message no
	// archived row ties to a conversation (found by a phone number alone).
	Messages map[string]string
}

// ConversationMessages maps the message ids that rows of the conversations
// name (in any table with both a conversation_id and a message_id column)
// to their conversation. Taken before a deletion, it is what finds the
// rows that name only the message, then and when verifying.
func (a *Archive) ConversationMessages(ctx context.Context, tables, ids []string) (map[string]string, error) {
	out := map[string]string{}
	if len(ids) == 0 {
		return out, nil
	}
	withMsg, err := a.tablesWithColumn(ctx, "message_id")
	if err != nil {
		return nil, err
	}
	for _, table := range tables {
		if !withMsg[table] {
			continue
		}
		err := a.read(ctx, "list messages of "+table, "SELECT DISTINCT message_id, conversation_id FROM "+a.s.TableName(table)+
			" WHERE conversation_id IN ? AND message_id != ''", []any{groupSet(ids)}, func() {}, func(rows driver.Rows) error {
			var msg, conv string
			if err := rows.Scan(&msg, &conv); err != nil {
				return fmt.Errorf("scan message id: %w", err)
			}
			out[msg] = conv
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// tablesWithColumn returns the archive's tables (not views) that have the
// column.
func (a *Archive) tablesWithColumn(ctx context.Context, col string) (map[string]bool, error) {
	out := map[string]bool{}
	err := a.read(ctx, "list tables with "+col, "SELECT table FROM system.columns WHERE database = ? AND name = ? "+
		"AND table IN (SELECT name FROM system.tables WHERE database = ? AND engine NOT IN ('View', 'MaterializedView'))",
		[]any{a.s.database, col, a.s.database}, func() { clear(out) }, func(rows driver.Rows) error {
			var name string
			if err := rows.Scan(&name); err != nil {
				return fmt.Errorf("scan table name: %w", err)
			}
			out[name] = true
			return nil
		})
	return out, err
}

// scopeWhere is the condition that selects the scope's rows in a table,
// and its arguments.
func (sc EraseScope) where(hasMessageID bool) (string, []any) {
	cond, args := "conversation_id IN ?", []any{groupSet(sc.Conversations)}
	if len(sc.Conversations) == 0 {
		cond, args = "0", nil
	}
	if hasMessageID && len(sc.Messages) > 0 {
		msgs := make([]string, 0, len(sc.Messages))
		for m := range sc.Messages {
			msgs = append(msgs, m)
		}
		sort.Strings(msgs)
		cond += " OR message_id IN ?"
		args = append(args, groupSet(msgs))
	}
	return cond, args
}

// messagesTable is the external table that carries the scope's message ids to
// the queries that count its rows: sent as data, thousands of ids cost the
// server a set to fill, where the same ids in the query's text cost it
// parsing and analysing a literal of that size, in every query. A removal
// runs later than its query and cannot read an external table: it names them
// in its text (where).
const messagesTable = "erase_messages"

// countWhere is where for the queries that count (scopeRows): the message ids
// read from messagesTable, which withMessages attaches.
func (sc EraseScope) countWhere(hasMessageID bool) (string, []any) {
	cond, args := sc.where(false)
	if hasMessageID && len(sc.Messages) > 0 {
		cond += " OR message_id IN (SELECT m FROM " + messagesTable + ")"
	}
	return cond, args
}

// withMessages attaches the scope's message ids as messagesTable.
func (sc EraseScope) withMessages(ctx context.Context) (context.Context, error) {
	if len(sc.Messages) == 0 {
		return ctx, nil
	}
	t, err := ext.NewTable(messagesTable, ext.Column("m", "String"))
	if err != nil {
		return nil, fmt.Errorf("message id table: %w", err)
	}
	for m := range sc.Messages {
		if err := t.Append(m); err != nil {
			return nil, fmt.Errorf("message id table: %w", err)
		}
	}
	return clickhouse.Context(ctx, clickhouse.WithExternalTable(t)), nil
}

// largeQuery lets a query carry long lists of ids (the default
// max_query_size, 256 KiB, holds about 6,000).
func largeQuery(ctx context.Context) context.Context {
	return clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{"max_query_size": 64 << 20}))
}

// ConversationRows counts, per conversation and table, the rows of the
// scope (every version of a row, merged or not). A row that names only a
// message counts for the message's conversation; rows of messages tied to
// no conversation count under "".
func (a *Archive) ConversationRows(ctx context.Context, scope EraseScope) (map[string]map[string]uint64, error) {
	out, _, err := a.scopeRows(ctx, scope)
	return out, err
}

// scopeRows is ConversationRows, and the tables with a row of the scope that
// names none of its conversations (found by its message id alone).
func (a *Archive) scopeRows(ctx context.Context, scope EraseScope) (map[string]map[string]uint64, map[string]bool, error) {
	out := map[string]map[string]uint64{}
	byMessage := map[string]bool{}
	if len(scope.Conversations) == 0 && len(scope.Messages) == 0 {
		return out, byMessage, nil
	}
	withMsg, err := a.tablesWithColumn(ctx, "message_id")
	if err != nil {
		return nil, nil, err
	}
	in := map[string]bool{}
	for _, id := range scope.Conversations {
		in[id] = true
	}
	if ctx, err = scope.withMessages(largeQuery(ctx)); err != nil {
		return nil, nil, err
	}
	for _, table := range scope.Tables {
		part := map[string]uint64{}
		cond, args := scope.countWhere(withMsg[table])
		msgCol := "''"
		if withMsg[table] {
			msgCol = "message_id"
		}
		err := a.read(ctx, "count rows of "+table, "SELECT conversation_id, "+msgCol+", count() FROM "+a.s.TableName(table)+
			" WHERE "+cond+" GROUP BY conversation_id, "+msgCol, args, func() { clear(part); byMessage[table] = false },
			func(rows driver.Rows) error {
				var (
					id, msg string
					n       uint64
				)
				if err := rows.Scan(&id, &msg, &n); err != nil {
					return fmt.Errorf("scan row count: %w", err)
				}
				if !in[id] {
					id = scope.Messages[msg]
					byMessage[table] = true
				}
				part[id] += n
				return nil
			})
		if err != nil {
			return nil, nil, err
		}
		for id, n := range part {
			if out[id] == nil {
				out[id] = map[string]uint64{}
			}
			out[id][table] = n
		}
	}
	return out, byMessage, nil
}

// DeleteConversationRows removes every row of the scope from its tables and
// waits until ClickHouse has applied the removal. The archive's own open
// INSERT is ended first, and what waits in its spool written: rows that land
// after the removal was made would survive it. Tables without a row of the
// scope are left alone: a removal rewrites parts of its table.
//
// A table's removal names the scope's message ids only when a row of it names
// none of the scope's conversations: a removal evaluates its condition on
// every row of its table, and thousands of ids cost seconds there (the
// messages of a long conversation), where the conversation alone costs little.
// Rows that arrive between the count and the removal are the caller's to
// find by counting again (ConversationRows).
//
// On a current release the removal is a lightweight DELETE: the rows are gone
// for every query once it returns, and an APPLY DELETED MASK mutation, not
// waited for, then rewrites the parts without them, so that their bytes leave
// the disk too. On ClickHouse 18.16 it is ALTER TABLE ... DELETE, a mutation
// that rewrites the parts in the background: it is done when system.mutations
// says so for every table.
func (a *Archive) DeleteConversationRows(ctx context.Context, scope EraseScope) error {
	if len(scope.Conversations) == 0 && len(scope.Messages) == 0 {
		return nil
	}
	if err := a.Flush(ctx); err != nil {
		return fmt.Errorf("write what waits before deleting: %w", err)
	}
	rows, byMessage, err := a.scopeRows(ctx, scope)
	if err != nil {
		return err
	}
	holding := map[string]bool{}
	for _, byTable := range rows {
		for table, n := range byTable {
			holding[table] = holding[table] || n > 0
		}
	}
	withMsg, err := a.tablesWithColumn(ctx, "message_id")
	if err != nil {
		return err
	}
	current, err := a.s.CurrentRelease(ctx)
	if err != nil {
		return err
	}
	var tables []string
	for _, table := range scope.Tables {
		if !holding[table] {
			continue
		}
		tables = append(tables, table)
		cond, args := scope.where(withMsg[table] && byMessage[table])
		if current {
			if err := a.s.conn.Exec(largeQuery(ctx), "DELETE FROM "+a.s.TableName(table)+" WHERE "+cond, args...); err != nil {
				return fmt.Errorf("delete rows from %s: %w", table, err)
			}
			if err := a.s.conn.Exec(ctx, "ALTER TABLE "+a.s.TableName(table)+" APPLY DELETED MASK"); err != nil {
				return fmt.Errorf("remove the deleted rows of %s from its parts: %w", table, err)
			}
			continue
		}
		if err := a.s.conn.Exec(largeQuery(ctx), "ALTER TABLE "+a.s.TableName(table)+" DELETE WHERE "+cond, args...); err != nil {
			return fmt.Errorf("delete rows from %s: %w", table, err)
		}
	}
	if current {
		return nil
	}
	wait := 50 * time.Millisecond
	for _, table := range tables {
		for {
			var pending uint64
			if err := a.s.conn.QueryRow(ctx, "SELECT count() FROM system.mutations WHERE database = ? AND table = ? AND is_done = 0",
				a.s.database, table).Scan(&pending); err != nil {
				return fmt.Errorf("wait for the deletion in %s: %w", table, err)
			}
			if pending == 0 {
				break
			}
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return fmt.Errorf("wait for the deletion in %s (%d mutations not done): %w", table, pending, ctx.Err())
			case <-t.C:
			}
			wait = min(2*wait, 2*time.Second)
		}
	}
	return nil
}

// PhoneDigits keeps the digits of a phone number: the archive holds numbers
// as E.164 (+62...) or digits alone, depending on the API's shape.
func PhoneDigits(phone string) string {
	return strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' {
			return r
		}
		return -1
	}, phone)
}

// phoneColumns are the columns that hold a customer's phone number.
var phoneColumns = []string{"sender_phone", "recipient_phone", "contact_phone"}

// PhoneMatch is what names a phone number in the archive.
type PhoneMatch struct {
	Conversations []string // conversations with a row naming the number
	// Messages are the message ids of rows naming the number that name no
	// conversation (webhook events never resolved, say).
	Messages []string
}

// phoneTable is the external table that carries the digits searched for:
// sent as data, not in the query's text, the number never reaches the
// driver's (debug) log of queries nor the server's query log.
const phoneTable = "erase_phone"

// checkPhone returns the digits of a phone number; fewer than 6 digits, or
// letters, are an error: it would match too much. The number is not
// repeated in the error: it is personal data.
func checkPhone(phone string) (string, error) {
	digits := PhoneDigits(phone)
	if len(digits) < 6 || strings.IndexFunc(phone, func(r rune) bool {
		return !unicode.IsDigit(r) && !strings.ContainsRune("+ -()./", r)
	}) >= 0 {
		return "", errors.New("phone number: want digits, optionally with + and separators, at least 6 digits")
	}
	return digits, nil
}

// phoneConditions returns, per table of the archive that holds rows of
// conversations, the condition that selects its rows naming the phone
// number: its phone columns compared by digits, or, in a table with no
// phone column, its raw body (webhook events, quarantined answers)
// containing the digits. The conditions read the digits from phoneTable.
func (a *Archive) phoneConditions(ctx context.Context) (map[string]string, error) {
	cols := map[string][]string{}
	err := a.read(ctx, "list phone columns", "SELECT table, name FROM system.columns WHERE database = ? AND name IN ? "+
		"AND table IN (SELECT table FROM system.columns WHERE database = ? AND name = 'conversation_id') "+
		"AND table IN (SELECT name FROM system.tables WHERE database = ? AND engine NOT IN ('View', 'MaterializedView'))",
		[]any{a.s.database, groupSet(append(slices.Clone(phoneColumns), "raw")), a.s.database, a.s.database}, func() { clear(cols) },
		func(rows driver.Rows) error {
			var table, col string
			if err := rows.Scan(&table, &col); err != nil {
				return fmt.Errorf("scan phone column: %w", err)
			}
			if table != AuditTable {
				cols[table] = append(cols[table], col)
			}
			return nil
		})
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	const digits = "(SELECT any(d) FROM " + phoneTable + ")"
	for table, names := range cols {
		var conds []string
		for _, col := range names {
			if col != "raw" {
				conds = append(conds, "replaceRegexpAll("+quoteIdent(col)+", '[^0-9]', '') = "+digits)
			}
		}
		if len(conds) == 0 {
			conds = []string{"position(raw, " + digits + ") > 0"}
		}
		sort.Strings(conds)
		out[table] = strings.Join(conds, " OR ")
	}
	return out, nil
}

// withPhone attaches the digits to the queries run with the context.
func withPhone(ctx context.Context, digits string) (context.Context, error) {
	t, err := ext.NewTable(phoneTable, ext.Column("d", "String"))
	if err != nil {
		return nil, fmt.Errorf("phone table: %w", err)
	}
	if err := t.Append(digits); err != nil {
		return nil, fmt.Errorf("phone table: %w", err)
	}
	return clickhouse.Context(ctx, clickhouse.WithExternalTable(t)), nil
}

// ConversationsByPhone finds the rows naming the phone number (see
// phoneConditions), comparing digits only.
func (a *Archive) ConversationsByPhone(ctx context.Context, phone string) (PhoneMatch, error) {
	digits, err := checkPhone(phone)
	if err != nil {
		return PhoneMatch{}, err
	}
	conds, err := a.phoneConditions(ctx)
	if err != nil {
		return PhoneMatch{}, err
	}
	withMsg, err := a.tablesWithColumn(ctx, "message_id")
	if err != nil {
		return PhoneMatch{}, err
	}
	pctx, err := withPhone(ctx, digits)
	if err != nil {
		return PhoneMatch{}, err
	}
	convs, msgs := map[string]bool{}, map[string]bool{}
	for table, cond := range conds {
		msgCol := "''"
		if withMsg[table] {
			msgCol = "message_id"
		}
		err := a.read(pctx, "find rows naming the phone number in "+table, "SELECT DISTINCT conversation_id, "+msgCol+" FROM "+
			a.s.TableName(table)+" WHERE "+cond, nil, func() {}, func(rows driver.Rows) error {
			var conv, msg string
			if err := rows.Scan(&conv, &msg); err != nil {
				return fmt.Errorf("scan: %w", err)
			}
			switch {
			case conv != "":
				convs[conv] = true
			case msg != "":
				msgs[msg] = true
			}
			return nil
		})
		if err != nil {
			return PhoneMatch{}, err
		}
	}
	return PhoneMatch{Conversations: sortedKeys(convs), Messages: sortedKeys(msgs)}, nil
}

// PhoneRows counts, per table, the rows still naming the phone number: an
// erasure by number is verified by none being left.
func (a *Archive) PhoneRows(ctx context.Context, phone string) (map[string]uint64, error) {
	digits, err := checkPhone(phone)
	if err != nil {
		return nil, err
	}
	conds, err := a.phoneConditions(ctx)
	if err != nil {
		return nil, err
	}
	pctx, err := withPhone(ctx, digits)
	if err != nil {
		return nil, err
	}
	out := map[string]uint64{}
	for table, cond := range conds {
		var n uint64
		err := a.read(pctx, "count rows naming the phone number in "+table, "SELECT count() FROM "+a.s.TableName(table)+" WHERE "+cond,
			nil, func() { n = 0 }, func(rows driver.Rows) error { return rows.Scan(&n) })
		if err != nil {
			return nil, err
		}
		if n > 0 {
			out[table] = n
		}
	}
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
