package sink

// Benchmarks of the archive's writes: BenchmarkSinkInsert (below), BenchmarkArchiveHeap (the
// Go heap a batch needs) and BenchmarkArchived (the per-page lookup as a conversation
// grows).
//
// Goal: the sink's rows/s beside clickhouse-client (TSV) on the same rows and table at least 0.9
// at defaults.
//
// Run (ClickHouse from deploy/clickhouse/clickhouse.sh start):
//
//	CEKAT_ARCHIVER_TEST_CLICKHOUSE_ADDR=127.0.0.1:19000 \
//	  go test -run '^$' -bench BenchmarkSinkInsert -benchtime 1x ./sink/
//
// Environment:
//
//	CEKAT_BENCH_SINK_ROWS    rows per load (default 300000)
//	CEKAT_BENCH_SINK_ROUNDS  interleaved rounds of every method; the best of each counts (default 3)
//
// Beside the rates it prints the CPU time per row of each method's client side (the
// clickhouse-client process; this process for the archive) and of the ClickHouse server,
// which are steadier than the rates on a busy machine.
//
// The figures are printed (b.ReportMetric and log lines) and the ratios are taken within the
// same run; nothing is asserted about timings, only that every method stored the same data.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/cekat-archiver/cekat-archiver/sink/sinktest"
)

// benchSinkBatch is the rows the sync engine hands AddMessages at once: one list page.
const benchSinkBatch = 100

