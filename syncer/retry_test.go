package syncer_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/cekat-archiver/cekat-archiver/syncer"
	"github.com/cekat-archiver/cekat-archiver/syncer/cekat"
	"github.com/cekat-archiver/cekat-archiver/syncer/cekatsim"
	"github.com/cekat-archiver/cekat-archiver/syncer/memarchive"
)

// faultyAPI serves sim over HTTP; while down is set, every call of the
// API answers status.
type faultyAPI struct {
	srv    *httptest.Server
	down   atomic.Bool
	status atomic.Int32
}

func newFaultyAPI(t *testing.T, sim *cekatsim.Server) *faultyAPI {
	t.Helper()
	f := &faultyAPI{}
	api := sim.Handler()
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if f.down.Load() {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(int(f.status.Load()))
			_, _ = w.Write([]byte(`{"success":false,"error":{"message":"refused"}}`))
			return
		}
		api.ServeHTTP(w, r)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *faultyAPI) client(t *testing.T) *cekat.Client {
	t.Helper()
	c, err := cekat.New(cekat.Options{BaseURL: f.srv.URL, APIKey: cekatsim.DefaultAPIKey, MaxRetries: 0, Location: jakarta(t)})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// With discovery on, a conversation whose last sync failed is synced again
// by the next run even though the conversation list shows nothing new in
// it since its last complete walk.
func TestFailedConversationRetriedWhateverTheListSays(t *testing.T) {
	sim, err := cekatsim.New(cekatsim.Options{Seed: 41, Shape: cekatsim.ShapeReal, Conversations: 12, MeanMessages: 4,
		Start: time.Date(2026, 11, 2, 8, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	api := newFaultyAPI(t, sim)
	client := api.client(t)
	archive := memarchive.New()
	e := syncer.New(client, archive, syncer.Options{Now: sim.Now, Logger: zaptest.NewLogger(t),
		Discovery: &syncer.Discovery{API: client}})
	ctx := context.Background()
	if sum := e.Sync(ctx, nil); sum.Failure() != nil || sum.Listed != 12 {
		t.Fatalf("first run: %v, %d listed", sum.Failure(), sum.Listed)
	}

	// The list fails, so the run polls every due conversation, and every
	// poll fails too.
	api.status.Store(http.StatusServiceUnavailable)
	api.down.Store(true)
	sim.Advance(time.Minute)
	if sum := e.Sync(ctx, nil); sum.Failed != 12 {
		t.Fatalf("run with the API down: %d failed, want 12 (%v)", sum.Failed, sum.Errors)
	}
	api.down.Store(false)

	sim.Advance(time.Minute)
	sum := e.Sync(ctx, nil)
	if sum.Failure() != nil || sum.Unchanged != 0 || sum.Synced != 12 {
		t.Errorf("run after the outage: %v, %d unchanged, %d synced; want every failed conversation synced", sum.Failure(), sum.Unchanged, sum.Synced)
	}
	states, _ := archive.LoadStates(ctx)
	for id, st := range states {
		if st.LastError != "" {
			t.Errorf("%s still failing: %s", id, strings.TrimSpace(st.LastError))
		}
	}
	// The run after is idle again: nothing failed, nothing new.
	sim.Advance(time.Minute)
	if sum := e.Sync(ctx, nil); sum.Unchanged != 12 {
		t.Errorf("idle run: %d unchanged, want 12", sum.Unchanged)
	}
}
