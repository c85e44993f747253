package syncer_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cekat-archiver/cekat-archiver/sink"
	"github.com/cekat-archiver/cekat-archiver/sink/sinktest"
	"github.com/cekat-archiver/cekat-archiver/syncer"
	"github.com/cekat-archiver/cekat-archiver/syncer/archivetest"
	"github.com/cekat-archiver/cekat-archiver/syncer/cekat"
	"github.com/cekat-archiver/cekat-archiver/syncer/cekatsim"
)

// TestSpoolReplayedIntoARecreatedArchiveLeavesNoHole: a first sync; new
// messages upstream; a run during which ClickHouse goes away leaves their
// rows and the sync states behind them in the spool; the database is
// dropped and made again by migrate; the next archive opened on the spool
// replays it, and a sync of every conversation follows. The states in the
// spool say that the first sync's rows are archived, which the new
// database never saw: replayed, they would stop the walks at their heads
// and those messages would never be fetched. The archive must end equal to
// the truth.
func TestSpoolReplayedIntoARecreatedArchiveLeavesNoHole(t *testing.T) {
	ctx := context.Background()
	sim, err := cekatsim.New(cekatsim.Options{Seed: 23, Shape: cekatsim.ShapeReal, MessageCounts: []int{120, 80, 50},
		Start: time.Now().UTC().Truncate(time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	proxy := sinktest.NewProxy(t, sinktest.Addr(t))
	var cutOnDetail atomic.Bool
	api := sim.Handler()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/messages/") && cutOnDetail.CompareAndSwap(true, false) {
			proxy.Cut() // ClickHouse goes away while the run is paying for details
		}
		api.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	client, err := cekat.New(cekat.Options{BaseURL: srv.URL, APIKey: cekatsim.DefaultAPIKey, MaxRetries: 2,
		BackoffInitial: time.Millisecond, BackoffMax: 10 * time.Millisecond, Location: jakarta(t)})
	if err != nil {
		t.Fatal(err)
	}
	engineOpts := syncer.Options{ConversationIDs: sim.ConversationIDs(), DetailConcurrency: 4,
		RecheckWindow: 7 * 24 * time.Hour, BackfillMaxDuration: time.Hour, FlushTimeout: 2 * time.Second}

	db := sinktest.FreshDatabase(t)
	archiveOpts := sink.ArchiveOptions{BatchInterval: time.Hour, SpoolDir: t.TempDir()}
	first, _ := archivetest.OpenClickHouse(t, proxy.Addr(), db, archiveOpts)
	engine := syncer.New(client, first, engineOpts)
	if sum := engine.Sync(ctx, nil); sum.Failure() != nil {
		t.Fatalf("first sync: %v", sum.Failure())
	}
	for _, conv := range sim.ConversationIDs() {
		sim.AddMessages(conv, 8)
	}
	cutOnDetail.Store(true)
	if sum := engine.Sync(ctx, nil); sum.Failure() == nil {
		t.Fatal("the run whose ClickHouse went away succeeded")
	}
	closeCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	_ = first.Close(closeCtx) // fails: what waits stays in the spool
	cancel()
	spooled, _ := filepath.Glob(filepath.Join(archiveOpts.SpoolDir, db, "*.spool"))
	if len(spooled) != 1 {
		t.Fatalf("spool files after the failed run: %v, want one", spooled)
	}
	proxy.Restore()

	if err := sinktest.Conn(t).Exec(ctx, "DROP DATABASE `"+db+"`"); err != nil {
		t.Fatal(err)
	}
	second, _ := archivetest.OpenClickHouse(t, sinktest.Addr(t), db, archiveOpts) // migrates, then replays the spool
	engine = syncer.New(client, second, engineOpts)
	if sum := engine.SyncWith(ctx, syncer.SyncOptions{All: true}); sum.Failure() != nil {
		t.Fatalf("sync after the database was made again: %v", sum.Failure())
	}
	if err := second.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	var archived uint64
	if err := sinktest.Conn(t).QueryRow(ctx, "SELECT uniqExact(message_id) FROM `"+db+"`.messages").Scan(&archived); err != nil {
		t.Fatal(err)
	}
	if total := len(sim.Truth()); archived != uint64(total) {
		t.Errorf("archive holds %d of %d messages: %d missing, and no state says so", archived, total, total-int(archived))
	}
}
