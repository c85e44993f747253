package budget

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/cekat-archiver/cekat-archiver/syncer/cekatsim"
)

var (
	benchMeasure = flag.Duration("budget.measure", 4*time.Minute, "measured period of BenchmarkBackfill (wall clock)")
	benchWarmup  = flag.Duration("budget.warmup", 10*time.Second, "time BenchmarkBackfill runs before it measures")
)

type benchCase struct {
	server, configured int
	latency            time.Duration
	headers            cekatsim.RateHeaders
	aligned            bool
}

// BenchmarkBackfill measures, on the wall clock, how much of the server's
// limit a long backfill uses and how many 429s it gets, against simulators
// limited to 10, 60 and 300 requests a minute (configured alike), and 40
// (configured 60), each sending all X-RateLimit-* headers, only Limit and
// Remaining (no Reset), or none, with minute windows that start at the
// first request or are the clock's minutes (matching limits only), each
// without and with 200 ms added latency. Every configuration runs at once
// against its own simulator, so the whole takes -budget.warmup +
// -budget.measure (4m10s by default). Utilization is the requests the
// server accepted during the measured period over what its limit allows in
// that period; 429s are counted over the whole run, warm-up included.
//
//	go test -run '^$' -bench Backfill ./syncer/budget/
func BenchmarkBackfill(b *testing.B) {
	const workers = 6
	var cases []benchCase
	for _, lat := range []time.Duration{0, 200 * time.Millisecond} {
		for _, h := range []cekatsim.RateHeaders{cekatsim.RateHeadersAll, cekatsim.RateHeadersLimitRemaining, cekatsim.RateHeadersNone} {
			for _, aligned := range []bool{false, true} {
				for _, n := range []int{10, 60, 300} {
					cases = append(cases, benchCase{n, n, lat, h, aligned})
				}
			}
			cases = append(cases, benchCase{40, 60, lat, h, false})
		}
	}
	envs := make([]*simEnv, len(cases))
	for i, c := range cases {
		envs[i] = newSimEnv(b, envOptions{
			sim: cekatsim.Options{Seed: int64(i + 1), Conversations: 20, MeanMessages: 400,
				RatePerMinute: c.server, RetryAfter: true, Latency: c.latency,
				RateHeaders: c.headers, RateWindowAligned: c.aligned},
			lim:     Options{PerMinute: c.configured},
			workers: workers,
		})
	}
	b.ResetTimer()
	ctx, cancel := context.WithCancel(context.Background())
	loads := make([]*backfill, len(cases))
	for i, env := range envs {
		loads[i] = startBackfill(ctx, env, workers)
	}
	time.Sleep(*benchWarmup)
	before := make([]cekatsim.Counts, len(envs))
	for i, env := range envs {
		before[i] = env.sim.Counts()
	}
	t0 := time.Now()
	time.Sleep(*benchMeasure)
	after := make([]cekatsim.Counts, len(envs))
	for i, env := range envs {
		after[i] = env.sim.Counts()
	}
	measured := time.Since(t0)
	cancel()
	for _, l := range loads {
		l.wg.Wait()
	}
	b.StopTimer()

	var out strings.Builder
	fmt.Fprintf(&out, "\nlong backfill, %d workers, list + detail calls; measured %v after %v of warm-up\n\n", workers, measured.Round(time.Millisecond), *benchWarmup)
	tw := tabwriter.NewWriter(&out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "server/min\tconfigured/min\trate headers\twindows\tlatency\tmade\tallowed\tutilization\t429s\tpauses\tpace now/min\tfailed calls\t")
	minMatch, matched429, lower429 := 1e9, 0, 0
	minByHeaders := map[cekatsim.RateHeaders]float64{}
	for i, c := range cases {
		made := (after[i].Total - after[i].RateLimited) - (before[i].Total - before[i].RateLimited)
		allowed := float64(c.server) * measured.Minutes()
		util := float64(made) / allowed
		s := envs[i].lim.Stats()
		windows := "first request"
		if c.aligned {
			windows = "clock minute"
		}
		fmt.Fprintf(tw, "%d\t%d\t%s\t%s\t%v\t%d\t%.1f\t%.1f%%\t%d\t%d\t%d\t%d\t\n",
			c.server, c.configured, c.headers, windows, c.latency, made, allowed, 100*util,
			after[i].RateLimited, s.Pauses, s.Limit, loads[i].failures.Load())
		if c.server == c.configured {
			minMatch = min(minMatch, util)
			matched429 += after[i].RateLimited
			if m, ok := minByHeaders[c.headers]; !ok || util < m {
				minByHeaders[c.headers] = util
			}
		} else {
			lower429 += after[i].RateLimited
		}
	}
	tw.Flush()
	fmt.Fprintln(os.Stdout, out.String())
	b.ReportMetric(100*minMatch, "min-util-%")
	for h, m := range minByHeaders {
		b.ReportMetric(100*m, "min-util-"+string(h)+"-%")
	}
	b.ReportMetric(float64(matched429), "429s-matched")
	b.ReportMetric(float64(lower429), "429s-lower")
}
