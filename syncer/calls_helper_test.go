package syncer_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cekat-archiver/cekat-archiver/syncer/budget"
	"github.com/cekat-archiver/cekat-archiver/syncer/cekatsim"
)

// callCounts counts the API calls a test server of the simulator answered:
// list calls (message pages, conversation list pages and inbox pages) and
// detail calls.
// callCounts counts the calls by kind; list includes convList, the
// conversation list's pages.
type callCounts struct{ list, detail, convList atomic.Int64 }

func (c *callCounts) calls() int64 { return c.list.Load() + c.detail.Load() }

// serveCounted serves sim's API until the test ends, counting its calls in
// c, and returns its URL.
func serveCounted(t testing.TB, sim *cekatsim.Server, c *callCounts) string {
	api := sim.Handler()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/messages" || r.URL.Path == "/api/conversations" || r.URL.Path == "/api/messages" {
			c.list.Add(1)
			if r.URL.Path == "/api/conversations" {
				c.convList.Add(1)
			}
		} else if strings.HasPrefix(r.URL.Path, "/messages/") {
			c.detail.Add(1)
		}
		api.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// dailyCap is a limiter of perDay calls a day (UTC) on clock, whose rate
// per minute never binds.
func dailyCap(t testing.TB, perDay int, clock func() time.Time, pace budget.Pace) *budget.Limiter {
	t.Helper()
	l, err := budget.New(budget.Options{PerMinute: 1_000_000, PerDay: perDay, PurgeShare: -1, Now: clock,
		DayLocation: time.UTC, Pace: pace})
	if err != nil {
		t.Fatal(err)
	}
	return l
}
