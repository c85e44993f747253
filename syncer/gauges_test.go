package syncer_test

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap/zaptest"

	"github.com/cekat-archiver/cekat-archiver/syncer"
	"github.com/cekat-archiver/cekat-archiver/syncer/cekat"
	"github.com/cekat-archiver/cekat-archiver/syncer/cekatsim"
	"github.com/cekat-archiver/cekat-archiver/syncer/memarchive"
)

// gauges reads the values of the gauges (and counters) of reg by name.
func gauges(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			if g := m.GetGauge(); g != nil {
				out[mf.GetName()] = g.GetValue()
			}
		}
	}
	return out
}

// The conversation gauges describe the workspace as the stored states say,
// not the last run: a run for a webhook event (one conversation) leaves
// them, and a full run sets them again at its end, when its first sync has
// completed every history.
func TestGaugesDescribeTheWorkspaceNotTheLastRun(t *testing.T) {
	sim, client := newSimClient(t, cekatsim.Options{Seed: 24, Shape: cekatsim.ShapeReal, Conversations: 15, MeanMessages: 5,
		Start: time.Date(2026, 11, 2, 8, 0, 0, 0, time.UTC)}, cekat.Options{Location: jakarta(t)})
	reg := prometheus.NewRegistry()
	e := syncer.New(client, memarchive.New(), syncer.Options{ConversationIDs: sim.ConversationIDs(), Now: sim.Now,
		Logger: zaptest.NewLogger(t), Metrics: syncer.NewMetrics(reg)})
	ctx := context.Background()
	if sum := e.Sync(ctx, nil); sum.Failure() != nil || sum.LeftForLater != 0 {
		t.Fatalf("first run: %v, %d left for later", sum.Failure(), sum.LeftForLater)
	}
	want := map[string]float64{"cekat_archiver_conversations_tracked": 15, "cekat_archiver_conversations_lagging": 0,
		"cekat_archiver_conversations_gone": 0, "cekat_archiver_conversations_deferred": 0}
	check := func(when string) {
		t.Helper()
		got := gauges(t, reg)
		for name, v := range want {
			if got[name] != v {
				t.Errorf("%s: %s = %v, want %v", when, name, got[name], v)
			}
		}
	}
	check("after the first full run")

	ids := sim.ConversationIDs()
	events := &memEvents{}
	sim.Advance(time.Minute)
	sim.AddMessages(ids[2], 2)
	events.add("message.received", ids[2], "")
	if out, err := e.ApplyEvents(ctx, events); err != nil || out.Sync.Failure() != nil || out.Sync.NewMessages != 2 {
		t.Fatalf("event run: %+v, %v", out, err)
	}
	check("after a run for one event")
	if sum := e.Sync(ctx, []string{ids[4]}); sum.Failure() != nil {
		t.Fatal(sum.Failure())
	}
	check("after a run for one named conversation")
}
