package syncer_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cekat-archiver/cekat-archiver/syncer"
	"github.com/cekat-archiver/cekat-archiver/syncer/archivetest"
	"github.com/cekat-archiver/cekat-archiver/syncer/cekatsim"
	"github.com/cekat-archiver/cekat-archiver/syncer/webhook"
)

// One captured signed body posted 100 times more, with the archiver acting
// on events in between: the replays are answered 200, counted duplicate,
// and cost no call; the event was acted on once.
func TestReplayedWebhookCostsNothing(t *testing.T) {
	h := newHarness(t, cekatsim.Options{Seed: 51, MessageCounts: []int{5, 6}, Shape: cekatsim.ShapeDocumented}, syncer.Options{})
	ch, ok := h.archive.(*archivetest.ClickHouseArchive)
	if !ok {
		t.Skip("webhook events are kept by ClickHouse alone")
	}
	store := ch.Store()
	h.sync()
	const secret = "replay-secret"
	reg := prometheus.NewRegistry()
	recv, err := webhook.New(webhook.Options{Secret: []byte(secret), Store: store, MaxAge: 24 * time.Hour, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(recv)
	defer srv.Close()

	conv := h.sim.ConversationIDs()[1]
	h.sim.AddMessages(conv, 1)
	var newest cekatsim.TruthMessage
	for _, m := range h.sim.Truth() {
		if m.ConversationID == conv && !m.Timestamp.Before(newest.Timestamp) {
			newest = m
		}
	}
	// The documented shape: no event id, no conversation.
	body, err := json.Marshal(map[string]any{"event": "message.received", "timestamp": time.Now().UTC().Format(time.RFC3339),
		"data": map[string]any{"id": newest.ID, "from": newest.SenderPhone, "body": newest.Text}})
	if err != nil {
		t.Fatal(err)
	}
	post := func() int {
		req, err := http.NewRequest(http.MethodPost, srv.URL, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set(webhook.DefaultSignatureHeader, webhook.Sign([]byte(secret), body, webhook.EncodingHex))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	apply := func() syncer.EventsSummary {
		out, err := h.engine.ApplyEvents(context.Background(), store)
		if err != nil || out.Sync.Failure() != nil {
			t.Fatalf("apply: %v, %+v", err, out)
		}
		return out
	}
	if got := post(); got != http.StatusAccepted {
		t.Fatalf("first delivery: HTTP %d", got)
	}
	h.sim.ResetCounts()
	if out := apply(); out.Events != 1 {
		t.Fatalf("first delivery acted on: %+v", out)
	}
	first := h.sim.Counts().Endpoint(cekatsim.EndpointDetail)
	h.sim.ResetCounts()
	acted := 0
	for i := range 100 {
		if got := post(); got != http.StatusOK {
			t.Fatalf("replay %d: HTTP %d, want 200", i, got)
		}
		if i%10 == 9 {
			acted += apply().Events
		}
	}
	details := h.sim.Counts().Endpoint(cekatsim.EndpointDetail)
	dups := webhookResults(t, reg)["duplicate"]
	t.Logf("first delivery: %d detail calls; 100 replays: %d detail calls, %d events acted on, %v counted duplicate",
		first, details, acted, dups)
	if details != 0 || acted != 0 || dups != 100 {
		t.Errorf("100 replays cost %d detail calls, were acted on %d times, %v counted duplicate; want 0, 0, 100", details, acted, dups)
	}
}

// webhookResults sums cekat_archiver_webhook_requests_total by result.
func webhookResults(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "cekat_archiver_webhook_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "result" {
					out[l.GetValue()] += m.GetCounter().GetValue()
				}
			}
		}
	}
	return out
}
