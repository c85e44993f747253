package sink

// BenchmarkWeekCount: the analyst's schema against the one before it, on one archive of
// 3,000,000 rows, in one run.
//
// Goal: a one-week count over a 3M-row archive through the view at most 2x the same
// count on the raw table, and the sync engine's per-page lookup must stay fast. On a current
// release the counts are taken twice: as loaded (each month in several parts), and a day
// later, when 00080 has merged each month into one part (the day shortened to a second).
//
// It also prints the bytes on disk per message of messages and of the table of 00001.
//
// Run (ClickHouse from deploy/clickhouse/clickhouse.sh start):
//
//	CEKAT_ARCHIVER_TEST_CLICKHOUSE_ADDR=127.0.0.1:19000 \
//	  go test -run '^$' -bench BenchmarkWeekCount -benchtime 1x ./sink/
//
// Environment:
//
//	CEKAT_BENCH_WEEK_ROWS  messages (default 3000000; 30% of them get a second version)
//	CEKAT_BENCH_WEEK_RUNS  runs of each query; the median counts (default 9)
//
// The archive is generated inside ClickHouse (INSERT ... SELECT over system.numbers, in
// batches of 300,000 like a sync's flushes, then the second versions): 30,000 conversations
// of about a day each, many at once, a message every 15 s, 17 months in all. The same rows go
// into `messages` (through its materialized views) and into a table with the schema of
// migration 00001 (unpartitioned, sorted by conversation and message) with a view like the
// old messages_current.
//
// It prints, for each query, the median wall time and the median server CPU time (from
// system.query_log, steadier on a busy machine), and the ratios to the raw count in the same
// run. Nothing is asserted about times; the counts of every form must agree.

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/cekat-archiver/cekat-archiver/sink/sinktest"
)

