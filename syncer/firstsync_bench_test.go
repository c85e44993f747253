package syncer_test

import (
	"context"
	"flag"
	"runtime"
	"testing"

	"github.com/cekat-archiver/cekat-archiver/syncer"
	"github.com/cekat-archiver/cekat-archiver/syncer/budget"
	"github.com/cekat-archiver/cekat-archiver/syncer/cekatsim"
)

var firstSyncMessages = flag.Int("firstsync.messages", 1_000_000, "BenchmarkFirstSyncAtScale: messages of history")

// BenchmarkFirstSyncAtScale is a first sync of a large history at the smallest plan's daily
// cap: every message archived from the list pages (ceil(n/100) per conversation), the detail
// calls left to the backlog. It prints the calls, the bound and the memory the run took.
//
//	go test -run '^$' -bench FirstSyncAtScale -benchtime 1x ./syncer/ [-args -firstsync.messages N]
func BenchmarkFirstSyncAtScale(b *testing.B) {
	n := *firstSyncMessages
	// Conversations of 20,000 down to 50 messages, as a workspace's are: a few long, many
	// short (twice as many at each smaller size).
	var counts []int
	sizes := []int{20000, 10000, 5000, 2000, 1000, 500, 200, 100, 50}
	for left := n; left > 0; {
		for i, size := range sizes {
			for k := 0; k < 2<<i && left > 0; k++ {
				c := min(size, left)
				counts = append(counts, c)
				left -= c
			}
		}
	}
	bound := int64(1) // the conversation list
	for _, c := range counts {
		bound += int64((c + 99) / 100)
	}
	for i := 0; i < b.N; i++ {
		bed := newBudgetBed(b, cekatsim.Options{Seed: 26, MessageCounts: counts}, 1000+int(bound), budget.Pace{}, syncer.Options{})
		var before runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		b.ResetTimer()
		sum := bed.engine.Sync(context.Background(), nil)
		b.StopTimer()
		if err := sum.Failure(); err != nil {
			b.Fatal(err)
		}
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		missing, extra, enriched, total := bed.completeness()
		b.Logf("figure: first sync of %d messages in %d conversations: archived %d, missing %d, not upstream %d, enriched %d; "+
			"list calls %d (bound ceil(n/100) summed + 1: %d), detail calls %d; backlog %v; heap allocated %d MiB",
			total, len(counts), total-missing, missing, extra, enriched, bed.list.Load(), bound, bed.detail.Load(), sum.Backlog,
			(after.TotalAlloc-before.TotalAlloc)>>20)
		if missing != 0 || extra != 0 {
			b.Errorf("%d missing, %d not upstream", missing, extra)
		}
		if got := bed.list.Load(); got > bound {
			b.Errorf("%d list calls, want at most %d", got, bound)
		}
	}
}
