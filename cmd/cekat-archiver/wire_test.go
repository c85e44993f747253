package main

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cekat-archiver/cekat-archiver/config"
)

type fakeCounter struct {
	since []time.Time
	n     int
}

func (f *fakeCounter) RequestsSince(_ context.Context, t time.Time) (int, error) {
	f.since = append(f.since, t)
	return f.n, nil
}

// The daily budget is the API's day: it resets at midnight in api.timezone,
// and what today's runs spent is counted from that midnight.
func TestLimiterDayIsTheAPIsDay(t *testing.T) {
	for _, zone := range []string{"", "UTC", "America/New_York"} {
		cfg := config.Default().API
		if zone != "" {
			cfg.Timezone = zone
		}
		loc := cfg.Location()
		if zone == "" && loc.String() != "Asia/Jakarta" {
			t.Fatalf("default api.timezone %s, want Asia/Jakarta", loc)
		}
		cfg.RateLimit.PerDay = 100
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
