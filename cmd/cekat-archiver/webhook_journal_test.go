package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap/zaptest"

	"github.com/cekat-archiver/cekat-archiver/config"
	"github.com/cekat-archiver/cekat-archiver/sink"
	"github.com/cekat-archiver/cekat-archiver/sink/sinktest"
	"github.com/cekat-archiver/cekat-archiver/sink/storetest"
	"github.com/cekat-archiver/cekat-archiver/syncer"
	"github.com/cekat-archiver/cekat-archiver/syncer/cekat"
	"github.com/cekat-archiver/cekat-archiver/syncer/cekatsim"
	"github.com/cekat-archiver/cekat-archiver/syncer/webhook"
)

// Signed events posted while ClickHouse is away are answered 202 and kept
// in the journal; the webhook job's next run, ClickHouse back, stores every
// one of them and acts on them.
func TestWebhookEventsOutliveAClickHouseOutage(t *testing.T) {
	chAddr := sinktest.Addr(t)
	ctx := context.Background()
	db := sinktest.DatabaseName(t)
	direct := storetest.Migrated(t, sink.Options{Addr: []string{chAddr}, Database: db})
	proxy := sinktest.NewProxy(t, chAddr)
	store, err := sink.Open(ctx, sink.Options{Addr: []string{proxy.Addr()}, Database: db, DialTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	archive, err := sink.OpenArchive(ctx, store, sink.ArchiveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer archive.Close(context.Background())
	sim, err := cekatsim.New(cekatsim.Options{Seed: 12, MessageCounts: []int{3, 4}, Start: time.Now().UTC().Truncate(time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	api := httptest.NewServer(sim.Handler())
	defer api.Close()
	client, err := cekat.New(cekat.Options{BaseURL: api.URL, APIKey: cekatsim.DefaultAPIKey})
	if err != nil {
		t.Fatal(err)
	}
	ids := sim.ConversationIDs()
	engine := syncer.New(client, archive, syncer.Options{ConversationIDs: ids, Now: sim.Now, Logger: zaptest.NewLogger(t)})

	cfg := config.Default().Webhook
	cfg.Listen, cfg.Secret, cfg.Debounce = "127.0.0.1:0", "s", time.Millisecond
	w, err := newWebhookEndpoint(cfg, t.TempDir(), engine, store, prometheus.NewRegistry(), zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	sctx, stop := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- w.serve(sctx) }()
	defer func() {
		stop()
		<-served
	}()

	proxy.Cut()
	const events = 20
	for i := range events {
		body := []byte(fmt.Sprintf(`{"id":"evt_%d","timestamp":%d,"event_name":"message.received","data":{"id":"m%d","conversation_id":%q}}`,
			i, time.Now().Unix(), i, ids[i%len(ids)]))
		req, err := http.NewRequest(http.MethodPost, "http://"+w.ln.Addr().String()+cfg.Path, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set(cfg.SignatureHeader, webhook.Sign([]byte("s"), body, webhook.EncodingHex))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("event %d while ClickHouse is away: HTTP %d, want 202", i, resp.StatusCode)
		}
	}
	if err := w.job.Run(ctx); err == nil {
		t.Error("the webhook job did not fail with ClickHouse away")
	}
	if w.journal.Len() != events {
		t.Fatalf("%d events in the journal, want %d", w.journal.Len(), events)
	}
	proxy.Restore()
	if err := w.job.Run(ctx); err != nil {
		t.Fatalf("the webhook job with ClickHouse back: %v", err)
	}
	var stored, pending uint64
	if err := direct.Conn().QueryRow(ctx, "SELECT uniqExact(event_id) FROM "+direct.TableName("webhook_events")).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	p, err := direct.PendingWebhookEvents(ctx, time.Time{}, 100)
	if err != nil {
		t.Fatal(err)
	}
	pending = uint64(len(p))
	if stored != events || pending != 0 || w.journal.Len() != 0 {
		t.Errorf("after the outage: %d events stored, %d pending, %d left in the journal; want %d, 0, 0", stored, pending, w.journal.Len(), events)
	}
}
