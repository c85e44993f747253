package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/cekat-archiver/cekat-archiver/config"
	"github.com/cekat-archiver/cekat-archiver/sink"
	"github.com/cekat-archiver/cekat-archiver/syncer"
	"github.com/cekat-archiver/cekat-archiver/syncer/budget"
	"github.com/cekat-archiver/cekat-archiver/syncer/cekat"
	"github.com/cekat-archiver/cekat-archiver/syncer/shard"
)

func (e *env) config() (config.Config, error) {
	cfg, err := config.Load(e.cli.Config, os.LookupEnv)
	if err != nil {
		return config.Config{}, fmt.Errorf("configuration:\n%w", err)
	}
	if e.cli.LogFormat != "" {
		cfg.Log.Format = e.cli.LogFormat
	}
	return cfg, nil
}

func (e *env) logger(cfg config.Log) (*zap.Logger, error) {
	level, err := zapcore.ParseLevel(cfg.Level)
	if err != nil {
		return nil, fmt.Errorf("log level: %w", err)
	}
	var enc zapcore.Encoder
	if cfg.Format == "console" {
		ec := zap.NewDevelopmentEncoderConfig()
		ec.EncodeTime = zapcore.TimeEncoderOfLayout(time.TimeOnly)
		enc = zapcore.NewConsoleEncoder(ec)
	} else {
		ec := zap.NewProductionEncoderConfig()
		ec.EncodeTime = zapcore.ISO8601TimeEncoder
		enc = zapcore.NewJSONEncoder(ec)
	}
	core := zapcore.NewCore(enc, zapcore.AddSync(e.stderr), level)
	return zap.New(core), nil
}

// openArchive loads the config, builds the logger and connects to
// ClickHouse: what every command that touches the archive starts with. An
// unreachable ClickHouse is an error, not something to retry for ever.
// Close the store when done.
func (e *env) openArchive(ctx context.Context) (config.Config, *zap.Logger, *sink.Store, error) {
	cfg, err := e.config()
	if err != nil {
		return config.Config{}, nil, nil, err
	}
	log, err := e.logger(cfg.Log)
	if err != nil {
		return config.Config{}, nil, nil, err
	}
	if sh := shardOf(cfg); sh.Sharded() {
		// Every line says which shard wrote it: the shards' logs meet.
		log = log.With(zap.String("shard", sh.ID()))
	}
	if unknown := config.UnknownEnv(os.Environ()); len(unknown) > 0 {
		log.Warn("environment variables name no configuration key and are ignored (misspelt?)", zap.Strings("variables", unknown))
	}
	store, err := openStore(ctx, cfg.ClickHouse, cfg.Analytics, log)
	if err != nil {
		return config.Config{}, nil, nil, err
	}
	return cfg, log, store, nil
}

func openStore(ctx context.Context, cfg config.ClickHouse, analytics config.Analytics, log *zap.Logger) (*sink.Store, error) {
	tlsCfg, err := cfg.TLS.Config()
	if err != nil {
		return nil, fmt.Errorf("clickhouse TLS: %w", err)
	}
	return sink.Open(ctx, sink.Options{
		Addr: cfg.Addr, Database: cfg.Database, User: cfg.User, Password: cfg.Password.Reveal(),
		TLS: tlsCfg, DialTimeout: cfg.DialTimeout, Compression: cfg.Compression, Logger: log.Named("sink"), AnalyticsTimezone: analytics.Timezone,
		Cluster: cfg.Cluster, ZooKeeperPath: cfg.ZooKeeperPath, ReplicaName: cfg.ReplicaName,
	})
}