func BenchmarkSinkInsert(b *testing.B) {
	addr := sinktest.Addr(b)
	nRows := sinktest.EnvInt(b, "CEKAT_BENCH_SINK_ROWS", 300000)
	rounds := sinktest.EnvInt(b, "CEKAT_BENCH_SINK_ROUNDS", 3)
	// On the chdb engine, Debian's clickhouse-client (18.16) cannot insert into messages (it
	// cannot read the CODEC of its columns): clickhouse-local of the engine's own release
	// stands in for it, reading the TSV and sending native blocks as clickhouse-client does.
	chdbLocal := strings.Fields(os.Getenv("CEKAT_BENCH_CHDB_LOCAL"))
	client, err := benchFindClient()
	if err != nil && len(chdbLocal) == 0 {
		b.Skip(err)
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		b.Fatalf("%s=%q: %v", sinktest.EnvAddr, addr, err)
	}

	rows := benchMessageRows(nRows, 1)
	tsv := filepath.Join(b.TempDir(), "messages.tsv")
	tsvBytes, err := benchWriteTSV(tsv, rows)
	if err != nil {
		b.Fatal(err)
	}
	var rawBytes int
	for i := range rows {
		rawBytes += len(rows[i].Raw) + len(rows[i].DetailRaw)
	}
	sinktest.BenchLogf(b, "%d rows, raw+detail_raw JSON %.0f B/row on average, TSV %.1f MiB (%.0f B/row)",
		nRows, float64(rawBytes)/float64(nRows), float64(tsvBytes)/(1<<20), float64(tsvBytes)/float64(nRows))

	type method struct {
		name string
		// load stores the rows and returns the CPU time its client side spent (the
		// clickhouse-client process, or this process for the archive).
		load func(b *testing.B, st *Store) (time.Duration, error)
		// metric names the method in b.ReportMetric units.
		metric string
		// compression is the store's Options.Compression ("": the default, LZ4).
		compression string
	}
	inserts := map[string]int64{} // by method: INSERTs of the last load
	// archiveLoad loads through the archive; batchBytes 0 keeps the archive's default.
	archiveLoad := func(name string, batchRows, batchBytes int) func(*testing.B, *Store) (time.Duration, error) {
		return func(b *testing.B, st *Store) (time.Duration, error) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			cpu0 := sinktest.SelfCPU()
			// A long interval: only full batches and the final flush write, as in a busy sync.
			a, err := OpenArchive(context.Background(), st, ArchiveOptions{BatchRows: batchRows, BatchBytes: batchBytes, BatchInterval: time.Hour})
			if err != nil {
				return 0, err
			}
			defer func() { inserts[name] = a.Stats().Flushes }()
			for lo := 0; lo < len(rows); lo += benchSinkBatch {
				if err := a.AddMessages(ctx, rows[lo:min(lo+benchSinkBatch, len(rows))]...); err != nil {
					return 0, err
				}
			}
			err = a.Close(ctx)
			return sinktest.SelfCPU() - cpu0, err
		}
	}
	methods := []method{
		{"clickhouse-client", func(b *testing.B, st *Store) (time.Duration, error) {
			f, err := os.Open(tsv)
			if err != nil {
				return 0, err
			}
			defer f.Close()
			cmd := exec.Command(client, "--host", host, "--port", port, "--query",
				"INSERT INTO "+st.TableName("messages")+" ("+messageColumns+") FORMAT TabSeparated")
			if len(chdbLocal) == 2 {
				structure, err := benchStructure(st)
				if err != nil {
					return 0, err
				}
				cmd = exec.Command(chdbLocal[0], chdbLocal[1], "--local", "--query",
					"INSERT INTO FUNCTION remote('"+addr+"', '"+st.Database()+"', 'messages') ("+messageColumns+") SELECT * FROM file('"+tsv+"', 'TabSeparated', '"+structure+"')")
			}
			cmd.Stdin = f
			if out, err := cmd.CombinedOutput(); err != nil {
				return 0, fmt.Errorf("clickhouse-client: %v: %s", err, out)
			}
			ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
			return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
		}, "client", ""},
		// As the archiver is configured by default: one INSERT open until 50,000 rows, fed
		// blocks of 1,000 rows or 1 MiB, every write spooled to disk first.
		{"archive-default", archiveLoad("archive-default", 0, 0), "archive_default", ""},
		// The same without compression (clickhouse.compression: none), as clickhouse-client's
		// loopback default is none too.
		{"archive-default-none", archiveLoad("archive-default-none", 0, 0), "archive_default_none", CompressionNone},
		// INSERTs of 10,000 rows: five times as many.
		{"archive-10000-rows", archiveLoad("archive-10000-rows", 10000, 0), "archive10k", ""},
	}

	best := make([]time.Duration, len(methods))
	clientCPU := make([]time.Duration, len(methods)) // of the best round
	serverCPU := make([]time.Duration, len(methods))
	serverKnown := true
	var reference benchChecksum
	b.ResetTimer()
	for b.Loop() {
		for r := 0; r < rounds; r++ {
			for i, m := range methods {
				st := benchFreshStoreWith(b, addr, m.compression)
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
				benchWaitMerges(b, st) // a previous load's merges must not eat this one's CPU
				srv0, ok0 := sinktest.ServerCPU()
				start := time.Now()
				cpu, err := m.load(b, st)
				if err != nil {
					b.Fatalf("%s: %v", m.name, err)
				}
				d := time.Since(start)
				srv1, ok1 := sinktest.ServerCPU()
				serverKnown = serverKnown && ok0 && ok1
				sum := benchSum(ctx, b, st)
				if sum.Rows != uint64(nRows) {
					b.Fatalf("%s stored %d rows, want %d", m.name, sum.Rows, nRows)
				}
				if reference.Rows == 0 {
					reference = sum
				} else if sum != reference {
					b.Fatalf("%s stored other data than the first load:\n  %+v\n  %+v", m.name, sum, reference)
				}
				benchDrop(ctx, b, st)
				cancel()
				st.Close()
				if best[i] == 0 || d < best[i] {
					best[i], clientCPU[i], serverCPU[i] = d, cpu, srv1-srv0
				}
				batches := ""
				if n := inserts[m.name]; n > 0 {
					batches = fmt.Sprintf("; %d INSERTs of %d rows on average", n, int64(nRows)/n)
				}
				sinktest.BenchLogf(b, "round %d: %-20s %7.2fs %9.0f rows/s; CPU per row: client side %5.1f µs, server %5.1f µs%s%s",
					r+1, m.name, d.Seconds(), float64(nRows)/d.Seconds(), benchPerRow(cpu, nRows), benchPerRow(srv1-srv0, nRows),
					map[bool]string{true: "", false: " (server CPU unknown)"}[ok0 && ok1], batches)
			}
		}
	}
	b.StopTimer()

	rate := func(i int) float64 { return float64(nRows) / best[i].Seconds() }
	summary := fmt.Sprintf("best of %d rounds: clickhouse-client %.0f rows/s (%.1f MiB/s of TSV)", rounds, rate(0),
		float64(tsvBytes)/(1<<20)/best[0].Seconds())
	for i, m := range methods {
		b.ReportMetric(rate(i), m.metric+"_rows/s")
		b.ReportMetric(benchPerRow(clientCPU[i], nRows), m.metric+"_cpu_us/row")
		if serverKnown {
			b.ReportMetric(benchPerRow(serverCPU[i], nRows), m.metric+"_server_cpu_us/row")
		}
		if i > 0 {
			b.ReportMetric(rate(i)/rate(0), "ratio_"+m.metric)
			summary += fmt.Sprintf("; %s %.0f rows/s = %.2f of it", m.name, rate(i), rate(i)/rate(0))
		}
	}
	sinktest.BenchLogf(b, "%s (goal: at least 0.90 at the defaults)", summary)
}

