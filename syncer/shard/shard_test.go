package shard_test

import (
	"fmt"
	"math"
	"testing"

	"github.com/cekat-archiver/cekat-archiver/syncer/shard"
)

// ids are both shapes of conversation ids the API uses: short sequential
// ones (which differ only in their last characters) and UUIDs.
func ids(n int) []string {
	out := make([]string, 0, n)
	for i := range n / 2 {
		out = append(out, fmt.Sprintf("conv_%04d", i))
	}
	for i := n / 2; i < n; i++ {
		out = append(out, fmt.Sprintf("%08x-4f1c-4a3b-9d2e-%012x", i*2654435761, i))
	}
	return out
}

func TestEveryIDInExactlyOneShard(t *testing.T) {
	all := ids(10000)
	for count := 1; count <= 8; count++ {
		perShard := make([]int, count)
		for _, id := range all {
			owners := 0
			for i := range count {
				if (shard.Shard{Index: i, Count: count}).Owns(id) {
					owners++
					perShard[i]++
				}
			}
			if owners != 1 {
				t.Fatalf("count %d: %s is owned by %d shards", count, id, owners)
			}
		}
		// Balanced: each shard within 10% of its fair part (about 6
		// standard deviations for 10,000 ids, so a failure is a bad hash).
		fair := float64(len(all)) / float64(count)
		for i, n := range perShard {
			if math.Abs(float64(n)-fair) > 0.1*fair {
				t.Errorf("count %d: shard %d owns %d ids, fair part %.0f", count, i, n, fair)
			}
		}
		// Filter agrees with Owns and keeps the order.
		total := 0
		for i := range count {
			total += len(shard.Shard{Index: i, Count: count}.Filter(all))
		}
		if total != len(all) {
			t.Errorf("count %d: the shards' filters keep %d ids of %d", count, total, len(all))
		}
	}
}

// Growing from n to n+1 shards moves about 1/(n+1) of the ids, every one
// of them to the new shard.
func TestGrowingMovesFewAndOnlyToTheNewShard(t *testing.T) {
	all := ids(20000)
	for _, n := range []int{1, 2, 3, 7} {
		moved := 0
		for _, id := range all {
			before, after := shard.Of(id, n), shard.Of(id, n+1)
			if before == after {
				continue
			}
			moved++
			if after != n {
				t.Fatalf("%d -> %d shards: %s moved from shard %d to %d, not to the new shard", n, n+1, id, before, after)
			}
		}
		got, want := float64(moved)/float64(len(all)), 1/float64(n+1)
		t.Logf("%d -> %d shards: %.4f of the ids moved (ideal %.4f)", n, n+1, got, want)
		if math.Abs(got-want) > 0.02 {
			t.Errorf("%d -> %d shards: %.4f of the ids moved, want about %.4f", n, n+1, got, want)
		}
	}
}

// The hash is shared by every process of a deployment, across versions:
// changing it would move almost every conversation at once.
func TestTheHashIsStable(t *testing.T) {
	for id, want := range map[string][4]int{ // owner among 2, 3, 4 and 5 shards
		"conv_0001":                            {1, 1, 1, 1},
		"conv_0002":                            {1, 1, 1, 1},
		"conv_abc123":                          {0, 2, 2, 2},
		"3f2b8c1e-9a4d-4e7b-8c21-5d6f7a8b9c0d": {0, 0, 0, 4},
		"msg_001":                              {1, 1, 1, 1},
	} {
		for i, n := range []int{2, 3, 4, 5} {
			if got := shard.Of(id, n); got != want[i] {
				t.Errorf("Of(%q, %d) = %d, want %d", id, n, got, want[i])
			}
		}
	}
}

func TestUnshardedOwnsEverything(t *testing.T) {
	for _, s := range []shard.Shard{{}, {Index: 0, Count: 1}} {
		if !s.Owns("anything") || s.Sharded() || s.ID() != "" {
			t.Errorf("%+v: owns %v, sharded %v, id %q", s, s.Owns("anything"), s.Sharded(), s.ID())
		}
	}
	if got := (shard.Shard{Index: 2, Count: 3}).ID(); got != "2/3" {
		t.Errorf("ID: %q", got)
	}
}
