package main

// Benchmark of the archiver's peak memory on a large first sync.
//
// Goal: peak RSS of the 1,000,000-message `sync --once` (one conversation of 200,000)
// at most 48 MiB.
//
// Run (ClickHouse from deploy/clickhouse/clickhouse.sh start; a few minutes):
//
//	CEKAT_ARCHIVER_TEST_CLICKHOUSE_ADDR=127.0.0.1:19000 \
//	  go test -run '^$' -bench BenchmarkSyncOnceRSS -benchtime 1x -timeout 60m ./cmd/cekat-archiver/
//
// Environment:
//
//	CEKAT_BENCH_RSS_MESSAGES       messages in all (default 1000000); a fifth of them in one
//	                               conversation, the rest spread evenly over the others.
//	                               A quick check: CEKAT_BENCH_RSS_MESSAGES=50000
//	CEKAT_BENCH_RSS_CONVERSATIONS  conversations besides the big one (default 800)
//	CEKAT_BENCH_RSS_DETAIL_CONCURRENCY  sync.detail_concurrency (default 16)
//	CEKAT_BENCH_RSS_SHAPE          simulator wire shape, real or documented (default real)
//	CEKAT_BENCH_RSS_BATCH_ROWS     sync.batch_rows, to see how the peak follows it (default: the
//	                               archiver's default, 50000)
//
// GOGC and GOMEMLIMIT, when set, reach the archiver unchanged.
//
// Both programs run as subprocesses: cmd/cekat-sim (unthrottled, on loopback) and
// `cekat-archiver sync --once --progress=none`, configured through CEKAT_ARCHIVER_*
// variables only (see benchUnthrottled for the API budget and backfill settings a run
// against an unthrottled API needs). Peak RSS is the archiver's ru_maxrss (KiB on Linux); its RSS is also
// sampled from /proc while it runs, to show how it grows. The figures are printed; only the
// archive's content is checked (every message archived once), never a timing or the RSS.

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cekat-archiver/cekat-archiver/sink/sinktest"
)

func BenchmarkSyncOnceRSS(b *testing.B) {
	addr := sinktest.Addr(b)
	total := sinktest.EnvInt(b, "CEKAT_BENCH_RSS_MESSAGES", 1000000)
	others := sinktest.EnvInt(b, "CEKAT_BENCH_RSS_CONVERSATIONS", 800)
	detailConcurrency := sinktest.EnvInt(b, "CEKAT_BENCH_RSS_DETAIL_CONCURRENCY", 16)
	shape := os.Getenv("CEKAT_BENCH_RSS_SHAPE")
	if shape == "" {
		shape = "real"
	}
	counts := benchRSSCounts(total, others)

	dir := b.TempDir()
	start := time.Now()
	build := exec.Command("go", "build", "-o", dir+string(filepath.Separator),
		"github.com/cekat-archiver/cekat-archiver/cmd/cekat-archiver", "github.com/cekat-archiver/cekat-archiver/cmd/cekat-sim")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	sinktest.BenchLogf(b, "built cekat-archiver and cekat-sim in %v", time.Since(start).Round(time.Millisecond))

	for b.Loop() {
		benchRSSRun(b, addr, dir, counts, total, detailConcurrency, shape)
	}
}

// benchRSSCounts puts a fifth of total in one conversation (200,000 of 1,000,000) and spreads
// the rest over others conversations, as evenly as whole numbers allow.
func benchRSSCounts(total, others int) []string {
	big := total / 5
	counts := []string{strconv.Itoa(big)}
	rest := total - big
	for i := 0; i < others; i++ {
		n := rest / others
		if i < rest%others {
			n++
		}
		counts = append(counts, strconv.Itoa(n))
	}
	return counts
}

