package syncer_test

import (
	"flag"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cekat-archiver/cekat-archiver/syncer/cekatsim"
)

var capacityDays = flag.Int("capacity.days", 3, "virtual days BenchmarkCapacity simulates after the first run")

var capacityEvery = flag.Duration("capacity.every", 0, "how often BenchmarkCapacity's runs start (0: each plan's own)")

var capacityWebhooks = flag.Bool("capacity.webhooks", false, "BenchmarkCapacity's workspaces send webhook events too")

var capacityNoPolling = flag.Bool("capacity.nopolling", false, "BenchmarkCapacity tries discovery only")

var capacityInbox = flag.String("capacity.inbox", "auto", "BenchmarkCapacity's runs list the whole inbox first: auto (under a daily cap), on or off")

var capacitySizes = flag.String("capacity.sizes", "", "new messages a day BenchmarkCapacity tries (comma-separated; empty: each plan's own)")

// A plan of the API: its rate and daily cap, and how often the archiver
// runs on it (the looks are batched where the cap bounds how often
// conversations can be listed).
type capacityPlan struct {
	name              string
	perMinute, perDay int
	runEvery          time.Duration
	sizes             []int // new messages a day to try, smallest first
}

// capacityOK says whether a simulated workspace was kept content-complete:
// no new message missing after a run's interval, a lag of at most an hour at p95, no run stopped by a
// spent day (no hour without news), never more calls a day than the cap nor
// more in a run than the plan's rate allows over the run's interval.
func capacityOK(p capacityPlan, r weekResult) (bool, string) {
	var why []string
	for i, d := range r.days {
		if d.missingNew > 0 {
			why = append(why, fmt.Sprintf("day %d: %d new messages missing", i+1, d.missingNew))
		}
		if p.perDay > 0 && d.capCalls > int64(p.perDay) {
			why = append(why, fmt.Sprintf("day %d: %d calls", i+1, d.capCalls))
		}
	}
	if r.fresh95 > time.Hour {
		why = append(why, "lag p95 "+r.fresh95.Round(time.Minute).String())
	}
	if r.darkRuns > 0 {
		why = append(why, fmt.Sprintf("%d runs stopped by the day's cap", r.darkRuns))
	}
	// The first run (the history) may take several intervals.
	if limit := int64(p.perMinute) * int64(p.runEvery/time.Minute); r.steadyMaxRun > limit {
		why = append(why, fmt.Sprintf("a run made %d calls, the rate allows %d a run", r.steadyMaxRun, limit))
	}
	return len(why) == 0, strings.Join(why, "; ")
}

// BenchmarkCapacity prints the capacity table: for each documented plan,
// with discovery (the conversation list each run) and without (polling),
// the largest of the tried workspaces (new messages a day in 500
// conversations) that the archiver keeps content-complete, with the share
// enriched at each day's end and the calls a day. Nothing is timed:
//
//	go test -run '^$' -bench Capacity -benchtime 1x -timeout 60m ./syncer/
//
// -capacity.days sets the days simulated, -capacity.sizes the workspaces tried.
func BenchmarkCapacity(b *testing.B) {
	plans := []capacityPlan{
		{name: "60/min + 1,000/day", perMinute: 60, perDay: 1000, runEvery: time.Hour, sizes: []int{1000, 3000, 5000}},
		{name: "300/min + 10,000/day", perMinute: 300, perDay: 10000, runEvery: 15 * time.Minute, sizes: []int{10000, 30000}},
		{name: "1,000/min unlimited", perMinute: 1000, runEvery: 5 * time.Minute, sizes: []int{2000, 10000}},
	}
	for _, p := range plans {
		sizes := p.sizes
		if *capacityEvery > 0 {
			p.runEvery = *capacityEvery
		}
		if *capacitySizes != "" {
			sizes = nil
			for _, f := range strings.Split(*capacitySizes, ",") {
				n, err := strconv.Atoi(strings.TrimSpace(f))
				if err != nil {
					b.Fatal(err)
				}
				sizes = append(sizes, n)
			}
		}
		for _, discovery := range []bool{true, false} {
			if !discovery && *capacityNoPolling {
				continue
			}
			how := "polling"
			if discovery {
				how = "discovery"
			}
			if *capacityWebhooks {
				how += " + webhooks"
			}
			inbox := *capacityInbox == "on" || (*capacityInbox == "auto" && p.perDay > 0)
			if inbox {
				how += " + inbox listing"
			}
			b.Run(p.name+"/"+how, func(b *testing.B) {
				best := 0
				for _, size := range sizes {
					r := runWeek(b, weekConfig{shape: cekatsim.ShapeReal, conversations: 500, meanHistory: 30, perDay: size,
						days: *capacityDays, runEvery: p.runEvery, discovery: discovery, webhooks: *capacityWebhooks, capPerDay: p.perDay,
						capPerMinute: p.perMinute, inbox: inbox})
					ok, why := capacityOK(p, r)
					var calls, lists, share []string
					for _, d := range r.days {
						lists = append(lists, strconv.FormatInt(d.list, 10))
						n := d.calls
						if p.perDay > 0 {
							n = d.capCalls // midnight to midnight, the first run included
						}
						calls = append(calls, strconv.FormatInt(n, 10))
						share = append(share, fmt.Sprintf("%.0f%%", 100*float64(d.enriched)/float64(max(d.archived, 1))))
					}
					active := 0
					for _, d := range r.days {
						active = max(active, d.active)
					}
					history := 0
					if n := len(r.days); n > 0 {
						history = r.days[n-1].missing - r.days[n-1].missingNew
					}
					fmt.Printf("capacity: %s, %s, runs every %v: %d new messages a day (%d conversations active a day at most): ok=%v %s; "+
						"lag p50 %v p95 %v; calls a day %s (list calls %s); enriched at each day's end %s; most calls in a run %d; "+
						"history of %d messages not yet listed at the end %d\n",
						p.name, how, p.runEvery, size, active, ok, why, r.fresh50.Round(time.Second), r.fresh95.Round(time.Second),
						strings.Join(calls, ", "), strings.Join(lists, ", "), strings.Join(share, ", "), r.steadyMaxRun, r.history, max(history, 0))
					if ok {
						best = size
					}
				}
				fmt.Printf("capacity: %s, %s: largest workspace kept complete of those tried: %d new messages a day\n", p.name, how, best)
			})
		}
	}
}