func BenchmarkWeekCount(b *testing.B) {
	addr := sinktest.Addr(b)
	nRows := sinktest.EnvInt(b, "CEKAT_BENCH_WEEK_ROWS", 3000000)
	runs := sinktest.EnvInt(b, "CEKAT_BENCH_WEEK_RUNS", 9)
	for b.Loop() {
		st := benchFreshStore(b, addr)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
		exec := func(q string) {
			b.Helper()
			if err := st.Conn().Exec(ctx, q); err != nil {
				b.Fatalf("%s: %v", q, err)
			}
		}
		// The table and view of migrations 00001 and 00002.
		create00001, err := migrationFiles.ReadFile("migrations/00001_create_messages.sql")
		if err != nil {
			b.Fatal(err)
		}
		exec(strings.Replace(string(create00001), "IF NOT EXISTS messages", st.TableName("messages_before"), 1))
		exec("CREATE VIEW " + st.TableName("messages_before_current") + " AS SELECT * FROM " + st.TableName("messages_before") + " FINAL")

		start := time.Now()
		const batch = 300000
		cols := strings.Replace(messageColumns, " sender_role,", "", 1) // messages computes it by its DEFAULT
		// The second versions: 30% of the messages were read later.
		read := strings.NewReplacer(" status,", " 'read',", " read_at,", " toNullable(sent_at + 60),", " version", " toUInt64(2)").Replace(" " + cols)
		for _, table := range []string{"messages", "messages_before"} {
			cols, read := cols, read
			if table == "messages_before" { // 00001 has no status_source
				cols, read = strings.Replace(cols, ", status_source", "", 1), strings.Replace(read, ", status_source", "", 1)
			}
			for lo := 0; lo < nRows; lo += batch {
				exec(fmt.Sprintf("INSERT INTO %s (%s) SELECT %s FROM (%s)", st.TableName(table), cols, cols, benchWeekRows(lo, min(batch, nRows-lo))))
			}
			for lo := 0; lo < nRows; lo += batch {
				exec(fmt.Sprintf("INSERT INTO %s (%s) SELECT %s FROM (%s) WHERE n %% 10 < 3", st.TableName(table), cols, read,
					benchWeekRows(lo, min(batch, nRows-lo))))
			}
		}
		sinktest.BenchLogf(b, "loaded %d messages (+30%% second versions) twice, with the materialized views, in %s", nRows, time.Since(start).Round(time.Second))
		benchWaitMerges(b, st)
		var parts, partitions uint64
		if err := st.Conn().QueryRow(ctx, "SELECT count(), uniqExact(partition) FROM system.parts WHERE active AND database = ? AND table = 'messages'",
			st.Database()).Scan(&parts, &partitions); err != nil {
			b.Fatal(err)
		}
		sinktest.BenchLogf(b, "messages: %d active parts in %d partitions", parts, partitions)
		// Bytes on disk per message, after the merges: messages as Migrate made it on this
		// server, and the table of 00001 (no codecs, as on 18.16).
		version, err := st.ServerVersion(ctx)
		if err != nil {
			b.Fatal(err)
		}
		perMessage := map[string]float64{}
		for _, table := range []string{"messages", "messages_before"} {
			var bytes uint64
			if err := st.Conn().QueryRow(ctx, "SELECT sum(bytes_on_disk) FROM system.parts WHERE active AND database = ? AND table = ?",
				st.Database(), table).Scan(&bytes); err != nil {
				b.Fatal(err)
			}
			perMessage[table] = float64(bytes) / float64(nRows)
		}
		sinktest.BenchLogf(b, "bytes on disk per message on ClickHouse %s: messages %.1f, the table of 00001 %.1f (%.2fx)",
			version, perMessage["messages"], perMessage["messages_before"], perMessage["messages"]/perMessage["messages_before"])
		b.ReportMetric(perMessage["messages"], "bytes/message")

		// A week in the middle of the archive.
		week := benchWeekStart.Add(time.Duration(nRows/2) * benchWeekEvery).Truncate(24 * time.Hour)
		where := fmt.Sprintf(" WHERE sent_at >= toDateTime('%s', 'UTC') AND sent_at < toDateTime('%s', 'UTC')",
			week.Format(time.DateTime), week.AddDate(0, 0, 7).Format(time.DateTime))
		queries := []struct{ name, q string }{
			{"raw table", "SELECT count() FROM " + st.TableName("messages") + where},
			{"view messages_current", "SELECT count() FROM " + st.TableName("messages_current") + where},
			{"messages FINAL", "SELECT count() FROM " + st.TableName("messages") + " FINAL" + where},
			{"rollup", "SELECT uniqExactMerge(messages_state) FROM " + st.TableName("message_rollup") +
				strings.ReplaceAll(where, "sent_at", "bucket")},
			{"before: raw table", "SELECT count() FROM " + st.TableName("messages_before") + where},
			{"before: view", "SELECT count() FROM " + st.TableName("messages_before_current") + where},
		}
		results := make([]benchQuery, len(queries))
		for i, q := range queries {
			results[i] = benchQueryStats(ctx, b, st, q.q, runs)
		}
		raw := results[0]
		for i, q := range queries {
			r := results[i]
			base := raw
			if strings.HasPrefix(q.name, "before") {
				base = results[4]
			}
			sinktest.BenchLogf(b, "week count, %-22s %8d rows: wall %8.1f ms (%5.1fx raw), server CPU %8.1f ms (%5.1fx raw), read %d rows",
				q.name+":", r.result, ms(r.wall), ratio(r.wall, base.wall), ms(r.cpu), ratio(r.cpu, base.cpu), r.readRows)
		}
		distinct := results[1].result
		if results[2].result != distinct || results[3].result != distinct || results[5].result != distinct {
			b.Errorf("the week's messages counted %d (view), %d (FINAL), %d (rollup), %d (before); want the same",
				results[1].result, results[2].result, results[3].result, results[5].result)
		}
		b.ReportMetric(ratio(results[1].wall, raw.wall), "view/raw")
		b.ReportMetric(ratio(results[2].wall, raw.wall), "final/raw")
		b.ReportMetric(ratio(results[5].wall, results[4].wall), "before_view/raw")

		// A day later, on a current release: no month has had a new part for a day, and 00080
		// has merged each into one part, which FINAL reads without merging. The table before
		// is left as it is.
		currentRelease, err := st.CurrentRelease(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if currentRelease {
			exec("ALTER TABLE " + st.TableName("messages") + " MODIFY SETTING min_age_to_force_merge_seconds = 1") // the day, shortened
			start := time.Now()
			benchWaitWholeMonths(ctx, b, st)
			sinktest.BenchLogf(b, "a day later: every month of messages merged into one part in %s", time.Since(start).Round(time.Second))
			settled := make([]benchQuery, 3)
			for i, q := range queries[:3] {
				settled[i] = benchQueryStats(ctx, b, st, q.q, runs)
			}
			for i, q := range queries[:3] {
				r := settled[i]
				sinktest.BenchLogf(b, "a day later, week count, %-22s %8d rows: wall %8.1f ms (%5.1fx raw), server CPU %8.1f ms (%5.1fx raw), read %d rows",
					q.name+":", r.result, ms(r.wall), ratio(r.wall, settled[0].wall), ms(r.cpu), ratio(r.cpu, settled[0].cpu), r.readRows)
			}
			if settled[1].result != distinct || settled[2].result != distinct {
				b.Errorf("a day later, the week's messages counted %d (view), %d (FINAL); want %d", settled[1].result, settled[2].result, distinct)
			}
			b.ReportMetric(ratio(settled[1].wall, settled[0].wall), "settled_view/raw")
			b.ReportMetric(ratio(settled[1].cpu, settled[0].cpu), "settled_view/raw_cpu")
		}

		// The sync engine's per-page lookup in this archive of many conversations: 100 ids of
		// one conversation, through Archived (message_index), against the same question to the
		// table before (its primary key served it).
		a, err := OpenArchive(context.Background(), st, ArchiveOptions{BatchInterval: time.Hour})
		if err != nil {
			b.Fatal(err)
		}
		var conv string
		var ids []string
		if err := st.Conn().QueryRow(ctx, "SELECT conversation_id, groupArray(message_id) FROM (SELECT conversation_id, message_id FROM "+
			st.TableName("messages_before")+" WHERE conversation_id = (SELECT any(conversation_id) FROM "+st.TableName("messages_before")+
			" WHERE sent_at >= toDateTime(?, 'UTC')) LIMIT 100) GROUP BY conversation_id", week.Format(time.DateTime)).Scan(&conv, &ids); err != nil {
			b.Fatal(err)
		}
		// Each once first, to warm the caches; then each in turn.
		var after, current, before time.Duration
		lookups := func() {
			after = benchMedian(1, func() {
				got, err := a.Archived(ctx, conv, ids)
				if err != nil || len(got) != len(ids) {
					b.Fatalf("Archived: %v, %d of %d found", err, len(got), len(ids))
				}
			})
			current = benchMedian(1, func() {
				got, err := a.CurrentMessages(ctx, conv, ids)
				if err != nil || len(got) != len(ids) {
					b.Fatalf("CurrentMessages: %v, %d of %d found", err, len(got), len(ids))
				}
			})
			before = benchMedian(1, func() {
				rows, err := st.Conn().Query(ctx, "SELECT message_id, argMax(status, version), argMax(updated_at, version), argMax(enriched, version) FROM "+
					st.TableName("messages_before")+" WHERE conversation_id = ? AND message_id IN ? GROUP BY message_id", conv, groupSet(ids))
				if err != nil {
					b.Fatal(err)
				}
				for rows.Next() {
				}
				rows.Close()
			})
		}
		lookups()
		var afters, currents, befores []time.Duration
		for range runs {
			lookups()
			afters, currents, befores = append(afters, after), append(currents, current), append(befores, before)
		}
		after, current, before = benchMid(afters), benchMid(currents), benchMid(befores)
		sinktest.BenchLogf(b, "lookup of 100 ids of a conversation: Archived %.2f ms, CurrentMessages %.2f ms; the same question to the table before: %.2f ms",
			ms(after), ms(current), ms(before))
		b.ReportMetric(ms(after), "archived_ms")
		b.ReportMetric(ms(before), "archived_before_ms")
		_ = a.Close(ctx)
		benchDrop(ctx, b, st)
		cancel()
		st.Close()
	}
}

// benchWaitWholeMonths waits (up to 10 minutes) until every partition of messages is one part.
func benchWaitWholeMonths(ctx context.Context, b *testing.B, st *Store) {
	b.Helper()
	deadline := time.Now().Add(10 * time.Minute)
	for {
		var parts, partitions uint64
		if err := st.Conn().QueryRow(ctx, "SELECT count(), uniqExact(partition) FROM system.parts WHERE active AND database = ? AND table = 'messages'",
			st.Database()).Scan(&parts, &partitions); err != nil {
			b.Fatal(err)
		}
		if parts == partitions {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("messages still has %d parts in %d partitions", parts, partitions)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// The generated messages start at benchWeekStart, one every benchWeekEvery.
var (
	benchWeekStart = time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC)
	benchWeekEvery = 15 * time.Second
)

// benchWeekRows is a SELECT of the generated messages numbered from to from+count:
// conversations of 100 messages over about a day, 50 of them at a time, a message every 15 s
// from 2024-06-01.
func benchWeekRows(from, count int) string {
	return `SELECT number AS n,
		lower(hex(MD5(toString(intDiv(number, 5000) * 50 + (number * 7919) % 50)))) AS conversation_id,
		lower(hex(MD5(concat('m', toString(number))))) AS message_id,
		if(number % 2 = 0, 'inbound', 'outbound') AS direction,
		if(number % 9 = 0, 'image', 'text') AS type,
		'delivered' AS status,
		concat('halo kak, pesanan nomor ', toString(number), ' sudah dikirim') AS text,
		if(type = 'image', concat('https://media.example/', toString(number)), '') AS media_url,
		'' AS caption, '' AS filename,
		if(direction = 'inbound', 'Pelanggan', 'Agen') AS sender_name,
		if(direction = 'inbound', '+6281234567', '') AS sender_phone,
		if(direction = 'inbound', 'contact-1', 'agent-1') AS sender_id,
		if(direction = 'inbound', 'user', 'agent') AS sender_type,
		if(direction = 'outbound', '+6281234567', '') AS recipient_phone,
		'' AS reply_to, toUInt8(0) AS is_template,
		toDateTime('2024-06-01 00:00:00', 'UTC') + number * 15 AS sent_at,
		toUInt32((number * 7919) % 1000000000) AS sent_at_ns,
		toNullable(sent_at + 5) AS delivered_at,
		CAST(NULL AS Nullable(DateTime('UTC'))) AS read_at,
		toNullable(sent_at + 5) AS updated_at,
		toUInt8(1) AS enriched, '' AS enrich_error,
		concat('{"id":"', message_id, '","message":"', text, '"}') AS raw,
		'' AS detail_raw,
		sent_at + 10 AS fetched_at,
		toUInt64(1) AS version,
		'' AS status_source
	FROM numbers(` + fmt.Sprint(from) + `, ` + fmt.Sprint(count) + `)`
}

type benchQuery struct {
	result   uint64
	wall     time.Duration
	cpu      time.Duration // 0 when system.query_log has nothing
	readRows uint64
}

// benchQueryStats runs a one-number query runs times and returns the medians of its wall time
// and of the server's CPU time for it (from system.query_log).
func benchQueryStats(ctx context.Context, b *testing.B, st *Store, q string, runs int) benchQuery {
	b.Helper()
	prefix := fmt.Sprintf("bench-week-%d-", time.Now().UnixNano())
	var (
		out   benchQuery
		walls []time.Duration
	)
	for i := -1; i < runs; i++ { // -1: a first run that warms the caches, not counted
		id := fmt.Sprintf("%s%d", prefix, i)
		if i < 0 {
			id = "warm-" + id
		}
		qctx := clickhouse.Context(ctx, clickhouse.WithQueryID(id), clickhouse.WithSettings(clickhouse.Settings{"log_queries": 1}))
		start := time.Now()
		if err := st.Conn().QueryRow(qctx, q).Scan(&out.result); err != nil {
			b.Fatalf("%s: %v", q, err)
		}
		if i >= 0 {
			walls = append(walls, time.Since(start))
		}
	}
	slices.Sort(walls)
	out.wall = walls[len(walls)/2]
	if err := st.Conn().Exec(ctx, "SYSTEM FLUSH LOGS"); err != nil {
		return out
	}
	var cpuUs, readRows uint64
	err := st.Conn().QueryRow(ctx, "SELECT toUInt64(quantileExact(0.5)(cpu)), toUInt64(any(read_rows)) FROM (SELECT read_rows, "+
		"ProfileEvents.Values[indexOf(ProfileEvents.Names, 'UserTimeMicroseconds')] + "+
		"ProfileEvents.Values[indexOf(ProfileEvents.Names, 'SystemTimeMicroseconds')] AS cpu "+
		"FROM system.query_log WHERE type = 2 AND startsWith(query_id, ?))", prefix).Scan(&cpuUs, &readRows)
	if err == nil {
		out.cpu, out.readRows = time.Duration(cpuUs)*time.Microsecond, readRows
	}
	return out
}

func benchMid(d []time.Duration) time.Duration {
	slices.Sort(d)
	return d[len(d)/2]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func ratio(a, b time.Duration) float64 {
	if b <= 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// BenchmarkEraseConversation: the erasure of one conversation of 10,000 messages (two versions
// of each) from an archive of 100,000, as `erase` runs it: ClickHouse 18.16 waits for its
// mutations; a current release deletes lightweight, and its APPLY DELETED MASK is timed apart,
// until system.mutations says it is done.
//
//	CEKAT_ARCHIVER_TEST_CLICKHOUSE_ADDR=127.0.0.1:19000 \
//	  go test -run '^$' -bench BenchmarkEraseConversation -benchtime 1x ./sink/
func BenchmarkEraseConversation(b *testing.B) {
	addr := sinktest.Addr(b)
	for b.Loop() {
		st := benchFreshStore(b, addr)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		cols := strings.Replace(messageColumns, " sender_role,", "", 1)
		read := strings.NewReplacer(" status,", " 'read',", " read_at,", " toNullable(sent_at + 60),", " version", " toUInt64(2)").Replace(" " + cols)
		// benchWeekRows puts 5,000 consecutive rows in 50 conversations; here every tenth row
		// goes to the one erased.
		rows := strings.Replace(benchWeekRows(0, 100000), "lower(hex(MD5(toString(intDiv(number, 5000) * 50 + (number * 7919) % 50)))) AS conversation_id",
			"if(number % 10 = 0, 'erased', lower(hex(MD5(toString(intDiv(number, 5000) * 50 + (number * 7919) % 50))))) AS conversation_id", 1)
		for _, sel := range []string{cols, read} {
			if err := st.Conn().Exec(ctx, fmt.Sprintf("INSERT INTO %s (%s) SELECT %s FROM (%s)", st.TableName("messages"), cols, sel, rows)); err != nil {
				b.Fatal(err)
			}
		}
		a, err := OpenArchive(context.Background(), st, ArchiveOptions{})
		if err != nil {
			b.Fatal(err)
		}
		tables, err := a.ConversationTables(ctx)
		if err != nil {
			b.Fatal(err)
		}
		current, err := st.CurrentRelease(ctx)
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		messages, err := a.ConversationMessages(ctx, tables, []string{"erased"})
		if err != nil {
			b.Fatal(err)
		}
		scope := EraseScope{Tables: tables, Conversations: []string{"erased"}, Messages: messages}
		if err := a.DeleteConversationRows(ctx, scope); err != nil {
			b.Fatal(err)
		}
		took := time.Since(start)
		counts, err := a.ConversationRows(ctx, scope)
		if err != nil {
			b.Fatal(err)
		}
		for len(counts["erased"]) == 0 && current {
			var pending uint64
			if err := st.Conn().QueryRow(ctx, "SELECT count() FROM system.mutations WHERE database = ? AND is_done = 0", st.Database()).Scan(&pending); err != nil {
				b.Fatal(err)
			}
			if pending == 0 {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		masked := time.Since(start)
		version, _ := st.ServerVersion(ctx)
		sinktest.BenchLogf(b, "erasure of a conversation of 10,000 messages (x2 versions) on ClickHouse %s (lightweight %v): %s; rows left for queries right after: %v; parts rewritten after %s",
			version, current, took.Round(time.Millisecond), counts["erased"], masked.Round(time.Millisecond))
		if len(counts["erased"]) != 0 {
			b.Errorf("rows of the erased conversation remain: %v", counts["erased"])
		}
		b.ReportMetric(ms(took), "erase_ms")
		_ = a.Close(ctx)
		cancel()
	}
}