func benchRSSRun(b *testing.B, addr, dir string, counts []string, total, detailConcurrency int, shape string) {
	idsFile := filepath.Join(dir, "conversations.txt")
	os.Remove(idsFile)
	simURL, simCmd := benchStartSim(b, filepath.Join(dir, "cekat-sim"), "-listen", "127.0.0.1:0", "-backoffice-listen", "",
		"-shape", shape, "-seed", "1", "-counts", strings.Join(counts, ","), "-ids-file", idsFile)
	defer func() {
		_ = simCmd.Process.Signal(syscall.SIGTERM)
		_ = simCmd.Wait()
	}()

	db := sinktest.DatabaseName(b) // created by the sync's own migration; dropped after the benchmark

	env := cleanEnviron([]string{
		"CEKAT_ARCHIVER_API_BASE_URL=" + simURL,
		"CEKAT_ARCHIVER_API_KEY=sim-api-key", // cekat-sim's default key
		"CEKAT_ARCHIVER_CLICKHOUSE_ADDR=" + addr,
		"CEKAT_ARCHIVER_CLICKHOUSE_DATABASE=" + db,
		"CEKAT_ARCHIVER_CONVERSATIONS_FILE=" + idsFile,
		"CEKAT_ARCHIVER_SYNC_DETAIL_CONCURRENCY=" + strconv.Itoa(detailConcurrency),
		"CEKAT_ARCHIVER_SYNC_SPOOL_DIR=" + filepath.Join(dir, "spool"),
	})
	env = append(env, benchUnthrottled...)
	batchRows := "50000 (default)"
	if v := os.Getenv("CEKAT_BENCH_RSS_BATCH_ROWS"); v != "" {
		env = append(env, "CEKAT_ARCHIVER_SYNC_BATCH_ROWS="+v)
		batchRows = v
	}

	var stdout, stderr benchRSSBuffer
	cmd := exec.Command(filepath.Join(dir, "cekat-archiver"), "sync", "--once", "--progress=none")
	cmd.Env, cmd.Dir = env, dir
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	samples := benchSampleRSS(cmd.Process.Pid, time.Second)
	err := cmd.Wait()
	elapsed := time.Since(start)
	timeline := samples()
	if err != nil {
		// A hung run can be sent SIGQUIT: its goroutine dump lands in this file.
		keep := filepath.Join(os.TempDir(), "cekat-bench-archiver-stderr.txt")
		_ = os.WriteFile(keep, []byte(stderr.String()), 0o644)
		b.Fatalf("cekat-archiver sync --once: %v\nstdout:\n%s\nstderr (tail; all of it in %s):\n%s", err, stdout.String(), keep, benchTail(stderr.String(), 4000))
	}
	ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		b.Fatal("no rusage for the archiver process")
	}
	peakMiB := float64(ru.Maxrss) / 1024 // ru_maxrss is in KiB on Linux
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())

	// Every message archived, exactly once.
	conn := sinktest.Conn(b)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var rows, unique uint64
	if err := conn.QueryRow(ctx, "SELECT count(), uniqExact(message_id) FROM `"+db+"`.messages FINAL").Scan(&rows, &unique); err != nil {
		b.Fatal(err)
	}
	if rows != uint64(total) || unique != uint64(total) {
		b.Errorf("archive holds %d rows (%d distinct messages) after the sync, want %d", rows, unique, total)
	}

	// When each conversation was archived (fetched_at, whole seconds): the largest one is
	// walked page after page by one worker, so its span can outlast all the others.
	var bigFirst, bigLast, restLast time.Time
	var bigCount uint64
	q, err := conn.Query(ctx, "SELECT conversation_id, count(), min(fetched_at), max(fetched_at) FROM `"+db+"`.messages GROUP BY conversation_id")
	if err != nil {
		b.Fatal(err)
	}
	for q.Next() {
		var id string
		var n uint64
		var first, last time.Time
		if err := q.Scan(&id, &n, &first, &last); err != nil {
			b.Fatal(err)
		}
		if n > bigCount {
			if bigCount > 0 && bigLast.After(restLast) {
				restLast = bigLast
			}
			bigCount, bigFirst, bigLast = n, first, last
		} else if last.After(restLast) {
			restLast = last
		}
	}
	q.Close()
	since := func(t time.Time) time.Duration { return t.Sub(start.Truncate(time.Second)) }

	b.ReportMetric(peakMiB, "peak_rss_MiB")
	b.ReportMetric(elapsed.Seconds(), "sync_s")
	b.ReportMetric(float64(total)/elapsed.Seconds(), "msg/s")
	b.ReportMetric(float64(cpu.Microseconds())/float64(total), "archiver_cpu_us/msg")
	sinktest.BenchLogf(b, "sync --once of %d messages (%d conversations, the largest %s; shape %s, detail concurrency %d, batch rows %s%s): %v, %.0f msg/s",
		total, len(counts), counts[0], shape, detailConcurrency, batchRows, benchGoEnv(), elapsed.Round(time.Millisecond), float64(total)/elapsed.Seconds())
	sinktest.BenchLogf(b, "archiver peak RSS (ru_maxrss) %.1f MiB (goal: at most 48 MiB); CPU %v user+sys (%.2f cores)",
		peakMiB, cpu.Round(time.Millisecond), cpu.Seconds()/elapsed.Seconds())
	sinktest.BenchLogf(b, "RSS every ~%v (MiB): %s", benchRSSEvery(elapsed), timeline)
	sinktest.BenchLogf(b, "archive: %d rows, %d distinct message ids (want %d)", rows, unique, total)
	sinktest.BenchLogf(b, "timeline (fetched_at, whole seconds from the start): largest conversation (%d messages) from %v to %v; all the others done by %v",
		bigCount, since(bigFirst), since(bigLast), since(restLast))
	sinktest.BenchLogf(b, "summary printed by the archiver:\n%s", strings.TrimRight(stdout.String(), "\n"))
}

