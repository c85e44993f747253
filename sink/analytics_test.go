package sink_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/cekat-archiver/cekat-archiver/sink"
	"github.com/cekat-archiver/cekat-archiver/sink/sinktest"
	"github.com/cekat-archiver/cekat-archiver/sink/storetest"
)

// DESCRIBE explains every column of the archive's tables, and on a current release of its
// views too (18.16 cannot comment a view's columns). Not covered: the copy set aside by
// 00013, the materialized views (their tables are covered) and messages_current, whose
// columns are those of messages. goose's own table has its comments when this archiver
// creates it (not in older archives).
func TestEveryColumnHasAComment(t *testing.T) {
	st := migratedStore(t)
	ctx := testContext(t)
	current, err := st.CurrentRelease(ctx)
	if err != nil {
		t.Fatal(err)
	}
	engines := "'View', 'MaterializedView'"
	if current {
		engines = "'MaterializedView'"
	}
	rows, err := st.Conn().Query(ctx, "SELECT table, name FROM system.columns WHERE database = ? AND comment = '' "+
		"AND table IN (SELECT name FROM system.tables WHERE database = ? AND engine NOT IN ("+engines+")) "+
		"AND table NOT IN ('messages_unpartitioned', 'messages_current') ORDER BY table, name",
		st.Database(), st.Database())
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var table, col string
		if err := rows.Scan(&table, &col); err != nil {
			t.Fatal(err)
		}
		t.Errorf("%s.%s has no comment", table, col)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
}

// messages_daily cuts days in the configured zone, and is made again when
// the zone changes; the rollup behind it is the same.
func TestDailyViewFollowsTheZone(t *testing.T) {
	db := sinktest.FreshDatabase(t)
	ctx := testContext(t)
	open := func(zone string) *sink.Store {
		return storetest.Migrated(t, sink.Options{Database: db, AnalyticsTimezone: zone, Logger: zaptest.NewLogger(t)})
	}
	st := open("Asia/Jakarta")
	a, err := sink.OpenArchive(context.Background(), st, sink.ArchiveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close(context.Background())
	// 20:00 UTC is 03:00 the next day in Jakarta.
	late := time.Date(2025, 3, 1, 20, 0, 0, 0, time.UTC)
	delivered := late.Add(7 * time.Second)
	r := msgRow("c", "m1", late, 1)
	r2 := r
	r2.Status, r2.DeliveredAt, r2.Version = "delivered", &delivered, 2
	if err := a.AddMessages(ctx, r, r2, msgRow("c", "m2", late.Add(-10*time.Hour), 1)); err != nil {
		t.Fatal(err)
	}
	if err := a.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	days := func(st *sink.Store) string {
		t.Helper()
		rows, err := st.Conn().Query(ctx, "SELECT toString(day), messages, delivered, delivery_p50_seconds FROM "+
			st.TableName(sink.DailyView)+" ORDER BY day")
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out []string
		for rows.Next() {
			var (
				day         string
				n, d        uint64
				p50         *int64
				p50rendered = "NULL"
			)
			if err := rows.Scan(&day, &n, &d, &p50); err != nil {
				t.Fatal(err)
			}
			if p50 != nil {
				p50rendered = time.Duration(*p50 * int64(time.Second)).String()
			}
			out = append(out, day+" "+strings.Repeat("m", int(n))+" "+strings.Repeat("d", int(d))+" "+p50rendered)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		return strings.Join(out, ", ")
	}
	if got, want := days(st), "2025-03-01 m  NULL, 2025-03-02 m d 7s"; got != want {
		t.Errorf("days in Jakarta: %q, want %q", got, want)
	}
	if got, want := days(open("UTC")), "2025-03-01 mm d 7s"; got != want {
		t.Errorf("days in UTC: %q, want %q", got, want)
	}
}

// messages_daily times reading from sending and from delivery apart, each message once however
// many versions it has.
func TestDailyViewReadTimes(t *testing.T) {
	st := migratedStore(t)
	ctx := testContext(t)
	a, err := sink.OpenArchive(context.Background(), st, sink.ArchiveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close(context.Background())
	sent := time.Date(2025, 3, 1, 8, 0, 0, 0, time.UTC)
	delivered, read := sent.Add(7*time.Second), sent.Add(67*time.Second)
	v1 := msgRow("c", "m1", sent, 1)
	v2 := v1
	v2.Status, v2.DeliveredAt, v2.Version = "delivered", &delivered, 2
	v3 := v2
	v3.Status, v3.ReadAt, v3.Version = "read", &read, 3
	// Read without a known delivery: a time from sending, none from delivery.
	other := msgRow("c", "m2", sent, 1)
	otherRead := sent.Add(100 * time.Second)
	other.Status, other.ReadAt = "read", &otherRead
	if err := a.AddMessages(ctx, v1, v2, v3, v3, other); err != nil {
		t.Fatal(err)
	}
	if err := a.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	var readP50, afterDeliveryP50, afterDeliveryP95 *int64
	if err := st.Conn().QueryRow(ctx, "SELECT read_p50_seconds, read_after_delivery_p50_seconds, read_after_delivery_p95_seconds FROM "+
		st.TableName(sink.DailyView)).Scan(&readP50, &afterDeliveryP50, &afterDeliveryP95); err != nil {
		t.Fatal(err)
	}
	if readP50 == nil || afterDeliveryP50 == nil || afterDeliveryP95 == nil || *afterDeliveryP50 != 60 || *afterDeliveryP95 != 60 {
		t.Errorf("read after delivery p50 %v, p95 %v; want 60 s from m1's delivery to its reading alone", afterDeliveryP50, afterDeliveryP95)
	}
	if readP50 != nil && *readP50 != 67 && *readP50 != 100 {
		t.Errorf("read p50 %d; want a time from sending (67 s or 100 s)", *readP50)
	}
}
