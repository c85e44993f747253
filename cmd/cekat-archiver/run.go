package main

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.uber.org/zap"

	"github.com/cekat-archiver/cekat-archiver/config"
	"github.com/cekat-archiver/cekat-archiver/sink"
	"github.com/cekat-archiver/cekat-archiver/syncer"
	"github.com/cekat-archiver/cekat-archiver/syncer/cekat"
	"github.com/cekat-archiver/cekat-archiver/syncer/daemon"
	"github.com/cekat-archiver/cekat-archiver/syncer/shard"
)

type runCmd struct{}

func (runCmd) Run(ctx context.Context, e *env) error {
	cfg, log, store, err := e.openArchive(ctx)
	if err != nil {
		return err
	}
	defer log.Sync()
	defer store.Close()
	if _, err := store.Migrate(ctx); err != nil {
		return err
	}
	lctx, release, err := holdLease(ctx, cfg, store, log.Named("lease"))
	if err != nil {
		return err
	}
	defer release()
	ctx = lctx

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), newBuildInfo(), shard.Info(shardOf(cfg)))
	metrics := syncer.NewMetrics(reg)
	requests := syncer.NewRequestStats(metrics)
	archive, err := sink.OpenArchive(ctx, store, archiveOptions(cfg.Sync, reg))
	if err != nil {
		return err
	}
	if cfg.Sync.RunEvery == 0 {
		// The daemon knows how often its runs start: the daily cap is
		// spread over them.
		cfg.Sync.RunEvery = scheduleInterval(cfg)
	}
	limiter, err := daemonLimiter(ctx, cfg, archive, reg)
	if err != nil {
		return err
	}
	client, err := newClient(cfg.API, limiter, requests.Observe, "", log.Named("cekat"))
	if err != nil {
		return err
	}
	engine := syncer.New(client, archive, engineOptions(cfg, client, limiter, requests, metrics, log))

	schedule, err := config.ParseSchedule(cfg.Schedule.Sync, cfg.Schedule.Location())
	if err != nil {
		return fmt.Errorf("schedule.sync: %w", err)
	}
	jobs := []daemon.Job{{
		Name: "sync", Schedule: schedule, RunAtStart: true,
		Run: func(ctx context.Context) error {
			sum := engine.Sync(ctx, nil)
			logSummary(log, sum)
			if err := sum.Failure(); cekat.IsAuthRefused(err) {
				log.Error("the Cekat API refused the API key; every run stops at its first call until the key is fixed",
					zap.String("check", refusedKey(cfg.API, err)))
			}
			return sum.Failure()
		},
	}}
	if cfg.Retention.Enabled {
		job, err := purgeJob(cfg, client, archive, engine, reg, log)
		if err != nil {
			return err
		}
		jobs = append(jobs, job)
	}
	var hooks *webhookEndpoint
	if cfg.Webhook.Listen != "" {
		if hooks, err = newWebhookEndpoint(cfg.Webhook, cfg.Sync.SpoolDir, engine, store, reg, log.Named("webhook")); err != nil {
			return err
		}
		jobs = append(jobs, hooks.job)
	}
	d, err := daemon.New(jobs, daemon.Options{
		Listen: cfg.Daemon.Listen, Grace: cfg.Daemon.ShutdownGrace, ReadyMaxFailing: cfg.Daemon.ReadyMaxFailing,
		Ping: store.Ping, Registry: reg, Logger: log.Named("daemon"),
	})
	if err != nil {
		return err
	}
	log.Info("cekat-archiver started", zap.String("version", version()), zap.String("schedule", cfg.Schedule.Sync),
		zap.String("timezone", cfg.Schedule.Timezone))
	// daemon.shutdown_grace bounds the whole stop, from the signal to the
	// exit: what the daemon's wait leaves of it is the archive's to close.
	stopped := make(chan time.Time, 1)
	context.AfterFunc(ctx, func() { stopped <- time.Now() })
	hooksDone := make(chan error, 1)
	if hooks != nil {
		go func() { hooksDone <- hooks.serve(ctx) }()
	} else {
		hooksDone <- nil
	}
	runErr := d.Run(ctx)
	if herr := <-hooksDone; herr != nil && runErr == nil {
		runErr = herr
	}
	closeBy := time.Now().Add(30 * time.Second)
	select {
	case at := <-stopped:
		closeBy = at.Add(cfg.Daemon.ShutdownGrace)
		if runErr == nil {
			// The runs returned within the grace, so they have written
			// what they had: closing has little left to do, but an
			// already expired deadline would report an error for nothing.
			closeBy = later(closeBy, time.Now().Add(time.Second))
		}
	default:
	}
	closeCtx, cancel := context.WithDeadline(context.WithoutCancel(ctx), closeBy)
	defer cancel()
	if err := archive.Close(closeCtx); err != nil && runErr == nil {
		runErr = err
	}
	if err := leaseLost(ctx); err != nil && runErr == nil {
		runErr = err
	}
	return runErr
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// recheckFloor: with webhooks on, events tell every status change and the
// schedule is only the net for lost ones.
func recheckFloor(cfg config.Config) time.Duration {
	if cfg.Webhook.Listen == "" {
		return 0
	}
	return cfg.Webhook.RecheckInterval
}

func engineOptions(cfg config.Config, client *cekat.Client, limiter syncer.Budget, requests *syncer.RequestStats, metrics *syncer.Metrics, log *zap.Logger) syncer.Options {
	var discovery *syncer.Discovery
	if d := cfg.Conversations.Discover; d.Enabled {
		discovery = &syncer.Discovery{API: client, InboxIDs: d.InboxIDs, Platforms: d.Platforms, StageStatuses: d.StageStatuses,
			Interval: cfg.Conversations.DiscoverInterval, PageSize: 100}
	}
	var inbox *syncer.InboxSweep
	if client != nil && cfg.InboxListingOn() {
		inbox = &syncer.InboxSweep{API: client}
		if ids := cfg.Conversations.Discover.InboxIDs; len(ids) == 1 {
			inbox.InboxID = ids[0]
		}
	}
	return syncer.Options{
		Discovery:           discovery,
		Inbox:               inbox,
		EventBatch:          eventBatch(cfg),
		Shard:               shardOf(cfg),
		PageSize:            cfg.API.PageSize,
		Concurrency:         cfg.Sync.Concurrency,
		DetailConcurrency:   cfg.Sync.DetailConcurrency,
		RecheckWindow:       cfg.Sync.RecheckWindow,
		RecheckFloor:        recheckFloor(cfg),
		ConversationIDs:     cfg.Conversations.IDs,
		ConversationsFile:   cfg.Conversations.File,
		PollIdleRuns:        cfg.Sync.PollIdleRuns,
		PollBaseInterval:    cfg.Sync.PollBaseInterval,
		PollMaxInterval:     cfg.Sync.PollMaxInterval,
		BackfillMaxDuration: cfg.Sync.BackfillMaxDuration,
		Budget:              limiter,
		Enrich: syncer.EnrichPolicy{History: cfg.Sync.Enrich.History, MaxAge: cfg.Sync.Enrich.MaxAge,
			OutboundOnly: cfg.Sync.Enrich.OutboundOnly},
		Requests: requests,
		Metrics:  metrics,
		Logger:   log.Named("syncer"),
	}
}

// eventBatch is webhook.capped_batch as the engine takes it (negative: no wait).
func eventBatch(cfg config.Config) time.Duration {
	if cfg.Webhook.CappedBatch <= 0 {
		return -1
	}
	return cfg.Webhook.CappedBatch
}
