package syncer_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/cekat-archiver/cekat-archiver/syncer"
	"github.com/cekat-archiver/cekat-archiver/syncer/cekat"
	"github.com/cekat-archiver/cekat-archiver/syncer/cekatsim"
	"github.com/cekat-archiver/cekat-archiver/syncer/memarchive"
)

// A run for webhook events that waits behind a long run says so once, and
// again when it starts.
func TestEventRunWaitingBehindALongRunSaysSoOnce(t *testing.T) {
	sim, err := cekatsim.New(cekatsim.Options{Seed: 25, Shape: cekatsim.ShapeReal, Conversations: 3, MeanMessages: 3,
		Start: time.Date(2026, 11, 2, 8, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	entered, release := make(chan struct{}, 1), make(chan struct{})
	api := sim.Handler()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/messages" {
			select {
			case entered <- struct{}{}:
			default:
			}
			<-release
		}
		api.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	client, err := cekat.New(cekat.Options{BaseURL: srv.URL, APIKey: cekatsim.DefaultAPIKey, Location: jakarta(t)})
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zap.InfoLevel)
	e := syncer.New(client, memarchive.New(), syncer.Options{ConversationIDs: sim.ConversationIDs(), Now: sim.Now,
		Logger: zap.New(core), Concurrency: 1})
	ctx := context.Background()
	long := make(chan syncer.Summary, 1)
	go func() { long <- e.Sync(ctx, nil) }()
	<-entered // the long run is under way

	event := make(chan syncer.Summary, 1)
	go func() {
		event <- e.SyncWith(ctx, syncer.SyncOptions{Only: sim.ConversationIDs()[:1], Triggered: true})
	}()
	// A guard against hanging, not a measure: the line comes at once.
	for guard := time.Now().Add(time.Minute); logs.FilterMessageSnippet("run waits for the run in hand").Len() == 0; {
		if time.Now().After(guard) {
			close(release)
			t.Fatal("the waiting event run said nothing")
		}
		time.Sleep(5 * time.Millisecond)
	}
	close(release)
	if sum := <-long; sum.Failure() != nil {
		t.Fatal(sum.Failure())
	}
	if sum := <-event; sum.Failure() != nil {
		t.Fatal(sum.Failure())
	}
	waits := logs.FilterMessageSnippet("run waits for the run in hand").All()
	starts := logs.FilterMessageSnippet("run starts after waiting").All()
	if len(waits) != 1 || len(starts) != 1 || waits[0].ContextMap()["run"] != "webhook events" {
		t.Errorf("%d wait and %d start lines (%v); want one each, for the event run", len(waits), len(starts), waits)
	}
}