// BenchmarkArchiveHeap measures the Go heap the archive's writes need (with GOGC at 5 during
// each load, so that the heap in use is close to what is live): its peak while four
// workers feed it pages of 100 rows (each page preceded by an Archived query, as the sync
// engine does, so the connection pool hands out several connections), and what stays live
// after the last flush. Beside the store as sink.Open configures the driver, it tries other
// driver settings (test-only: the connection is swapped under the Store), to show where the
// memory goes:
//
//   - FreeBufOnConnRelease: clickhouse-go keeps each pooled connection's encode buffer and
//     compression buffer (each grown to the size of the largest block chunk it sent) unless
//     told to drop them when the connection goes back to the pool;
//
//   - MaxCompressionBuffer: the encoded block is compressed and written out in chunks of this
//     size (default 10 MiB);
//
//   - the batch size (sync.batch_rows).
//
//     CEKAT_BENCH_HEAP_ROWS  rows per load (default 60000)
func BenchmarkArchiveHeap(b *testing.B) {
	addr := sinktest.Addr(b)
	nRows := sinktest.EnvInt(b, "CEKAT_BENCH_HEAP_ROWS", 60000)
	rows := benchMessageRows(nRows, 3)
	var bytesPerRow int
	for i := range rows {
		bytesPerRow += rows[i].size()
	}
	bytesPerRow /= nRows
	shipped := (&Store{}).clickhouseOptions("")
	type config struct {
		name      string
		batchRows int
		free      *bool // FreeBufOnConnRelease; nil: as sink.Open sets it
		chunk     int   // MaxCompressionBuffer; 0: as sink.Open sets it
	}
	on, off := true, false
	configs := []config{
		{fmt.Sprintf("as shipped (FreeBufOnConnRelease %v), batch 10000", shipped.FreeBufOnConnRelease), 10000, nil, 0},
		{"FreeBufOnConnRelease off, batch 10000", 10000, &off, 0},
		{"FreeBufOnConnRelease on, batch 10000", 10000, &on, 0},
		{"FreeBufOnConnRelease on, 1 MiB chunks, batch 10000", 10000, &on, 1 << 20},
		{"as shipped, batch 1000", 1000, nil, 0},
		{"FreeBufOnConnRelease on, 1 MiB chunks, batch 1000", 1000, &on, 1 << 20},
	}
	sinktest.BenchLogf(b, "%d rows of about %d bytes (text and raw JSON columns); 4 workers, pages of %d rows", nRows, bytesPerRow, benchSinkBatch)
	for b.Loop() {
		for i, c := range configs {
			st := benchFreshStore(b, addr)
			opts := st.clickhouseOptions("")
			if c.free != nil {
				opts.FreeBufOnConnRelease = *c.free
			}
			if c.chunk != 0 {
				opts.MaxCompressionBuffer = c.chunk
			}
			conn, err := clickhouse.Open(opts)
			if err != nil {
				b.Fatal(err)
			}
			st.conn.Close()
			st.conn = conn
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)

			// The rows of the benchmark (some 120 MiB) would let garbage pile up to as much
			// again before a collection: collect at 5% growth instead, so the heap in use
			// follows what is live.
			old := debug.SetGCPercent(5)
			runtime.GC()
			runtime.GC()
			var base runtime.MemStats
			runtime.ReadMemStats(&base)
			stopPeak := benchPeakHeap()
			a, err := OpenArchive(context.Background(), st, ArchiveOptions{BatchRows: c.batchRows, BatchInterval: time.Hour})
			if err != nil {
				b.Fatal(err)
			}
			start := time.Now()
			var next atomic.Int64
			var wg sync.WaitGroup
			var failed atomic.Value
			for range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						lo := int(next.Add(benchSinkBatch)) - benchSinkBatch
						if lo >= len(rows) || failed.Load() != nil {
							return
						}
						page := rows[lo:min(lo+benchSinkBatch, len(rows))]
						ids := make([]string, len(page))
						for j := range page {
							ids[j] = page[j].MessageID
						}
						if _, err := a.Archived(ctx, page[0].ConversationID, ids); err != nil {
							failed.Store(err)
							return
						}
						if err := a.AddMessages(ctx, page...); err != nil {
							failed.Store(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			if err, _ := failed.Load().(error); err != nil {
				b.Fatal(err)
			}
			if err := a.Close(ctx); err != nil {
				b.Fatal(err)
			}
			d := time.Since(start)
			peak := stopPeak()
			runtime.GC()
			runtime.GC()
			var after runtime.MemStats
			runtime.ReadMemStats(&after)
			debug.SetGCPercent(old)
			retained := int64(after.HeapAlloc) - int64(base.HeapAlloc)
			peakOver := int64(peak) - int64(base.HeapInuse)
			sinktest.BenchLogf(b, "%-52s peak heap in use +%6.1f MiB, still live after the last flush +%6.1f MiB, %6.0f rows/s",
				c.name, float64(peakOver)/(1<<20), float64(retained)/(1<<20), float64(nRows)/d.Seconds())
			if i == 0 {
				b.ReportMetric(float64(peakOver)/(1<<20), "peak_heap_MiB_as_shipped")
				b.ReportMetric(float64(retained)/(1<<20), "retained_MiB_as_shipped")
			}
			benchDrop(ctx, b, st)
			cancel()
			st.Close()
		}
	}
}

// benchPeakHeap samples the heap in use every 5 ms until the returned function is called,
// which returns the highest figure.
func benchPeakHeap() func() uint64 {
	stop := make(chan struct{})
	done := make(chan uint64)
	go func() {
		var peak uint64
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
			select {
			case <-stop:
				done <- peak
				return
			case <-t.C:
			}
		}
	}()
	return func() uint64 {
		close(stop)
		return <-done
	}
}

