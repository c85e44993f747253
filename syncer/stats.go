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

// Observe counts one HTTP attempt, also in the run its call was made for.
func (s *RequestStats) Observe(info cekat.RequestInfo) {
	s.mu.Lock()
	s.counts[info.Endpoint]++
	s.mu.Unlock()
	if a := accountOf(info.Context); a != nil {
		a.observe(info.Endpoint)
	}
	s.metrics.ObserveRequest(info)
}

// RecordingLimiter wraps the client's limiter: a call made for a run is
// sent only once the run's row in the archive counts it, so that the daily
// budget read from sync_runs after a crash counts every request sent. Wire
// it into the client's Limiter, and RequestStats.Observe into its
// OnRequest.
func RecordingLimiter(inner cekat.Limiter) cekat.Limiter {
	return accountingLimiter{inner: inner}
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
