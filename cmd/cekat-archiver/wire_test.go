package main

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cekat-archiver/cekat-archiver/config"
	"github.com/cekat-archiver/cekat-archiver/sink"
)

type fakeCounter struct {
	since  []time.Time
	shards []string
	n      int
}

func (f *fakeCounter) RequestsSince(_ context.Context, t time.Time, shard string) (int, error) {
	f.since = append(f.since, t)
	f.shards = append(f.shards, shard)
	return f.n, nil
}

// The daily budget is the API's day: it resets at midnight in api.timezone,
// and what today's runs spent is counted from that midnight.
func TestLimiterDayIsTheAPIsDay(t *testing.T) {
	for _, zone := range []string{"", "UTC", "America/New_York"} {
		cfg := config.Default()
		if zone != "" {
			cfg.API.Timezone = zone
		}
		loc := cfg.API.Location()
		if zone == "" && loc.String() != "Asia/Jakarta" {
			t.Fatalf("default api.timezone %s, want Asia/Jakarta", loc)
		}
		cfg.API.RateLimit.PerDay = 100
		spent := &fakeCounter{n: 40}
		before := time.Now()
		l, err := newLimiter(context.Background(), cfg, spent, prometheus.NewRegistry())
		if err != nil {
			t.Fatal(err)
		}
		after := time.Now()
		if len(spent.since) != 1 {
			t.Fatalf("%s: RequestsSince called %d times", loc, len(spent.since))
		}
		since := spent.since[0]
		if h, m, s := since.In(loc).Clock(); h != 0 || m != 0 || s != 0 || since.Nanosecond() != 0 {
			t.Errorf("%s: today's spend counted from %v, not midnight there", loc, since.In(loc))
		}
		if since.After(before) || after.Sub(since) > 25*time.Hour {
			t.Errorf("%s: today's spend counted from %v, not today's midnight", loc, since)
		}
		st := l.Stats()
		if want := since.In(loc).AddDate(0, 0, 1); !st.DayResets.Equal(want) {
			t.Errorf("%s: the day resets at %v, want %v", loc, st.DayResets, want)
		}
		if st.DayUsed != 40 {
			t.Errorf("%s: day used %d, want the 40 recorded", loc, st.DayUsed)
		}
	}
}

// A shard spends its part of the one upstream limit, and its day starts
// from what its own runs recorded.
func TestLimiterOfAShard(t *testing.T) {
	cfg := config.Default()
	cfg.API.RateLimit = config.RateLimit{PerMinute: 60, PerDay: 900}
	cfg.Shard = config.Shard{Index: "cekat-archiver-1", Count: 3}
	spent := &fakeCounter{n: 40}
	l, err := newLimiter(context.Background(), cfg, spent, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	if len(spent.shards) != 1 || spent.shards[0] != "1/3" {
		t.Errorf("today's spend read for shards %q, want [1/3]", spent.shards)
	}
	if got := l.Stats().Limit; got != 20 {
		t.Errorf("paced to %d a minute, want 60 / 3 = 20", got)
	}
	if _, day := l.Remaining(); day != 300-40 {
		t.Errorf("%d requests left today, want 900 / 3 - 40 = 260", day)
	}
}

// The config's defaults for a cluster are the sink's: one value, whoever
// opens the store.
func TestClusterDefaultsAreTheSinks(t *testing.T) {
	d := config.Default().ClickHouse
	if d.ZooKeeperPath != sink.DefaultZooKeeperPath || d.ReplicaName != sink.DefaultReplicaName {
		t.Errorf("config defaults %q, %q; sink's %q, %q", d.ZooKeeperPath, d.ReplicaName, sink.DefaultZooKeeperPath, sink.DefaultReplicaName)
	}
}