// BenchmarkArchived times the query the sync engine makes before enriching each page of
// 100 messages (Archive.Archived: which of these ids are archived already?) as one
// conversation's archive grows, since a first sync of a conversation of n messages makes it
// n/100 times, one after the other. Beside it, the same question asked two ways as references:
// with has(ids, message_id), which scans the whole conversation, and with IN (...), which the
// primary key (conversation_id, message_id) of message_index can serve.
//
//	CEKAT_BENCH_ARCHIVED_IDS_ROWS  rows of the conversation at the last step (default 200000)
func BenchmarkArchived(b *testing.B) {
	addr := sinktest.Addr(b)
	maxRows := sinktest.EnvInt(b, "CEKAT_BENCH_ARCHIVED_IDS_ROWS", 200000)
	rows := benchMessageRows(maxRows+benchSinkBatch, 2)
	for i := range rows {
		rows[i].ConversationID = "conv-big"
	}
	var steps []int
	for _, n := range []int{1000, 10000, 50000, 100000, 200000, 500000, 1000000} {
		if n < maxRows {
			steps = append(steps, n)
		}
	}
	steps = append(steps, maxRows)
	const calls = 20
	for b.Loop() {
		st := benchFreshStore(b, addr)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		a, err := OpenArchive(context.Background(), st, ArchiveOptions{BatchRows: 50000, BatchInterval: time.Hour})
		if err != nil {
			b.Fatal(err)
		}
		loaded := 0
		var lastArch, lastHas, lastIn time.Duration
		for _, n := range steps {
			if err := a.AddMessages(ctx, rows[loaded:n]...); err != nil {
				b.Fatal(err)
			}
			if err := a.Flush(ctx); err != nil {
				b.Fatal(err)
			}
			loaded = n
			// The next page: ids not archived yet, as in a first sync.
			ids := make([]string, benchSinkBatch)
			for i := range ids {
				ids[i] = rows[n+i].MessageID
			}
			arch := benchMedian(calls, func() {
				got, err := a.Archived(ctx, "conv-big", ids)
				if err != nil || len(got) != 0 {
					b.Fatalf("Archived: %v, %d found", err, len(got))
				}
			})
			query := func(q string, args ...any) {
				r, err := st.Conn().Query(ctx, q, args...)
				if err != nil {
					b.Fatal(err)
				}
				for r.Next() {
				}
				if err := r.Err(); err != nil {
					b.Fatal(err)
				}
				r.Close()
			}
			has := benchMedian(calls, func() {
				query("SELECT DISTINCT message_id FROM "+st.TableName("message_index")+" WHERE conversation_id = ? AND has(?, message_id)", "conv-big", ids)
			})
			quoted := make([]string, len(ids))
			for i, id := range ids {
				quoted[i] = "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(id) + "'"
			}
			in := benchMedian(calls, func() {
				query("SELECT DISTINCT message_id FROM "+st.TableName("message_index")+
					" WHERE conversation_id = ? AND message_id IN ("+strings.Join(quoted, ", ")+")", "conv-big")
			})
			var parts uint64
			if err := st.Conn().QueryRow(ctx, "SELECT count() FROM system.parts WHERE database = ? AND table = 'messages' AND active",
				st.Database()).Scan(&parts); err != nil {
				b.Fatal(err)
			}
			ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
			sinktest.BenchLogf(b, "conversation of %7d archived rows (%2d parts): Archived %7.2f ms; reference queries: has() %7.2f ms, IN %6.2f ms "+
				"(medians of %d); a first sync of it makes %d such lookups", n, parts, ms(arch), ms(has), ms(in), calls, n/benchSinkBatch)
			lastArch, lastHas, lastIn = arch, has, in
		}
		b.ReportMetric(float64(lastArch.Microseconds())/1000, "archivedIDs_ms_at_max")
		b.ReportMetric(float64(lastHas.Microseconds())/1000, "has_query_ms_at_max")
		b.ReportMetric(float64(lastIn.Microseconds())/1000, "in_query_ms_at_max")
		a.Close(ctx)
		benchDrop(ctx, b, st)
		cancel()
		st.Close()
	}
}

