package syncer_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/cekat-archiver/cekat-archiver/syncer"
	"github.com/cekat-archiver/cekat-archiver/syncer/cekat"
	"github.com/cekat-archiver/cekat-archiver/syncer/cekatsim"
	"github.com/cekat-archiver/cekat-archiver/syncer/memarchive"
)

// TestEveryRequestIsRecordedBeforeItIsSent: whenever a request reaches the
// API, the runs' rows in the archive already count it, so a process killed
// at any moment leaves the day's budget counting every request it made
// (and at most a step per run more); the webhook events' look-ups count in
// the run they ask for; and once the runs end, their rows count exactly
// the requests made.
func TestEveryRequestIsRecordedBeforeItIsSent(t *testing.T) {
	sim, err := cekatsim.New(cekatsim.Options{Seed: 31, MessageCounts: []int{20, 30, 40, 250}, Shape: cekatsim.ShapeDocumented,
		Start: time.Date(2026, 11, 2, 8, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	archive := memarchive.New()
	recorded := func() (n int64) {
		for _, r := range archive.Runs() {
			n += int64(r.Requests)
		}
		return n
	}
	var served, unrecorded atomic.Int64
	api := sim.Handler()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n := served.Add(1); recorded() < n {
			unrecorded.Add(1)
		}
		api.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	requests := syncer.NewRequestStats(nil)
	client, err := cekat.New(cekat.Options{BaseURL: srv.URL, APIKey: cekatsim.DefaultAPIKey, MaxRetries: 3,
		BackoffInitial: time.Millisecond, BackoffMax: 5 * time.Millisecond,
		Limiter: syncer.RecordingLimiter(nil), OnRequest: requests.Observe})
	if err != nil {
		t.Fatal(err)
	}
	const step = 5
	engine := syncer.New(client, archive, syncer.Options{ConversationIDs: sim.ConversationIDs(), Requests: requests,
		RequestStep: step, DetailConcurrency: 8, PageSize: 20, Now: sim.Now, Logger: zaptest.NewLogger(t)})
	ctx := context.Background()
	if sum := engine.Sync(ctx, nil); sum.Failure() != nil {
		t.Fatal(sum.Failure())
	}
	// Events that name only a message: each costs a detail call to find
	// its conversation, before the run they ask for syncs it.
	events := &memEvents{}
	for i, m := range sim.Truth() {
		if i%7 == 0 {
			events.add("message.delivered", "", m.ID)
		}
	}
	if out, err := engine.ApplyEvents(ctx, events); err != nil || out.Sync.Failure() != nil {
		t.Fatalf("apply events: %v %+v", err, out)
	}
	runs := archive.Runs()
	t.Logf("%d requests in %d runs; %d reached the API before a row counted them", served.Load(), len(runs), unrecorded.Load())
	if unrecorded.Load() != 0 {
		t.Errorf("%d of %d requests reached the API before the archive counted them", unrecorded.Load(), served.Load())
	}
	if got := recorded(); got != served.Load() {
		t.Errorf("sync_runs records %d requests once the runs ended; the API received %d", got, served.Load())
	}
	for _, r := range runs {
		if r.Result == "running" {
			t.Errorf("run %s ended but its row says running", r.RunID)
		}
	}
}
