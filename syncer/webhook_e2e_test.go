package syncer_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cekat-archiver/cekat-archiver/syncer"
	"github.com/cekat-archiver/cekat-archiver/syncer/cekatsim"
	"github.com/cekat-archiver/cekat-archiver/syncer/webhook"
)

// The simulator's signed webhooks, lost, duplicated, reordered and forged
// ones among them, through the receiver and the engine: every event the
// receiver accepted is acted on once, forged ones change nothing, and what
// the lost ones would have told is caught by the next cron run.
func TestWebhooksEndToEnd(t *testing.T) {
	const secret = "hook-secret"
	events := &memEvents{}
	recv, err := webhook.New(webhook.Options{Secret: []byte(secret), Store: events})
	if err != nil {
		t.Fatal(err)
	}
	var rejected atomic.Int64
	hooks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := httptest.NewRecorder()
		recv.ServeHTTP(rec, r)
		if rec.Code == http.StatusUnauthorized {
			rejected.Add(1)
		}
		w.WriteHeader(rec.Code)
	}))
	defer hooks.Close()
	sim, err := cekatsim.New(cekatsim.Options{Seed: 41, Shape: cekatsim.ShapeReal, MessageCounts: []int{30, 12, 60, 5},
		Start: time.Date(2026, 11, 2, 8, 0, 0, 0, time.UTC), WebhookURL: hooks.URL + "/webhook", WebhookSecret: secret,
		WebhookLoss: 0.1, WebhookDuplicate: 0.2, WebhookReorder: 0.2, WebhookBadSignature: 0.1, WebhookRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	engOpts := syncer.Options{ConversationIDs: sim.ConversationIDs(), PollIdleRuns: 1, PollBaseInterval: 24 * time.Hour,
		PollMaxInterval: 24 * time.Hour}
	h := newMemHarnessFor(t, sim, engOpts)
	h.sync(context.Background())
	ids := sim.ConversationIDs()
	// Traffic and status changes; only webhooks tell the archiver.
	for step := range 6 {
		sim.Advance(10 * time.Minute)
		sim.AddMessages(ids[step%len(ids)], 1+step%3)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if err := sim.WebhooksIdle(ctx); err != nil {
			t.Fatal(err)
		}
		cancel()
		if _, err := h.engine.ApplyEvents(context.Background(), events); err != nil {
			t.Fatal(err)
		}
	}
	c := sim.WebhookCounts()
	t.Logf("webhooks: %+v; %d rejected by signature", c, rejected.Load())
	if c.BadSignature > 0 && rejected.Load() == 0 {
		t.Error("forged webhooks were accepted")
	}
	// Every message whose event arrived is archived; the lost ones wait for
	// the safety net, a cron run on which every conversation is due.
	archived := map[string]bool{}
	for _, r := range h.archive.Messages() {
		archived[r.MessageID] = true
	}
	missing := 0
	for _, m := range sim.Truth() {
		if !archived[m.ID] {
			missing++
		}
	}
	t.Logf("%d messages not archived before the safety-net run (events lost: %d)", missing, c.Lost)
	if _, err := h.engine.ApplyEvents(context.Background(), events); err != nil {
		t.Fatal(err)
	}
	if sum := h.engine.SyncWith(context.Background(), syncer.SyncOptions{All: true}); sum.Failure() != nil {
		t.Fatal(sum.Failure())
	}
	if got, want := len(h.archive.Messages()), len(sim.Truth()); got != want {
		t.Errorf("%d messages archived of %d after the safety-net run", got, want)
	}
	if pending, _ := events.PendingWebhookEvents(context.Background(), time.Time{}, 100); len(pending) != 0 {
		t.Errorf("%d events still pending", len(pending))
	}
}