func benchMedian(n int, f func()) time.Duration {
	d := make([]time.Duration, n)
	for i := range d {
		start := time.Now()
		f()
		d[i] = time.Since(start)
	}
	slices.Sort(d)
	return d[n/2]
}

func benchPerRow(d time.Duration, rows int) float64 {
	return float64(d.Nanoseconds()) / 1000 / float64(rows)
}

// benchChecksum summarises a loaded table, so loads can be compared column by column.
type benchChecksum struct {
	Rows, Strings, Raw, Times, NullTimes, Flags, Versions uint64
}

func benchSum(ctx context.Context, b *testing.B, st *Store) benchChecksum {
	b.Helper()
	var c benchChecksum
	q := "SELECT count()," +
		" sum(cityHash64(conversation_id, message_id, direction, type, status, text, media_url, caption, filename," +
		"   sender_name, sender_phone, sender_id, sender_type, recipient_phone, reply_to, enrich_error))," +
		" sum(cityHash64(raw, detail_raw))," +
		" sum(toUInt64(toUInt32(sent_at)) * 1000000000 + sent_at_ns + toUInt64(toUInt32(fetched_at))" +
		"   + toUInt64(ifNull(toUInt32(delivered_at), 0)) + toUInt64(ifNull(toUInt32(read_at), 0)) + toUInt64(ifNull(toUInt32(updated_at), 0)))," +
		" toUInt64(countIf(isNull(delivered_at)) * 1000000 + countIf(isNull(read_at)) * 1000 + countIf(isNull(updated_at)))," +
		" toUInt64(sum(is_template) * 1000000 + sum(enriched))," +
		" sum(version)" +
		" FROM " + st.TableName("messages")
	if err := st.Conn().QueryRow(ctx, q).Scan(&c.Rows, &c.Strings, &c.Raw, &c.Times, &c.NullTimes, &c.Flags, &c.Versions); err != nil {
		b.Fatalf("checksum: %v", err)
	}
	return c
}

