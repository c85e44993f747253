package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
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
// that acts on what it stored: at each event (after the debounce), and
// every minute as a safety net for events a failed run left pending.
type webhookEndpoint struct {
	ln  net.Listener
	srv *http.Server
	job daemon.Job
}

func newWebhookEndpoint(cfg config.Webhook, engine *syncer.Engine, store *sink.Store, reg prometheus.Registerer, log *zap.Logger) (*webhookEndpoint, error) {
	trigger := make(chan struct{}, 1)
	recv, err := webhook.New(webhook.Options{Secret: []byte(cfg.Secret.Reveal()), SignatureHeader: cfg.SignatureHeader,
		Encoding: cfg.SignatureEncoding, MaxBody: int64(cfg.MaxBody), Store: store, Registerer: reg, Logger: log,
		Notify: func() {
			select {
			case trigger <- struct{}{}:
			default: // a run is already asked for
			}
		}})
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("webhook: listen on %s: %w", cfg.Listen, err)
	}
	mux := http.NewServeMux()
	mux.Handle(cfg.Path, recv)
	w := &webhookEndpoint{ln: ln, srv: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}}
	w.job = daemon.Job{Name: "webhook", Schedule: cron.Every(time.Minute), RunAtStart: true, Trigger: trigger,
		Run: func(ctx context.Context) error {
			// A burst of events makes one run.
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(cfg.Debounce):
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
	return nil
}