// BenchmarkSyncOnceHeapProfile runs the same `sync --once` as BenchmarkSyncOnceRSS, but inside
// the test process (through run, the command's own entry point) so that heap profiles can be
// taken at its peak; cekat-sim still runs as a subprocess. It runs only when
// CEKAT_BENCH_HEAPPROFILE_DIR names a directory for the profiles; CEKAT_BENCH_RSS_MESSAGES etc.
// apply. It writes heap-peak.pb.gz (the heap profile when the live heap was highest) and
// allocs.pb.gz (every allocation of the run). main() may give the runtime a soft memory limit
// that run() does not: to profile under the same limit, set GOMEMLIMIT for the test (for
// example GOMEMLIMIT=80MiB). CEKAT_BENCH_HEAPPROFILE_SKIP (e.g. 20s) writes no
// profile before that much time has passed: the migrations' parser makes the
// first peak. Look at the profiles with
//
//	go tool pprof -sample_index=inuse_space -top DIR/heap-peak.pb.gz
//	go tool pprof -sample_index=alloc_space -top DIR/allocs.pb.gz
func BenchmarkSyncOnceHeapProfile(b *testing.B) {
	profDir := os.Getenv("CEKAT_BENCH_HEAPPROFILE_DIR")
	if profDir == "" {
		b.Skip("set CEKAT_BENCH_HEAPPROFILE_DIR to a directory for the heap profiles")
	}
	addr := sinktest.Addr(b)
	total := sinktest.EnvInt(b, "CEKAT_BENCH_RSS_MESSAGES", 1000000)
	others := sinktest.EnvInt(b, "CEKAT_BENCH_RSS_CONVERSATIONS", 800)
	detailConcurrency := sinktest.EnvInt(b, "CEKAT_BENCH_RSS_DETAIL_CONCURRENCY", 16)
	counts := benchRSSCounts(total, others)
	dir := b.TempDir()
	build := exec.Command("go", "build", "-o", dir+string(filepath.Separator), "github.com/cekat-archiver/cekat-archiver/cmd/cekat-sim")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	for b.Loop() {
		idsFile := filepath.Join(dir, "conversations.txt")
		os.Remove(idsFile)
		simURL, simCmd := benchStartSim(b, filepath.Join(dir, "cekat-sim"), "-listen", "127.0.0.1:0", "-backoffice-listen", "",
			"-shape", "real", "-seed", "1", "-counts", strings.Join(counts, ","), "-ids-file", idsFile)
		for _, kv := range os.Environ() {
			if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "CEKAT_ARCHIVER_") && k != sinktest.EnvAddr {
				b.Setenv(k, "")
			}
		}
		b.Setenv("CEKAT_ARCHIVER_API_BASE_URL", simURL)
		b.Setenv("CEKAT_ARCHIVER_API_KEY", "sim-api-key")
		b.Setenv("CEKAT_ARCHIVER_CLICKHOUSE_ADDR", addr)
		b.Setenv("CEKAT_ARCHIVER_CLICKHOUSE_DATABASE", sinktest.DatabaseName(b))
		b.Setenv("CEKAT_ARCHIVER_CONVERSATIONS_FILE", idsFile)
		b.Setenv("CEKAT_ARCHIVER_SYNC_DETAIL_CONCURRENCY", strconv.Itoa(detailConcurrency))
		for _, kv := range benchUnthrottled {
			k, v, _ := strings.Cut(kv, "=")
			b.Setenv(k, v)
		}

		runtime.GC()
		stop := benchWatchHeap(b, filepath.Join(profDir, "heap-peak.pb.gz"))
		var stdout, stderr benchRSSBuffer
		start := time.Now()
		code := run([]string{"sync", "--once", "--progress=none"}, &stdout, &stderr)
		elapsed := time.Since(start)
		peak := stop()
		_ = simCmd.Process.Signal(syscall.SIGTERM)
		_ = simCmd.Wait()
		if code != 0 {
			b.Fatalf("sync --once exited %d\n%s\n%s", code, stdout.String(), benchTail(stderr.String(), 4000))
		}
		f, err := os.Create(filepath.Join(profDir, "allocs.pb.gz"))
		if err != nil {
			b.Fatal(err)
		}
		if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
			b.Fatal(err)
		}
		f.Close()
		sinktest.BenchLogf(b, "in-process sync --once of %d messages: %v; %s", total, elapsed.Round(time.Millisecond), peak)
		sinktest.BenchLogf(b, "profiles in %s", profDir)
	}
}