func benchFreshStore(b *testing.B, addr string) *Store {
	b.Helper()
	return benchFreshStoreWith(b, addr, "")
}

func benchFreshStoreWith(b *testing.B, addr, compression string) *Store {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := Open(ctx, Options{Addr: []string{addr}, Database: sinktest.DatabaseName(b), Compression: compression})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := st.Migrate(ctx); err != nil {
		st.Close()
		b.Fatal(err)
	}
	return st
}

// benchDrop drops a load's database at once: the rows take room, and its merges CPU.
func benchDrop(ctx context.Context, b *testing.B, st *Store) {
	b.Helper()
	if err := st.Conn().Exec(ctx, "DROP DATABASE IF EXISTS "+quoteIdent(st.Database())); err != nil {
		b.Fatal(err)
	}
}

// benchWaitMerges waits (up to a minute) until the server runs no merge.
func benchWaitMerges(b *testing.B, st *Store) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for ctx.Err() == nil {
		var n uint64
		if err := st.Conn().QueryRow(ctx, "SELECT count() FROM system.merges").Scan(&n); err != nil {
			b.Fatal(err)
		}
		if n == 0 {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// benchStructure is the structure of messageColumns in messages, for a table function.
func benchStructure(st *Store) (string, error) {
	var cols []string
	err := st.Conn().QueryRow(context.Background(), "SELECT groupArray(concat(name, ' ', type)) FROM (SELECT name, type FROM system.columns WHERE database = ? AND table = 'messages' AND has(splitByString(', ', ?), name) ORDER BY indexOf(splitByString(', ', ?), name))",
		st.Database(), messageColumns, messageColumns).Scan(&cols)
	return strings.ReplaceAll(strings.Join(cols, ", "), "'", `\'`), err
}

func benchFindClient() (string, error) {
	if p, err := exec.LookPath("clickhouse-client"); err == nil {
		return p, nil
	}
	for _, p := range []string{"/usr/bin/clickhouse-client", "/usr/local/bin/clickhouse-client"} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("clickhouse-client not found (deploy/clickhouse/clickhouse.sh install)")
}

// benchWriteTSV writes rows as ClickHouse TabSeparated, in the column order of messageColumns,
// with the values insertMessages hands the driver (dt, dtp, boolU8), and returns its size.
func benchWriteTSV(path string, rows []MessageRow) (int64, error) {
	f, err := os.Create(path)
	if err != nil {
		return 0, err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	var buf []byte
	str := func(s string) {
		buf = benchEscapeTSV(buf, s)
		buf = append(buf, '\t')
	}
	dtime := func(t time.Time) {
		buf = dt(t).AppendFormat(buf, time.DateTime)
		buf = append(buf, '\t')
	}
	ntime := func(t *time.Time) {
		if t == nil {
			buf = append(buf, `\N`...)
		} else {
			buf = dtp(t).AppendFormat(buf, time.DateTime)
		}
		buf = append(buf, '\t')
	}
	num := func(n uint64) {
		buf = strconv.AppendUint(buf, n, 10)
		buf = append(buf, '\t')
	}
	for i := range rows {
		r := &rows[i]
		buf = buf[:0]
		role := r.SenderRole
		if role == "" {
			role = SenderRole(r.Direction, r.SenderType) // as insertMessages fills it in
		}
		for _, s := range []string{r.ConversationID, r.MessageID, r.Direction, r.Type, r.Status, r.Text, r.MediaURL, r.Caption,
			r.Filename, r.SenderName, r.SenderPhone, r.SenderID, r.SenderType, role, r.RecipientPhone, r.ReplyTo} {
			str(s)
		}
		num(uint64(boolU8(r.IsTemplate)))
		dtime(r.SentAt)
		num(uint64(r.SentAt.Nanosecond()))
		ntime(r.DeliveredAt)
		ntime(r.ReadAt)
		ntime(r.UpdatedAt)
		num(uint64(boolU8(r.Enriched)))
		str(r.EnrichError)
		str(r.Raw)
		str(r.DetailRaw)
		dtime(r.FetchedAt)
		num(r.Version)
		str(r.StatusSource)
		buf[len(buf)-1] = '\n'
		if _, err := w.Write(buf); err != nil {
			f.Close()
			return 0, err
		}
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return 0, err
	}
	return fi.Size(), f.Close()
}

// benchEscapeTSV appends s escaped as a TabSeparated field: backslash, tab, newline, carriage
// return, NUL, backspace and form feed become backslash sequences.
func benchEscapeTSV(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\':
			dst = append(dst, '\\', '\\')
		case '\t':
			dst = append(dst, '\\', 't')
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case 0:
			dst = append(dst, '\\', '0')
		case '\b':
			dst = append(dst, '\\', 'b')
		case '\f':
			dst = append(dst, '\\', 'f')
		default:
			dst = append(dst, c)
		}
	}
	return dst
}

// benchMessageRows generates n message rows that look like what a sync archives from the
// real API shape: conversations of a few hundred to a few thousand messages, mostly text in
// Indonesian (with newlines, tabs, quotes and backslashes now and then), some media, and the
// list and detail answers as raw JSON (some 500-800 bytes each, like the simulator's).
func benchMessageRows(n int, seed uint64) []MessageRow {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	uuid := func() string {
		var x [16]byte
		for i := 0; i < 16; i += 8 {
			v := rng.Uint64()
			for j := 0; j < 8; j++ {
				x[i+j] = byte(v >> (8 * j))
			}
		}
		x[6] = x[6]&0x0f | 0x40
		x[8] = x[8]&0x3f | 0x80
		h := fmt.Sprintf("%x", x[:])
		return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
	}
	words := strings.Fields("halo kak selamat pagi siang sore malam terima kasih pesanan sudah dikirim belum sampai " +
		"mohon ditunggu nomor resi pembayaran transfer bank promo diskon hari ini stok tersedia ukuran warna " +
		"bisa tolong cek alamat pengiriman jakarta bandung surabaya ok baik siap kami bantu ya 🙏 😊 👍")
	names := []string{"Eko Nugroho", "Siti Rahayu", "Budi Santoso", "Dewi Lestari", "Agus Salim", "Tari", "Rina", "Bot Cekat"}
	types := []string{"text", "text", "text", "text", "text", "text", "text", "image", "document", "audio", "video"}
	statuses := []string{"read", "read", "read", "delivered", "sent", "failed"}
	inbox := map[string]any{"id": uuid(), "name": "Layanan Pelanggan", "phone_number": "+622173889096", "type": "whatsapp"}
	sentence := func() string {
		k := 3 + rng.IntN(25)
		var sb strings.Builder
		for i := 0; i < k; i++ {
			if i > 0 {
				switch rng.IntN(40) {
				case 0:
					sb.WriteString("\n")
				case 1:
					sb.WriteString("\t")
				default:
					sb.WriteString(" ")
				}
			}
			sb.WriteString(words[rng.IntN(len(words))])
		}
		switch rng.IntN(30) {
		case 0:
			sb.WriteString(` "C:\Users\kasir\struk.pdf"`)
		case 1:
			sb.WriteString("\r\n-- dikirim dari <HP> & tablet")
		}
		return sb.String()
	}
	jakarta := time.FixedZone("WIB", 7*3600)
	fetched := time.Date(2026, 1, 5, 3, 0, 0, 0, time.UTC)
	sent := time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC)

	rows := make([]MessageRow, 0, n)
	for len(rows) < n {
		conv := uuid()
		contact := map[string]any{"id": uuid(), "name": names[rng.IntN(len(names)-1)], "phone_number": fmt.Sprintf("+628%010d", rng.Uint64N(1e10))}
		agentID, agentName := uuid(), names[rng.IntN(len(names))]
		count := 50 + rng.IntN(3000)
		for k := 0; k < count && len(rows) < n; k++ {
			sent = sent.Add(time.Duration(1+rng.IntN(600))*time.Second + time.Duration(rng.IntN(1e9)))
			inbound := rng.IntN(2) == 0
			r := MessageRow{ConversationID: conv, MessageID: uuid(), Type: types[rng.IntN(len(types))],
				Status: statuses[rng.IntN(len(statuses))], SentAt: sent, Enriched: true, FetchedAt: fetched,
				Version: uint64(fetched.UnixNano()) + uint64(len(rows))}
			senderType := "user"
			if inbound {
				r.Direction = "inbound"
				r.SenderName, r.SenderPhone, r.SenderID = contact["name"].(string), contact["phone_number"].(string), contact["id"].(string)
				r.RecipientPhone = inbox["phone_number"].(string)
			} else {
				r.Direction = "outbound"
				senderType = "agent"
				r.SenderName, r.SenderID = agentName, agentID
				r.RecipientPhone = contact["phone_number"].(string)
				r.IsTemplate = rng.IntN(20) == 0
			}
			r.SenderType = senderType
			var text any
			if r.Type == "text" {
				r.Text = sentence()
				text = r.Text
			} else {
				r.MediaURL = fmt.Sprintf("https://media.cekat.ai/sim/%s/%016x", r.Type, rng.Uint64())
				if rng.IntN(2) == 0 {
					r.Caption = sentence()
					text = r.Caption
				}
				if r.Type == "document" {
					r.Filename = fmt.Sprintf("invoice-%d.pdf", rng.IntN(100000))
				}
			}
			if rng.IntN(10) == 0 && len(rows) > 0 {
				r.ReplyTo = rows[len(rows)-1-rng.IntN(min(len(rows), 20))].MessageID
			}
			if r.Status != "sent" && r.Status != "failed" {
				d := sent.Add(time.Duration(1+rng.IntN(30)) * time.Second).Truncate(time.Second)
				r.DeliveredAt = &d
			}
			if r.Status == "read" {
				t := sent.Add(time.Duration(60+rng.IntN(7200)) * time.Second).Truncate(time.Second)
				r.ReadAt = &t
			}
			if rng.IntN(5) != 0 {
				u := sent.Add(time.Duration(rng.IntN(7200)) * time.Second).Truncate(time.Second)
				r.UpdatedAt = &u
			}
			if rng.IntN(100) == 0 {
				r.EnrichError = "warning: unknown media_type \"sticker\""
			}
			item := map[string]any{
				"id": r.MessageID, "message": text, "conversation_id": conv, "sent_by": r.SenderID,
				"sent_by_name": r.SenderName, "sent_by_type": senderType, "media_type": r.Type, "media_url": benchNilIfEmpty(r.MediaURL),
				"status": r.Status, "is_template": r.IsTemplate, "created_at": sent.In(jakarta).Format("2006-01-02 15:04:05.999999-07"),
				"updated_at":      sent.Format(time.RFC3339Nano),
				"additional_data": map[string]any{"source": "whatsapp_cloud", "wa_message_id": fmt.Sprintf("wamid.HBgM%016X", rng.Uint64())},
				"contact":         contact, "inbox": inbox,
			}
			if r.ReplyTo != "" {
				item["reply_to"] = r.ReplyTo
			}
			raw, _ := json.Marshal(item)
			r.Raw = string(raw)
			if r.DeliveredAt != nil {
				item["delivered_at"] = r.DeliveredAt.In(jakarta).Format(time.DateTime)
			}
			if r.ReadAt != nil {
				item["read_at"] = r.ReadAt.Format(time.RFC3339)
			}
			item["recipient_phone"] = r.RecipientPhone
			detail, _ := json.Marshal(item)
			r.DetailRaw = string(detail)
			rows = append(rows, r)
		}
	}
	return rows
}

func benchNilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}
