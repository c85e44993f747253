package syncer_test

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/cekat-archiver/cekat-archiver/sink"
	"github.com/cekat-archiver/cekat-archiver/sink/sinktest"
	"github.com/cekat-archiver/cekat-archiver/syncer"
	"github.com/cekat-archiver/cekat-archiver/syncer/cekat"
	"github.com/cekat-archiver/cekat-archiver/syncer/cekatsim"
)

// TestFailedWriteCostsNoCallInTheSameProcess: the daemon keeps one archive
// for its life, so the run after a failed write reads an archive that lacks
// what the failed run paid for (it waits in the spool). Those rows must be
// written before the run decides what to fetch: every detail is paid once
// over both runs, and the archive is exact.
func TestFailedWriteCostsNoCallInTheSameProcess(t *testing.T) {
	ctx := context.Background()
	sim, err := cekatsim.New(cekatsim.Options{Seed: 7, Shape: cekatsim.ShapeReal, MessageCounts: []int{400, 250, 150}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sim.Handler())
	t.Cleanup(srv.Close)
	total := len(sim.Truth())

	db := sinktest.FreshDatabase(t)
	proxy := sinktest.NewProxy(t, sinktest.Addr(t))
	_, archive := openArchive(t, proxy.Addr(), db, sink.ArchiveOptions{BatchRows: 100, BatchInterval: time.Hour})
	client, err := cekat.New(cekat.Options{BaseURL: srv.URL, APIKey: cekatsim.DefaultAPIKey, MaxRetries: 2,
		BackoffInitial: time.Millisecond, BackoffMax: 10 * time.Millisecond, Location: jakarta(t)})
	if err != nil {
		t.Fatal(err)
	}
	engine := syncer.New(client, archive, syncer.Options{ConversationIDs: sim.ConversationIDs(), DetailConcurrency: 4,
		RecheckWindow: 7 * 24 * time.Hour, BackfillMaxDuration: time.Hour, FlushTimeout: 2 * time.Second})

	// ClickHouse goes away once a third of the details are paid for.
	done := make(chan syncer.Summary, 1)
	go func() { done <- engine.Sync(ctx, nil) }()
	for sim.Counts().Endpoint(cekatsim.EndpointDetail) < total/3 {
		select {
		case sum := <-done: // else the loop would wait for ever
			t.Fatalf("the run ended before a third of the details were paid: %v", sum.Failure())
		case <-time.After(time.Millisecond):
		}
	}
	proxy.Cut()
	first := <-done
	if first.Failure() == nil {
		t.Fatal("the run whose ClickHouse went away succeeded")
	}
	paid := sim.Counts().Endpoint(cekatsim.EndpointDetail)
	t.Logf("first run: %d of %d details paid, then: %v", paid, total, first.Failure())

	proxy.Restore()
	second := engine.Sync(ctx, nil)
	if err := second.Failure(); err != nil {
		t.Fatalf("second run: %v %v", err, second.Errors)
	}
	if got := sim.Counts().Endpoint(cekatsim.EndpointDetail); got != total {
		t.Errorf("detail calls over both runs: %d, want %d (one per message): %d paid again", got, total, got-total)
	}
	var archived uint64
	if err := sinktest.Conn(t).QueryRow(ctx, "SELECT uniqExact(message_id) FROM "+db+".messages").Scan(&archived); err != nil {
		t.Fatal(err)
	}
	if archived != uint64(total) {
		t.Errorf("archive holds %d messages, want %d", archived, total)
	}
}
