package syncer

import (
	"sync"

	"github.com/cekat-archiver/cekat-archiver/syncer/cekat"
)

// RequestStats counts API requests by endpoint. Wire Observe into the
// client's OnRequest hook.
type RequestStats struct {
	metrics *Metrics
	mu      sync.Mutex
	counts  map[string]int64
}

// NewRequestStats returns empty counts that also feed m, when m is not nil.
func NewRequestStats(m *Metrics) *RequestStats {
	return &RequestStats{metrics: m, counts: map[string]int64{}}
}

// Observe counts one HTTP attempt.
func (s *RequestStats) Observe(info cekat.RequestInfo) {
	s.mu.Lock()
	s.counts[info.Endpoint]++
	s.mu.Unlock()
	s.metrics.ObserveRequest(info)
}

// Counts is requests by endpoint.
type Counts map[string]int64

// Snapshot copies the counts so far.
func (s *RequestStats) Snapshot() Counts {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(Counts, len(s.counts))
	for k, v := range s.counts {
		out[k] = v
	}
	return out
}

// Sub returns c minus an earlier snapshot.
func (c Counts) Sub(earlier Counts) map[string]int64 {
	out := map[string]int64{}
	for k, v := range c {
		if d := v - earlier[k]; d != 0 {
			out[k] = d
		}
	}
	return out
}