// benchWatchHeap samples the Go runtime's memory figures every 20 ms (runtime/metrics, which
// does not stop the world) and writes a heap profile to path whenever the live heap (what the
// last collection found reachable) reaches a new peak: a heap profile describes the heap as of
// the last collection, so it is the profile of that peak. The returned function stops it and
// describes the peaks.
func benchWatchHeap(b *testing.B, path string) func() string {
	stop := make(chan struct{})
	done := make(chan string)
	go func() {
		samples := []metrics.Sample{
			{Name: "/gc/heap/live:bytes"},
			{Name: "/memory/classes/heap/objects:bytes"},
			{Name: "/gc/heap/goal:bytes"},
			{Name: "/memory/classes/total:bytes"},
		}
		var peakLive, peakObjects, peakGoal, peakTotal, peakRSS, written uint64
		// The migrations' parser peaks first (4 MiB buffers); skipping the
		// start shows the sync's own peak.
		skip, _ := time.ParseDuration(os.Getenv("CEKAT_BENCH_HEAPPROFILE_SKIP"))
		began := time.Now()
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				done <- fmt.Sprintf("peak live heap %.1f MiB; peak heap objects (live and not yet collected) %.1f MiB; "+
					"peak heap goal %.1f MiB; peak memory mapped by the Go runtime %.1f MiB; peak RSS of the test process %.1f MiB",
					float64(peakLive)/(1<<20), float64(peakObjects)/(1<<20), float64(peakGoal)/(1<<20),
					float64(peakTotal)/(1<<20), float64(peakRSS)/(1<<20))
				return
			case <-t.C:
			}
			metrics.Read(samples)
			live, objects, goal, total := samples[0].Value.Uint64(), samples[1].Value.Uint64(), samples[2].Value.Uint64(), samples[3].Value.Uint64()
			peakLive, peakObjects, peakGoal, peakTotal = max(peakLive, live), max(peakObjects, objects), max(peakGoal, goal), max(peakTotal, total)
			if data, err := os.ReadFile("/proc/self/status"); err == nil {
				for _, line := range strings.Split(string(data), "\n") {
					if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
						if kib, err := strconv.ParseUint(f[1], 10, 64); err == nil {
							peakRSS = max(peakRSS, kib*1024)
						}
					}
				}
			}
			if live > written+written/20 && time.Since(began) >= skip {
				written = live
				if f, err := os.Create(path); err == nil {
					if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
						b.Error(err)
					}
					f.Close()
				}
			}
		}
	}()
	return func() string {
		close(stop)
		return <-done
	}
}

