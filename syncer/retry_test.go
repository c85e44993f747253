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

	"github.com/cekat-archiver/cekat-archiver/sink"
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
	calls  atomic.Int64           // answered while down
	only   atomic.Pointer[string] // when set, only paths with this prefix are down
}

func newFaultyAPI(t *testing.T, sim *cekatsim.Server) *faultyAPI {
	t.Helper()
	f := &faultyAPI{}
	api := sim.Handler()
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if only := f.only.Load(); f.down.Load() && (only == nil || strings.HasPrefix(r.URL.Path, *only)) {
			f.calls.Add(1)
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

// A refused credential (HTTP 401 or 403) stops the run at its first
// answer: every other call carries the same key and would be refused too.
// The run fails, so `sync --once` exits non-zero, and no conversation's
// state records the refusal as its own failure.
func TestRefusedKeyStopsTheRun(t *testing.T) {
	for _, tc := range []struct {
		name      string
		status    int
		discovery bool
		only      string
		conc      int // conversations at once: at most that many calls are in flight when the first refusal comes
	}{
		{"401 without discovery", http.StatusUnauthorized, false, "", 4},
		{"403 without discovery", http.StatusForbidden, false, "", 4},
		{"401 with discovery", http.StatusUnauthorized, true, "", 4},
		{"403 with discovery", http.StatusForbidden, true, "", 4},
		{"401 on detail calls only", http.StatusUnauthorized, false, "/messages/", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sim, err := cekatsim.New(cekatsim.Options{Seed: 42, Shape: cekatsim.ShapeReal, Conversations: 30, MeanMessages: 4,
				Start: time.Date(2026, 11, 2, 8, 0, 0, 0, time.UTC)})
			if err != nil {
				t.Fatal(err)
			}
			api := newFaultyAPI(t, sim)
			client := api.client(t)
			archive := memarchive.New()
			opts := syncer.Options{Now: sim.Now, Logger: zaptest.NewLogger(t), Concurrency: tc.conc, DetailConcurrency: tc.conc}
			if tc.discovery {
				opts.Discovery = &syncer.Discovery{API: client}
			} else {
				opts.ConversationIDs = sim.ConversationIDs()
			}
			e := syncer.New(client, archive, opts)
			ctx := context.Background()
			if tc.discovery {
				// Conversations listed by an earlier run are polled when
				// the list fails for another reason: not for this one.
				if sum := e.Sync(ctx, nil); sum.Failure() != nil {
					t.Fatal(sum.Failure())
				}
				sim.Advance(time.Minute)
			}
			api.status.Store(int32(tc.status))
			if tc.only != "" {
				api.only.Store(&tc.only)
			}
			api.down.Store(true)
			sum := e.Sync(ctx, nil)
			if !cekat.IsAuthRefused(sum.Failure()) {
				t.Errorf("run failure %v; want the refused credential", sum.Failure())
			}
			for _, m := range archive.Messages() {
				if !m.Enriched {
					t.Errorf("message %s archived without its detail: %s", m.MessageID, m.EnrichError)
					break
				}
			}
			if n := api.calls.Load(); n > int64(tc.conc) {
				t.Errorf("%d calls refused; want the run to stop at the first (at most %d in flight)", n, tc.conc)
			}
			states, _ := archive.LoadStates(ctx)
			if failing := countStates(states, func(st sink.State) bool { return st.LastError != "" }); failing != 0 {
				t.Errorf("%d conversations record the refusal as their failure", failing)
			}
		})
	}
}

func countStates(states map[string]sink.State, f func(sink.State) bool) int {
	n := 0
	for _, st := range states {
		if f(st) {
			n++
		}
	}
	return n
}