// newClient builds the API client; every answer is counted by onRequest,
// and a 429 is also logged as a warning. A call made for a sync run is sent
// once the run's row in sync_runs counts it (syncer.RecordingLimiter).
func newClient(cfg config.API, limiter cekat.Limiter, onRequest func(cekat.RequestInfo), send cekat.SendBody, log *zap.Logger) (*cekat.Client, error) {
	observe := func(info cekat.RequestInfo) {
		if onRequest != nil {
			onRequest(info)
		}
		if info.Status == http.StatusTooManyRequests {
			log.Warn("the Cekat API throttled a request (HTTP 429)", zap.String("endpoint", info.Endpoint))
		}
	}
	return cekat.New(cekat.Options{
		BaseURL:         cfg.BaseURL,
		OpenAPIURL:      cfg.OpenAPIURL,
		APIKey:          cfg.Key.Reveal(),
		Auth:            cekat.AuthMode(cfg.Auth),
		BackofficeURL:   cfg.BackofficeURL,
		BackofficeToken: cfg.BackofficeToken.Reveal(),
		BackofficeAuth:  cekat.BackofficeAuthMode(cfg.BackofficeAuth),
		Location:        cfg.Location(),
		Timeout:         cfg.Timeout,
		MaxRetries:      cfg.MaxRetries,
		OnRequest:       observe,
		Limiter:         syncer.RecordingLimiter(limiter),
		SendBody:        send,
		UserAgent:       "cekat-archiver/" + version(),
	})
}

// requestCounter is what newLimiter needs of the archive
// (*sink.Archive): the requests that a shard's runs recorded since a time.
type requestCounter interface {
	RequestsSince(ctx context.Context, t time.Time, shard string) (int, error)
}

// shardOf is this process's shard, as the configuration says.
func shardOf(cfg config.Config) shard.Shard {
	return shard.Shard{Index: cfg.Shard.Ordinal(), Count: cfg.Shard.Count}
}

// newLimiter is the one API budget every call of the process shares: this
// shard's part of the API's rate limit (all of it when not sharded). The
// daily budget resets at midnight in the API's zone (api.timezone, where the
// service's day is), and the day's count starts from what this shard's
// earlier runs recorded in the archive since that midnight.
func newLimiter(ctx context.Context, cfg config.Config, archive requestCounter, reg prometheus.Registerer) (*budget.Limiter, error) {
	// No retention purge runs in this process: ingestion gets the whole budget.
	return newSharedLimiter(ctx, cfg, archive, reg, -1)
}

// newSharedLimiter is newLimiter with purgeShare of the budget reserved for
// the retention purge's calls (budget.PriorityPurge): 0 is
// budget.DefaultPurgeShare, negative none.
func newSharedLimiter(ctx context.Context, cfg config.Config, archive requestCounter, reg prometheus.Registerer, purgeShare float64) (*budget.Limiter, error) {
	loc := cfg.API.Location()
	y, mo, d := time.Now().In(loc).Date()
	used, err := archive.RequestsSince(ctx, time.Date(y, mo, d, 0, 0, 0, 0, loc), shardOf(cfg).ID())
	if err != nil {
		return nil, err
	}
	m := syncer.NewBudgetMetrics(reg)
	rate := cfg.RateLimit()
	l, err := budget.New(budget.Options{PerMinute: rate.PerMinute, PerDay: rate.PerDay,
		PurgeShare:  purgeShare,
		DayLocation: loc,
		UsedToday:   used, OnWait: m.OnWait,
		Pace: budget.Pace{RunEvery: cfg.Sync.RunEvery, ReservePerHour: cfg.Sync.ReservePerHour}})
	if err != nil {
		return nil, err
	}
	m.Watch(l)
	return l, nil
}

// scheduleInterval is the time between the next two starts of schedule.sync
// (0 when the spec cannot be read): how often the daemon's runs start.
func scheduleInterval(cfg config.Config) time.Duration {
	s, err := config.ParseSchedule(cfg.Schedule.Sync, cfg.Schedule.Location())
	if err != nil {
		return 0
	}
	first := s.Next(time.Now())
	return s.Next(first).Sub(first)
}

// archiveOptions is the write path the sync settings ask for.
func archiveOptions(cfg config.Sync, reg prometheus.Registerer) sink.ArchiveOptions {
	return sink.ArchiveOptions{BatchRows: cfg.BatchRows, BatchBytes: cfg.BatchBytes, BatchInterval: cfg.BatchInterval,
		SpoolDir: cfg.SpoolDir, SpoolMaxBytes: int64(cfg.SpoolMaxBytes), Registerer: reg}
}