// benchUnthrottled configures the archiver for the unthrottled simulator: a client-side API
// budget far above what the machine can do and no daily cap (the defaults, 60 a minute and
// 1,000 a day, would make a 1,000,000-message run last for years), and no bound on the time
// spent on history (the default 4m would leave most of it for later runs).
var benchUnthrottled = []string{
	"CEKAT_ARCHIVER_API_RATE_LIMIT_PER_MINUTE=10000000",
	"CEKAT_ARCHIVER_API_RATE_LIMIT_PER_DAY=0",
	"CEKAT_ARCHIVER_SYNC_BACKFILL_MAX_DURATION=24h",
}

// benchGoEnv names the Go runtime settings passed on to the archiver, if any.
func benchGoEnv() string {
	var s string
	for _, k := range []string{"GOGC", "GOMEMLIMIT", "GOMAXPROCS"} {
		if v := os.Getenv(k); v != "" {
			s += ", " + k + "=" + v
		}
	}
	return s
}

// benchStartSim starts cekat-sim and returns its base URL, read from its log line.
func benchStartSim(b *testing.B, bin string, args ...string) (string, *exec.Cmd) {
	b.Helper()
	cmd := exec.Command(bin, args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	found := make(chan string, 1)
	var logMu sync.Mutex
	var log strings.Builder
	go func() {
		re := regexp.MustCompile(`messages API listening on (http://\S+)`)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			logMu.Lock()
			log.WriteString(sc.Text() + "\n")
			logMu.Unlock()
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case found <- m[1]:
				default:
				}
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
	}()
	select {
	case u := <-found:
		return u, cmd
	case <-time.After(time.Minute):
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		logMu.Lock()
		defer logMu.Unlock()
		b.Fatalf("cekat-sim did not start listening:\n%s", log.String())
	}
	return "", nil
}

// benchSampleRSS reads VmRSS of pid every interval until the returned function is called,
// which returns the samples thinned out to about 30 figures, in MiB.
func benchSampleRSS(pid int, interval time.Duration) func() string {
	stop := make(chan struct{})
	done := make(chan []float64)
	go func() {
		var got []float64
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-stop:
				done <- got
				return
			case <-t.C:
			}
			data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
			if err != nil {
				continue
			}
			for _, line := range strings.Split(string(data), "\n") {
				if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
					if kib, err := strconv.ParseFloat(f[1], 64); err == nil {
						got = append(got, kib/1024)
					}
				}
			}
		}
	}()
	return func() string {
		close(stop)
		got := <-done
		step := max(1, (len(got)+29)/30)
		var parts []string
		for i := 0; i < len(got); i += step {
			parts = append(parts, fmt.Sprintf("%.0f", got[i]))
		}
		return strings.Join(parts, " ")
	}
}

// benchRSSEvery is the interval between the figures benchSampleRSS keeps.
func benchRSSEvery(elapsed time.Duration) time.Duration {
	n := int(elapsed / time.Second)
	return time.Duration(max(1, (n+29)/30)) * time.Second
}

type benchRSSBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (w *benchRSSBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *benchRSSBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

func benchTail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}
