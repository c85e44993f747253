package cekatsim

import (
	"runtime"
	"testing"
	"time"
)

// millionCounts spreads 1,000,000 messages over 801 conversations, one of
// them holding 200,000.
func millionCounts() []int {
	counts := []int{200000}
	for range 800 {
		counts = append(counts, 1000)
	}
	return counts
}

func TestMillionMessagesAreCheap(t *testing.T) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	t0 := time.Now()
	s, err := New(Options{Seed: 1, MessageCounts: millionCounts(), Shape: ShapeReal})
	if err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(t0)
	runtime.GC()
	runtime.ReadMemStats(&after)
	allocated := after.TotalAlloc - before.TotalAlloc
	retained := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("1,000,000 messages in %d conversations: %d bytes allocated, %d bytes retained, %v", len(s.convs), allocated, retained, elapsed)
	if allocated > 16<<20 {
		t.Fatalf("New allocated %d bytes for a million messages", allocated)
	}
	// the biggest conversation is served page by page from its newest end,
	// and its oldest messages are reachable by id
	big := s.convs[0]
	v, _ := s.snapshot(big)
	m := s.messageAt(v, 199999)
	if _, pos, ok := s.lookupMessage(m.id); !ok || pos != 199999 {
		t.Fatal("newest message of the big conversation not found by id")
	}
	first := s.messageAt(v, 0)
	if !first.ts.Before(m.ts) || m.ts.Sub(first.ts) > 400*24*time.Hour {
		t.Fatalf("big conversation spans %v .. %v", first.ts, m.ts)
	}
	runtime.KeepAlive(s)
}

func BenchmarkNewMillionMessages(b *testing.B) {
	counts := millionCounts()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := New(Options{Seed: 1, MessageCounts: counts}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkListPage(b *testing.B) {
	s, err := New(Options{Seed: 1, MessageCounts: []int{200000}, Shape: ShapeReal})
	if err != nil {
		b.Fatal(err)
	}
	v, _ := s.snapshot(s.convs[0])
	b.ReportAllocs()
	for b.Loop() {
		_ = s.each(v, 100000, 100100, func(m *msg) error { return nil })
	}
}
