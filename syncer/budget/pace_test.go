package budget

import (
	"context"
	"testing"
	"time"
)

// Spare keeps every later run's listing and the hourly reserve until
// midnight, and spreads the rest over the runs left.
func TestSpareKeepsTheDaysListingAndSpreadsTheRest(t *testing.T) {
	jakarta := time.FixedZone("WIB", 7*3600)
	noon := time.Date(2026, 12, 7, 12, 0, 0, 0, jakarta)
	for _, tc := range []struct {
		name        string
		perDay      int
		pace        Pace
		used        int
		listing     int
		free, share int
	}{
		{name: "no daily cap", perDay: 0, listing: 5, free: -1, share: -1},
		{name: "no pace: the run may take the day", perDay: 1000, used: 100, listing: 5, free: 900, share: 900},
		// 12 runs start after noon, each keeps 5, and one more; 13 runs
		// share the rest.
		{name: "hourly runs", perDay: 1000, pace: Pace{RunEvery: time.Hour}, used: 100, listing: 5, free: 835, share: 65},
		{name: "and a reserve an hour", perDay: 1000, pace: Pace{RunEvery: time.Hour, ReservePerHour: 10}, used: 100, listing: 5,
			free: 715, share: 55},
		{name: "listing takes the day", perDay: 1000, pace: Pace{RunEvery: 5 * time.Minute}, used: 500, listing: 5, free: 0, share: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, err := New(Options{PerMinute: 1000, PerDay: tc.perDay, PurgeShare: -1, DayLocation: jakarta, UsedToday: tc.used,
				Pace: tc.pace, Now: func() time.Time { return noon }})
			if err != nil {
				t.Fatal(err)
			}
			if free, share := l.Spare(tc.listing); free != tc.free || share != tc.share {
				t.Errorf("Spare(%d) = %d, %d; want %d, %d", tc.listing, free, share, tc.free, tc.share)
			}
		})
	}
}

// A day spent (the server's cap) leaves nothing spare.
func TestSpareAfterTheServersCap(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	l, err := New(Options{PerMinute: 1000, PerDay: 1000, PurgeShare: -1, UsedToday: 1000, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	if free, share := l.Spare(1); free != 0 || share != 0 {
		t.Errorf("Spare = %d, %d after the day was spent", free, share)
	}
	if err := l.Wait(context.Background(), "detail"); err == nil {
		t.Error("Wait granted a call of a spent day")
	}
}

func TestBacklogPerDay(t *testing.T) {
	l, err := New(Options{PerMinute: 60, PerDay: 1000, PurgeShare: -1, Pace: Pace{RunEvery: time.Hour, ReservePerHour: 5}})
	if err != nil {
		t.Fatal(err)
	}
	if got := l.BacklogPerDay(10); got != 1000-240-120 {
		t.Errorf("BacklogPerDay(10) = %d", got)
	}
	unlimited, _ := New(Options{PerMinute: 60})
	if got := unlimited.BacklogPerDay(10); got != -1 {
		t.Errorf("without a daily cap: %d", got)
	}
}
