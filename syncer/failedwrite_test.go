package syncer_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/cekat-archiver/cekat-archiver/sink"
	"github.com/cekat-archiver/cekat-archiver/sink/sinktest"
	"github.com/cekat-archiver/cekat-archiver/syncer"
	"github.com/cekat-archiver/cekat-archiver/syncer/archivetest"
	"github.com/cekat-archiver/cekat-archiver/syncer/cekat"
	"github.com/cekat-archiver/cekat-archiver/syncer/cekatsim"
)

// TestFailedWriteCostsNoCallInTheSameProcess: the daemon keeps one archive
// for its life, so the run after a failed write reads an archive that lacks
// what the failed run paid for (it waits in the archive's buffer, on
// ClickHouse its spool). Those rows must be
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

	archive := archivetest.OpenShared(t, 1, sink.ArchiveOptions{BatchRows: 100, BatchInterval: time.Hour})[0]
	client, err := cekat.New(cekat.Options{BaseURL: srv.URL, APIKey: cekatsim.DefaultAPIKey, MaxRetries: 2,
		BackoffInitial: time.Millisecond, BackoffMax: 10 * time.Millisecond, Location: jakarta(t)})
	if err != nil {
		t.Fatal(err)
	}
	engine := syncer.New(client, archive, syncer.Options{ConversationIDs: sim.ConversationIDs(), DetailConcurrency: 4,
		RecheckWindow: 7 * 24 * time.Hour, BackfillMaxDuration: time.Hour, FlushTimeout: 2 * time.Second})

	// The archive goes away once a third of the details are paid for.
	done := make(chan syncer.Summary, 1)
	go func() { done <- engine.Sync(ctx, nil) }()
	sinktest.WaitFor(t, "a third of the details paid", func() bool {
		return sim.Counts().Endpoint(cekatsim.EndpointDetail) >= total/3 || len(done) > 0
	})
	if len(done) > 0 {
		t.Fatalf("the run ended before a third of the details were paid: %v", (<-done).Failure())
	}
	archive.SetFailWrites(errors.New("archive down"))
	first := <-done
	if first.Failure() == nil {
		t.Fatal("the run whose ClickHouse went away succeeded")
	}
	paid := sim.Counts().Endpoint(cekatsim.EndpointDetail)
	t.Logf("first run: %d of %d details paid, then: %v", paid, total, first.Failure())

	archive.SetFailWrites(nil)
	second := engine.Sync(ctx, nil)
	if err := second.Failure(); err != nil {
		t.Fatalf("second run: %v %v", err, second.Errors)
	}
	if got := sim.Counts().Endpoint(cekatsim.EndpointDetail); got != total {
		t.Errorf("detail calls over both runs: %d, want %d (one per message): %d paid again", got, total, got-total)
	}
	if archived := len(archive.Messages()); archived != total {
		t.Errorf("archive holds %d messages, want %d", archived, total)
	}
}
