package sink

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"
	"unicode"

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

// ConversationRows counts, per conversation and table, the rows of the
// conversations ids (every version of a row, merged or not).
func (a *Archive) ConversationRows(ctx context.Context, tables, ids []string) (map[string]map[string]uint64, error) {
	out := map[string]map[string]uint64{}
	if len(ids) == 0 {
		return out, nil
	}
	for _, table := range tables {
		part := map[string]uint64{}
		err := a.read(ctx, "count rows of "+table, "SELECT conversation_id, count() FROM "+a.s.TableName(table)+
			" WHERE conversation_id IN ? GROUP BY conversation_id", []any{groupSet(ids)}, func() { clear(part) },
			func(rows driver.Rows) error {
				var (
					id string
					n  uint64
				)
				if err := rows.Scan(&id, &n); err != nil {
					return fmt.Errorf("scan row count: %w", err)
				}
				part[id] = n
				return nil
			})
		if err != nil {
			return nil, err
		}
		for id, n := range part {
			if out[id] == nil {
				out[id] = map[string]uint64{}
			}
			out[id][table] = n
		}
	}
	return out, nil
}

// DeleteConversationRows removes every row of the conversations ids from
// tables and waits until ClickHouse has applied the removal. On ClickHouse
// 18.16 (and by default on current releases) ALTER TABLE ... DELETE is a
// mutation that rewrites the parts in the background: it is done when
// system.mutations says so for every table. Rows inserted after the
// mutation was created are not removed: count afterwards. So the archive's
// own open INSERT is ended first, and what waits in its spool written: its
// rows would otherwise land after the mutation and survive it (and on
// current releases the mutation would wait for the INSERT to end).
func (a *Archive) DeleteConversationRows(ctx context.Context, tables, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	if err := a.Flush(ctx); err != nil {
		return fmt.Errorf("write what waits before deleting: %w", err)
	}
	for _, table := range tables {
		if err := a.s.conn.Exec(ctx, "ALTER TABLE "+a.s.TableName(table)+" DELETE WHERE conversation_id IN ?", groupSet(ids)); err != nil {
			return fmt.Errorf("delete rows from %s: %w", table, err)
		}
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

// ConversationsByPhone returns the conversations whose rows name the phone
// number (as sender, recipient or contact, in any table that has such a
// column), comparing digits only. A number of fewer than 6 digits is an
// error: it would match too much.
func (a *Archive) ConversationsByPhone(ctx context.Context, phone string) ([]string, error) {
	digits := PhoneDigits(phone)
	if len(digits) < 6 || strings.IndexFunc(phone, func(r rune) bool {
		return !unicode.IsDigit(r) && !strings.ContainsRune("+ -()./", r)
	}) >= 0 {
		return nil, fmt.Errorf("phone number %q: want digits, optionally with + and separators, at least 6 digits", phone)
	}
	cols := map[string][]string{}
	err := a.read(ctx, "list phone columns", "SELECT table, name FROM system.columns WHERE database = ? AND name IN ? "+
		"AND table IN (SELECT table FROM system.columns WHERE database = ? AND name = 'conversation_id')",
		[]any{a.s.database, groupSet(phoneColumns), a.s.database}, func() { clear(cols) }, func(rows driver.Rows) error {
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
	seen := map[string]bool{}
	for table, names := range cols {
		conds := make([]string, len(names))
		args := make([]any, len(names))
		for i, col := range names {
			conds[i] = "replaceRegexpAll(" + quoteIdent(col) + ", '[^0-9]', '') = ?"
			args[i] = digits
		}
		if err := a.readSet(ctx, "find conversations by phone in "+table, "SELECT DISTINCT conversation_id FROM "+
			a.s.TableName(table)+" WHERE "+strings.Join(conds, " OR "), args, seen); err != nil {
			return nil, err
		}
	}
	out := make([]string, 0, len(seen))
	for id := range seen {
		out = append(out, id)
	}
	sort.Strings(out)
	return out, nil
}
