package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/robfig/cron/v3"
	"go.uber.org/zap"

	"github.com/cekat-archiver/cekat-archiver/config"
	"github.com/cekat-archiver/cekat-archiver/sink"
	"github.com/cekat-archiver/cekat-archiver/syncer"
	"github.com/cekat-archiver/cekat-archiver/syncer/daemon"
	"github.com/cekat-archiver/cekat-archiver/syncer/webhook"
)

// webhookEndpoint is the webhook receiver on its own address, and the job
// that acts on what it stored: at each burst of events (see daemon.Job's
// Debounce), and every minute as a safety net for events a failed run left
// pending. The job also stores what the journal kept while ClickHouse was
// away, and drops the stored events past webhook.retention.
type webhookEndpoint struct {
	ln      net.Listener
	srv     *http.Server
	job     daemon.Job
	journal *webhook.Journal
}

// journalFile is the webhook journal's name in the spool's directory of
// the database (sync.spool_dir/DATABASE), beside the spools of its rows.
const journalFile = "webhook-events.journal"

// retentionEvery spaces the drops of old webhook events.
const retentionEvery = time.Hour

func newWebhookEndpoint(cfg config.Webhook, spoolDir string, engine *syncer.Engine, store *sink.Store, reg prometheus.Registerer,
	log *zap.Logger) (*webhookEndpoint, error) {
	dir := filepath.Join(spoolDir, store.Database())
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("webhook journal: %w", err)
	}
	journal, err := webhook.OpenJournal(filepath.Join(dir, journalFile), int64(cfg.JournalMaxBytes))
	switch {
	case errors.Is(err, webhook.ErrJournalInUse):
		// Another archiver on this archive and spool keeps its own events
		// there; this one answers 500 while ClickHouse is away.
		log.Warn("webhook events are not kept locally while ClickHouse is away", zap.Error(err))
		journal = nil
	case err != nil:
		return nil, err
	}
	events := daemon.NewSignal()
	recv, err := webhook.New(webhook.Options{Secret: []byte(cfg.Secret.Reveal()), SignatureHeader: cfg.SignatureHeader,
		Encoding: cfg.SignatureEncoding, MaxBody: int64(cfg.MaxBody), MaxAge: cfg.MaxEventAge, MaxInFlight: cfg.MaxInFlight,
		Store: store, Journal: journal, Registerer: reg, Logger: log,
		Notify: events.Notify})
	if err != nil {
		journal.Close()
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		journal.Close()
		return nil, fmt.Errorf("webhook: listen on %s: %w", cfg.Listen, err)
	}
	mux := http.NewServeMux()
	mux.Handle(cfg.Path, recv)
	// Every phase of a request is bounded: a sender without the secret
	// cannot hold a connection (or, with the cap on requests in hand, more
	// than max_in_flight bodies of max_body bytes) for longer than the read
	// timeout. Writing waits at most for the 10 s store of the event.
	w := &webhookEndpoint{ln: ln, journal: journal, srv: &http.Server{Handler: mux,
		ReadHeaderTimeout: min(10*time.Second, cfg.ReadTimeout), ReadTimeout: cfg.ReadTimeout,
		WriteTimeout: cfg.ReadTimeout + 15*time.Second, IdleTimeout: time.Minute, MaxHeaderBytes: 64 << 10}}
	var lastDrop time.Time
	w.job = daemon.Job{Name: "webhook", Schedule: cron.Every(time.Minute), RunAtStart: true, Trigger: events, Debounce: cfg.Debounce,
		Run: func(ctx context.Context) error {
			rctx, cancel := context.WithTimeout(ctx, time.Minute)
			stored, skipped, err := journal.Replay(rctx, store)
			cancel()
			switch {
			case err != nil:
				return fmt.Errorf("store the events the webhook journal kept while ClickHouse was away: %w", err)
			case stored+skipped > 0:
				log.Info("stored the webhook events kept in the journal while ClickHouse was away", zap.Int("events", stored),
					zap.Int("damaged_records_skipped", skipped), zap.String("journal", journal.Path()))
			}
			if time.Since(lastDrop) >= retentionEvery {
				dropped, err := store.DropWebhookEventsBefore(ctx, time.Now().Add(-cfg.Retention))
				if err != nil {
					log.Warn("old webhook events not dropped; tried again in an hour", zap.Error(err))
				} else if len(dropped) > 0 {
					log.Info("dropped stored webhook events past webhook.retention", zap.Strings("months", dropped))
				}
				lastDrop = time.Now()
			}
			out, err := engine.ApplyEvents(ctx, store)
			if out.Events+out.Ignored > 0 {
				logSummary(log, out.Sync)
			}
			if err != nil {
				return err
			}
			return out.Sync.Failure()
		}}
	log.Info("receiving webhook events", zap.String("addr", ln.Addr().String()), zap.String("path", cfg.Path))
	return w, nil
}

// serve answers until ctx ends, then stops within a few seconds.
func (w *webhookEndpoint) serve(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- w.srv.Serve(w.ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("webhook server: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := w.srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		_ = w.srv.Close()
	}
	// What the journal holds waits for the next start.
	return w.journal.Close()
}
