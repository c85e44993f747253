package budget

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"
)

func TestSecondBuckets(t *testing.T) {
	var b secondBuckets
	t0 := time.Date(2025, 6, 1, 10, 0, 0, 0, time.UTC)
	for i := range 120 {
		b.add(t0.Add(time.Duration(i)*500*time.Millisecond), 1) // 2 a second for 60 s
	}
	end := t0.Add(59*time.Second + 500*time.Millisecond)
	if n := b.count(end); n != 120 {
		t.Fatalf("count at the last grant = %d, want 120", n)
	}
	if n := b.count(end.Add(time.Second)); n != 118 {
		t.Fatalf("a second later = %d, want 118 (the first second left the minute)", n)
	}
	if n := b.count(end.Add(time.Minute)); n != 0 {
		t.Fatalf("a minute later = %d, want 0", n)
	}
	b.add(end, -1)
	if n := b.count(end); n != 119 {
		t.Fatalf("after taking one back = %d, want 119", n)
	}
	// Taking back a grant whose second has been reused changes nothing.
	b.add(t0.Add(-time.Minute), -1)
	if n := b.count(end); n != 119 {
		t.Fatalf("after taking back a stale grant = %d, want 119", n)
	}
	// A bucket reused by a later second starts from zero.
	b.add(end.Add(time.Minute), 1)
	if n := b.count(end.Add(time.Minute)); n != 1 {
		t.Fatalf("a reused bucket = %d, want 1", n)
	}
}

// TestRemainingCountsTheLastMinute: what Remaining says is left of the
// minute follows the grants of the last 60 seconds.
func TestRemainingCountsTheLastMinute(t *testing.T) {
	l, clk := newTestLimiter(t, Options{PerMinute: 600, Headroom: 0.001})
	for range 300 {
		mustWait(t, l, PriorityNew)
		l.Observe("list", 200, nil)
		clk.Advance(l.interval())
	}
	if m, _ := l.Remaining(); m < 299 || m > 301 {
		t.Fatalf("Remaining after 300 grants in 30 s: %d, want about 300", m)
	}
	clk.Advance(61 * time.Second)
	if m, _ := l.Remaining(); m != 600 {
		t.Fatalf("Remaining a minute later: %d, want 600", m)
	}
}

// BenchmarkLimiterHeap prints the heap a Limiter holds after a minute of
// grants at a high rate (the simulator unthrottled, as in the RSS
// benchmark): before per-second buckets it kept the time of each.
//
//	go test -run '^$' -bench LimiterHeap ./syncer/budget/
func BenchmarkLimiterHeap(b *testing.B) {
	for _, perSecond := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("%d/s", perSecond), func(b *testing.B) {
			var held uint64
			for range b.N {
				clk := newFakeClock()
				l, err := New(Options{PerMinute: perSecond * 120, Now: clk.Now})
				if err != nil {
					b.Fatal(err)
				}
				l.afterFunc = clk.AfterFunc
				step := time.Second / time.Duration(perSecond)
				var before runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				for range 60 * perSecond {
					if err := l.Wait(context.Background(), "detail"); err != nil {
						b.Fatal(err)
					}
					l.Observe("detail", 200, nil)
					clk.Advance(step)
				}
				var after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&after)
				held = after.HeapAlloc - min(before.HeapAlloc, after.HeapAlloc)
				runtime.KeepAlive(l)
			}
			b.ReportMetric(float64(held)/1024, "KiB-held")
		})
	}
}
