// Package shard splits the tracked conversations among several archivers
// with no coordinator: each conversation belongs to exactly one shard,
// chosen by rendezvous (highest random weight) hashing of its id. Every
// shard scores each id with every shard number and the highest score wins,
// so changing the number of shards from n to n+1 moves only the ids that
// the new shard wins (about 1/(n+1) of them), and all of them to it; the
// others stay where they were.
//
// The hash is part of the archive's contract: two processes must agree on
// it, and changing it moves almost every conversation at once. The test
// pins known values.
package shard

import (
	"fmt"
	"hash/fnv"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// Shard is one archiver's part of the conversations: shard Index of Count.
// The zero value (and any Count of 1 or less) is the whole: no sharding.
type Shard struct {
	Index, Count int
}

// Sharded says whether the conversations are split at all.
func (s Shard) Sharded() bool { return s.Count > 1 }

// Owns says whether the conversation id belongs to this shard.
func (s Shard) Owns(id string) bool {
	return !s.Sharded() || Of(id, s.Count) == s.Index
}

// Filter returns the ids this shard owns, in their order. The input is
// returned unchanged when there is no sharding.
func (s Shard) Filter(ids []string) []string {
	if !s.Sharded() {
		return ids
	}
	out := make([]string, 0, len(ids)/s.Count+1)
	for _, id := range ids {
		if s.Owns(id) {
			out = append(out, id)
		}
	}
	return out
}

// ID names the shard as "index/count" ("2/3"), or "" when there is no
// sharding: what the archive records of the runs of this shard.
func (s Shard) ID() string {
	if !s.Sharded() {
		return ""
	}
	return fmt.Sprintf("%d/%d", s.Index, s.Count)
}

// Of returns the shard, in [0, count), that owns id.
func Of(id string, count int) int {
	if count <= 1 {
		return 0
	}
	h := fnv.New64a()
	h.Write([]byte(id))
	key := h.Sum64()
	best, bestScore := 0, uint64(0)
	for i := range count {
		// The shard number is mixed in before the final mix, so each
		// shard's scores are independent of the others'.
		if score := mix(key ^ mix(uint64(i)+1)); i == 0 || score > bestScore {
			best, bestScore = i, score
		}
	}
	return best
}

// mix is the finalizer of SplitMix64: every input bit flips about half of
// the output bits, which FNV alone does not do for ids that differ in their
// last characters.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// Info is the gauge cekat_archiver_shard_info, always 1, whose labels say
// which shard this process is (index 0 of count 1 when not sharded), so
// that dashboards can sum or compare the shards' metrics.
func Info(s Shard) prometheus.Collector {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "cekat_archiver", Name: "shard_info",
		Help: "The shard this archiver is (shard.index of shard.count); always 1."}, []string{"index", "count"})
	g.WithLabelValues(strconv.Itoa(s.Index), strconv.Itoa(max(s.Count, 1))).Set(1)
	return g
}
