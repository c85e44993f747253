// Package config holds the settings of cekat-archiver.
//
// A Config starts from Default, is overridden by a YAML file (unknown keys
// are errors), then by environment variables named CEKAT_ARCHIVER_ followed
// by the key path in upper case with dots as underscores (api.rate_limit.per_day
// is CEKAT_ARCHIVER_API_RATE_LIMIT_PER_DAY), then secrets named by *_file
// keys are read, and the result is validated once. Load does all of this.
package config

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// EnvPrefix starts the name of every environment variable read by Load.
const EnvPrefix = "CEKAT_ARCHIVER_"

// Config is the whole configuration. Its yaml tags are the keys of the file;
// its env and envPrefix tags, after EnvPrefix, name the environment variables.
type Config struct {
	API           API           `yaml:"api" envPrefix:"API_"`
	ClickHouse    ClickHouse    `yaml:"clickhouse" envPrefix:"CLICKHOUSE_"`
	Conversations Conversations `yaml:"conversations" envPrefix:"CONVERSATIONS_"`
	Shard         Shard         `yaml:"shard" envPrefix:"SHARD_"`
	Sync          Sync          `yaml:"sync" envPrefix:"SYNC_"`
	Retention     Retention     `yaml:"retention" envPrefix:"RETENTION_"`
	Schedule      Schedule      `yaml:"schedule" envPrefix:"SCHEDULE_"`
	Daemon        Daemon        `yaml:"daemon" envPrefix:"DAEMON_"`
	Webhook       Webhook       `yaml:"webhook" envPrefix:"WEBHOOK_"`
	Analytics     Analytics     `yaml:"analytics" envPrefix:"ANALYTICS_"`
	Log           Log           `yaml:"log" envPrefix:"LOG_"`
}

// AuthMode says how the API key is sent to the messages API.
type AuthMode string

// The ways of sending the API key.
const (
	AuthBearer AuthMode = "bearer"  // Authorization: Bearer KEY
	AuthAPIKey AuthMode = "api_key" // api_key: KEY
	AuthBoth   AuthMode = "both"    // both headers
)

// BackofficeAuthMode says how the backoffice token is sent.
type BackofficeAuthMode string

// The ways of sending the backoffice token.
const (
	BackofficeAuthAccessToken BackofficeAuthMode = "access_token" // access_token: TOKEN
	BackofficeAuthBearer      BackofficeAuthMode = "bearer"       // Authorization: Bearer TOKEN
)

// API is how to reach the Cekat API.
type API struct {
	// BaseURL is the root of the messages endpoints.
	BaseURL string `yaml:"base_url" env:"BASE_URL"`
	// OpenAPIURL is the root of the New Open API (the conversation list of
	// discovery); empty means BaseURL + "/api".
	OpenAPIURL string `yaml:"open_api_url" env:"OPEN_API_URL"`
	// BackofficeURL is the root of the backoffice (conversation delete)
	// endpoints; only purge needs it.
	BackofficeURL string `yaml:"backoffice_url" env:"BACKOFFICE_URL"`
	// Key is the API key; after Load it also holds the content of KeyFile.
	Key     Secret   `yaml:"key" env:"KEY"`
	KeyFile string   `yaml:"key_file" env:"KEY_FILE"`
	Auth    AuthMode `yaml:"auth" env:"AUTH"`
	// BackofficeToken is the dashboard token of the backoffice; after Load
	// it also holds the content of BackofficeTokenFile.
	BackofficeToken     Secret             `yaml:"backoffice_token" env:"BACKOFFICE_TOKEN"`
	BackofficeTokenFile string             `yaml:"backoffice_token_file" env:"BACKOFFICE_TOKEN_FILE"`
	BackofficeAuth      BackofficeAuthMode `yaml:"backoffice_auth" env:"BACKOFFICE_AUTH"`
	// Timezone is the IANA name of the zone of time stamps that carry none.
	Timezone   string        `yaml:"timezone" env:"TIMEZONE"`
	Timeout    time.Duration `yaml:"timeout" env:"TIMEOUT"`
	MaxRetries int           `yaml:"max_retries" env:"MAX_RETRIES"`
	PageSize   int           `yaml:"page_size" env:"PAGE_SIZE"`
	RateLimit  RateLimit     `yaml:"rate_limit" envPrefix:"RATE_LIMIT_"`
}

// RateLimit is the request budget of the API key.
type RateLimit struct {
	PerMinute int `yaml:"per_minute" env:"PER_MINUTE"`
	// PerDay is the daily cap; 0 means none.
	PerDay int `yaml:"per_day" env:"PER_DAY"`
}

// ClickHouse is how to reach the archive database.
type ClickHouse struct {
	// Addr lists host:port addresses of the native protocol.
	Addr     []string `yaml:"addr" env:"ADDR"`
	Database string   `yaml:"database" env:"DATABASE"`
	User     string   `yaml:"user" env:"USER"`
	// Password is the user's password; after Load it also holds the
	// content of PasswordFile.
	Password     Secret        `yaml:"password" env:"PASSWORD"`
	PasswordFile string        `yaml:"password_file" env:"PASSWORD_FILE"`
	TLS          TLS           `yaml:"tls" envPrefix:"TLS_"`
	DialTimeout  time.Duration `yaml:"dial_timeout" env:"DIAL_TIMEOUT"`
	// Compression of the native protocol: lz4, or none (a server on the same
	// machine: LZ4 then costs more CPU than the bytes it saves).
	Compression string `yaml:"compression" env:"COMPRESSION"`
	// Cluster names the cluster (one shard, its replicas, in the servers'
	// remote_servers) that holds the archive; empty: a single server.
	Cluster string `yaml:"cluster" env:"CLUSTER"`
	// ZooKeeperPath places each replicated table in ZooKeeper: server
	// macros such as {shard}, plus {database} and {table}.
	ZooKeeperPath string `yaml:"zookeeper_path" env:"ZOOKEEPER_PATH"`
	// ReplicaName names this server's replica of a table, usually the
	// server's {replica} macro.
	ReplicaName string `yaml:"replica_name" env:"REPLICA_NAME"`
}

// TLS is the client side of a TLS connection to ClickHouse.
type TLS struct {
	Enabled            bool   `yaml:"enabled" env:"ENABLED"`
	CAFile             string `yaml:"ca_file" env:"CA_FILE"`
	CertFile           string `yaml:"cert_file" env:"CERT_FILE"`
	KeyFile            string `yaml:"key_file" env:"KEY_FILE"`
	ServerName         string `yaml:"server_name" env:"SERVER_NAME"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify" env:"INSECURE_SKIP_VERIFY"`
}

// Conversations says which conversations to archive.
type Conversations struct {
	IDs []string `yaml:"ids" env:"IDS"`
	// File names a file of conversation ids, one a line, read at every run.
	File string `yaml:"file" env:"FILE"`
	// Discover tracks the conversations the New Open API lists, and polls
	// only those whose last message changed.
	Discover Discover `yaml:"discover" envPrefix:"DISCOVER_"`
	// DiscoverInterval is the least time between two listings (0: every
	// run); runs between listings poll as without discovery.
	DiscoverInterval time.Duration `yaml:"discover_interval" env:"DISCOVER_INTERVAL"`
	// InboxListing finds new messages by listing the whole inbox (the New
	// Open API's GET /api/messages, 100 a call) before listing conversations
	// one by one: InboxListingAuto (on under a daily cap), InboxListingOn or
	// InboxListingOff.
	InboxListing string `yaml:"inbox_listing" env:"INBOX_LISTING"`
}

// Values of conversations.inbox_listing.
const (
	InboxListingAuto = "auto"
	InboxListingOn   = "on"
	InboxListingOff  = "off"
)

// InboxListingOn says whether runs list the whole inbox first.
func (c Config) InboxListingOn() bool {
	switch c.Conversations.InboxListing {
	case InboxListingOn:
		return true
	case InboxListingOff:
		return false
	}
	return c.RateLimit().PerDay > 0
}

// Discover chooses the conversations discovery tracks. Empty filters take
// every value.
type Discover struct {
	Enabled       bool     `yaml:"enabled" env:"ENABLED"`
	InboxIDs      []string `yaml:"inbox_ids" env:"INBOX_IDS"`
	Platforms     []string `yaml:"platforms" env:"PLATFORMS"`
	StageStatuses []string `yaml:"stage_statuses" env:"STAGE_STATUSES"`
}

// Shard is this archiver's part of the conversations when several
// archivers (shards) share one workspace, one archive and one API key.
type Shard struct {
	// Index is this archiver's shard, from 0 to Count-1: a number, or a name
	// that ends in one after a dash, such as a StatefulSet pod's name
	// (cekat-archiver-2 is shard 2). Read it with Ordinal.
	Index string `yaml:"index" env:"INDEX"`
	// Count is how many shards there are; 1: no sharding.
	Count int `yaml:"count" env:"COUNT"`
	// RateLimit is this shard's part of api.rate_limit; 0 takes
	// 1/Count of it (see Config.RateLimit).
	RateLimit RateLimit `yaml:"rate_limit" envPrefix:"RATE_LIMIT_"`
}

// Ordinal returns the number Index says. Validate guarantees one; Ordinal
// panics without it.
func (s Shard) Ordinal() int {
	n, err := ordinal(s.Index)
	if err != nil {
		panic(fmt.Sprintf("config: shard.index: %v (the configuration was not validated)", err))
	}
	return n
}

// ordinal reads a shard index: "2", or a name ending in "-2".
func ordinal(s string) (int, error) {
	dash := strings.LastIndexByte(s, '-')
	digits := s[dash+1:]
	n, err := strconv.Atoi(digits)
	if err != nil || dash == 0 || digits != strconv.Itoa(n) {
		return 0, fmt.Errorf("must be a number from 0, or a name ending in -NUMBER (a StatefulSet pod's name), got %q", s)
	}
	return n, nil
}

// RateLimit is this archiver's part of the API's rate limit: the shards
// share one upstream limit, so each takes shard.rate_limit where it is set
// and otherwise api.rate_limit divided by shard.count, rounded down so that
// the shards together stay within it (no daily cap stays none).
func (c Config) RateLimit() RateLimit {
	n := max(c.Shard.Count, 1)
	r := RateLimit{PerMinute: c.API.RateLimit.PerMinute / n, PerDay: c.API.RateLimit.PerDay / n}
	if c.Shard.RateLimit.PerMinute > 0 {
		r.PerMinute = c.Shard.RateLimit.PerMinute
	}
	if c.Shard.RateLimit.PerDay > 0 {
		r.PerDay = c.Shard.RateLimit.PerDay
	}
	return r
}

// Sync tunes the archiving work.
type Sync struct {
	// Concurrency is how many conversations are worked on at once.
	Concurrency int `yaml:"concurrency" env:"CONCURRENCY"`
	// DetailConcurrency is how many message detail calls are in flight.
	DetailConcurrency int `yaml:"detail_concurrency" env:"DETAIL_CONCURRENCY"`
	// An INSERT of messages is kept open until it holds BatchRows rows or
	// BatchInterval has passed; rows go to it in blocks of BatchBytes.
	BatchRows     int           `yaml:"batch_rows" env:"BATCH_ROWS"`
	BatchBytes    int           `yaml:"batch_bytes" env:"BATCH_BYTES"`
	BatchInterval time.Duration `yaml:"batch_interval" env:"BATCH_INTERVAL"`
	// SpoolDir keeps on disk what ClickHouse has not acknowledged yet, up to
	// SpoolMaxBytes, so that a failed INSERT is retried without the API.
	SpoolDir      string `yaml:"spool_dir" env:"SPOOL_DIR"`
	SpoolMaxBytes int    `yaml:"spool_max_bytes" env:"SPOOL_MAX_BYTES"`
	// RecheckWindow is how long after it was sent a message whose status is
	// not final yet (not read, not failed) is checked again, in either
	// direction, on a schedule by its age; 0 turns re-checks off.
	RecheckWindow time.Duration `yaml:"recheck_window" env:"RECHECK_WINDOW"`
	// A conversation with no new message in PollIdleRuns runs in a row is
	// quiet: it is polled after PollBaseInterval, doubling with each further
	// idle run up to PollMaxInterval. A new message makes it active again.
	PollIdleRuns     int           `yaml:"poll_idle_runs" env:"POLL_IDLE_RUNS"`
	PollBaseInterval time.Duration `yaml:"poll_base_interval" env:"POLL_BASE_INTERVAL"`
	PollMaxInterval  time.Duration `yaml:"poll_max_interval" env:"POLL_MAX_INTERVAL"`
	// BackfillMaxDuration bounds the time a run spends fetching older
	// history, after new messages and re-checks, so a long first sync does
	// not hold back the next run's new messages.
	BackfillMaxDuration time.Duration `yaml:"backfill_max_duration" env:"BACKFILL_MAX_DURATION"`
	// RunEvery is how often runs start, for spreading a daily cap over the
	// day; 0: the daemon takes it from schedule.sync, and a sync --once
	// keeps nothing for later runs (it may spend the day).
	RunEvery time.Duration `yaml:"run_every" env:"RUN_EVERY"`
	// ReservePerHour is kept of a daily cap for each hour left in the day
	// for calls no run plans (webhook follow-ups); the enrichment backlog
	// gets what the runs' listing and this reserve leave.
	ReservePerHour int `yaml:"reserve_per_hour" env:"RESERVE_PER_HOUR"`
	// Enrich says which messages archived from the list alone (the daily
	// cap had no room for their detail calls) are enriched later.
	Enrich Enrich `yaml:"enrich" envPrefix:"ENRICH_"`
}

// Enrich is the policy of the enrichment backlog.
type Enrich struct {
	// History: all (also when empty), younger (than MaxAge) or none.
	History string        `yaml:"history" env:"HISTORY"`
	MaxAge  time.Duration `yaml:"max_age" env:"MAX_AGE"`
	// OutboundOnly leaves inbound messages that had to wait unenriched.
	OutboundOnly bool `yaml:"outbound_only" env:"OUTBOUND_ONLY"`
}

// Retention is the policy of the retention purge: conversations whose
// newest message is older than PurgeAfter are deleted upstream (through the
// backoffice), once completely archived, at most MaxPerRun a run, BatchSize
// ids a delete call. A policy deletes nothing until an operator turns
// DryRun off.
type Retention struct {
	Enabled    bool          `yaml:"enabled" env:"ENABLED"`
	PurgeAfter time.Duration `yaml:"purge_after" env:"PURGE_AFTER"`
	MaxPerRun  int           `yaml:"max_per_run" env:"MAX_PER_RUN"`
	BatchSize  int           `yaml:"batch_size" env:"BATCH_SIZE"`
	DryRun     bool          `yaml:"dry_run" env:"DRY_RUN"`
}

// Schedule says when the daemon (cekat-archiver run) starts its jobs.
type Schedule struct {
	// Sync is a cron spec (five fields, or a descriptor such as @hourly).
	Sync string `yaml:"sync" env:"SYNC"`
	// Purge is the cron spec of the retention purge (when retention.enabled);
	// it never runs while a sync does.
	Purge string `yaml:"purge" env:"PURGE"`
	// Timezone is the IANA zone the cron specs are read in.
	Timezone string `yaml:"timezone" env:"TIMEZONE"`
}

// Daemon configures the long-running process.
type Daemon struct {
	// Listen is the address of /metrics, /healthz and /readyz; empty turns
	// the HTTP server off. The default, every interface, lets Prometheus
	// scrape a container from outside it.
	Listen string `yaml:"listen" env:"LISTEN"`
	// ShutdownGrace bounds how long a stop signal waits for the run in
	// hand to write what it has.
	ShutdownGrace time.Duration `yaml:"shutdown_grace" env:"SHUTDOWN_GRACE"`
	// ReadyMaxFailing is how long runs may keep failing before /readyz
	// says not ready.
	ReadyMaxFailing time.Duration `yaml:"ready_max_failing" env:"READY_MAX_FAILING"`
}

// Webhook is the daemon's endpoint for Cekat's webhook events: hints that
// make a conversation sync, or a status be fetched again, within seconds.
type Webhook struct {
	// Listen is its own address (not /metrics'); empty turns it off.
	Listen string `yaml:"listen" env:"LISTEN"`
	Path   string `yaml:"path" env:"PATH"`
	// Secret signs every body (HMAC-SHA256); after Load it also holds the
	// content of SecretFile.
	Secret     Secret `yaml:"secret" env:"SECRET"`
	SecretFile string `yaml:"secret_file" env:"SECRET_FILE"`
	// SignatureHeader carries the signature, encoded as SignatureEncoding
	// (hex or base64), with or without a "sha256=" prefix.
	SignatureHeader   string `yaml:"signature_header" env:"SIGNATURE_HEADER"`
	SignatureEncoding string `yaml:"signature_encoding" env:"SIGNATURE_ENCODING"`
	// MaxBody refuses larger bodies (bytes).
	MaxBody int `yaml:"max_body" env:"MAX_BODY"`
	// Debounce gathers a burst of events into one run.
	Debounce time.Duration `yaml:"debounce" env:"DEBOUNCE"`
	// CappedBatch spaces, under a daily cap, the runs for events that list
	// conversations: events asking for one wait, pending, until it passed
	// since the last such run (0: no wait).
	CappedBatch time.Duration `yaml:"capped_batch" env:"CAPPED_BATCH"`
	// RecheckInterval: with events telling status changes, scheduled
	// re-checks are only the net for what no event told: at this age, 4
	// times it, and the window's end (0: the polling schedule).
	RecheckInterval time.Duration `yaml:"recheck_interval" env:"RECHECK_INTERVAL"`
	// MaxEventAge refuses events whose timestamp is older: a captured body
	// replayed later is refused, and the duplicate check by id need only
	// remember this long. 0 turns the window off.
	MaxEventAge time.Duration `yaml:"max_event_age" env:"MAX_EVENT_AGE"`
	// Retention is how long stored events are kept (whole months are
	// dropped, so up to a month longer).
	Retention time.Duration `yaml:"retention" env:"RETENTION"`
	// ReadTimeout bounds the reading of a request, body included.
	ReadTimeout time.Duration `yaml:"read_timeout" env:"READ_TIMEOUT"`
	// MaxInFlight bounds the requests handled at once; more are answered 503.
	MaxInFlight int `yaml:"max_in_flight" env:"MAX_IN_FLIGHT"`
	// JournalMaxBytes bounds the local journal (in sync.spool_dir) that
	// keeps events while ClickHouse is away.
	JournalMaxBytes int `yaml:"journal_max_bytes" env:"JOURNAL_MAX_BYTES"`
}

// Analytics configures what the archive offers analysts.
type Analytics struct {
	// Timezone is the IANA zone whose days the view messages_daily cuts.
	// Changing it changes the view only: the rollup behind it keeps quarter
	// hours in UTC.
	Timezone string `yaml:"timezone" env:"TIMEZONE"`
}

// Log configures the logger.
type Log struct {
	Format string `yaml:"format" env:"FORMAT"` // json or console
	Level  string `yaml:"level" env:"LEVEL"`   // debug, info, warn or error
}

// Default returns the configuration used for every key that the file and
// the environment leave alone. It is not valid by itself: api.base_url and
// api.key have no default.
// DefaultSpoolDir is where Load puts the spool when sync.spool_dir is
// empty: the XDG state directory, for state that outlives a restart.
func DefaultSpoolDir() string {
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "cekat-archiver", "spool")
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".local", "state", "cekat-archiver", "spool")
	}
	return filepath.Join(os.TempDir(), "cekat-archiver", "spool")
}

func Default() Config {
	return Config{
		API: API{
			Auth:           AuthBoth,
			BackofficeAuth: BackofficeAuthAccessToken,
			Timezone:       "Asia/Jakarta",
			Timeout:        30 * time.Second,
			MaxRetries:     5,
			PageSize:       100,
			RateLimit:      RateLimit{PerMinute: 60, PerDay: 1000},
		},
		ClickHouse: ClickHouse{
			Addr:          []string{"127.0.0.1:9000"},
			Database:      "cekat_archive",
			User:          "default",
			DialTimeout:   10 * time.Second,
			Compression:   "lz4",
			ZooKeeperPath: "/clickhouse/tables/{shard}/{database}/{table}",
			ReplicaName:   "{replica}",
		},
		Conversations: Conversations{IDs: []string{}, InboxListing: InboxListingAuto,
			Discover: Discover{InboxIDs: []string{}, Platforms: []string{"whatsapp"}, StageStatuses: []string{}}},
		Sync: Sync{
			Concurrency:         4,
			DetailConcurrency:   4,
			BatchRows:           50000,
			BatchBytes:          512 << 10,
			BatchInterval:       5 * time.Second,
			SpoolMaxBytes:       1 << 30,
			RecheckWindow:       7 * 24 * time.Hour,
			PollIdleRuns:        3,
			PollBaseInterval:    15 * time.Minute,
			PollMaxInterval:     6 * time.Hour,
			BackfillMaxDuration: 4 * time.Minute,
			Enrich:              Enrich{History: "all"},
		},
		Shard:     Shard{Index: "0", Count: 1},
		Retention: Retention{PurgeAfter: 365 * 24 * time.Hour, MaxPerRun: 100, BatchSize: 20, DryRun: true},
		Schedule:  Schedule{Sync: "*/5 * * * *", Purge: "0 3 * * *", Timezone: "UTC"},
		Daemon:    Daemon{Listen: ":9464", ShutdownGrace: 30 * time.Second, ReadyMaxFailing: 30 * time.Minute},
		Log:       Log{Format: "json", Level: "info"},
		Analytics: Analytics{Timezone: "Asia/Jakarta"},
		Webhook: Webhook{Path: "/webhook", SignatureHeader: "X-Cekat-Signature", SignatureEncoding: "hex", MaxBody: 1 << 20,
			Debounce: 2 * time.Second, CappedBatch: 10 * time.Minute, RecheckInterval: 6 * time.Hour, MaxEventAge: 24 * time.Hour, Retention: 30 * 24 * time.Hour,
			ReadTimeout: 10 * time.Second, MaxInFlight: 32, JournalMaxBytes: 64 << 20},
	}
}

// Masked returns the configuration as YAML with every secret shown as
// "***" when set and "" when not, and so is the password of a URL's
// userinfo (api.base_url, api.open_api_url, api.backoffice_url). It is a valid configuration
// file, with "***" standing for the secrets.
func (c Config) Masked() ([]byte, error) {
	c.API.BaseURL, c.API.BackofficeURL = MaskURL(c.API.BaseURL), MaskURL(c.API.BackofficeURL)
	c.API.OpenAPIURL = MaskURL(c.API.OpenAPIURL)
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(c); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// Location returns the zone named by Timezone, used for time stamps that
// carry none. Validate guarantees that the zone loads; Location panics if it
// does not. It reads the zone database on every call: keep the result.
func (a API) Location() *time.Location {
	loc, err := loadLocation(a.Timezone)
	if err != nil {
		panic(fmt.Sprintf("config: api.timezone: %v (the configuration was not validated)", err))
	}
	return loc
}

func loadLocation(name string) (*time.Location, error) {
	if name == "" {
		return nil, errors.New("must be set")
	}
	return time.LoadLocation(name)
}

// Config returns the client TLS settings, or nil when TLS is disabled. It
// reads the CA, certificate and key files on every call.
func (t TLS) Config() (*tls.Config, error) {
	if !t.Enabled {
		return nil, nil
	}
	c := &tls.Config{
		ServerName:         t.ServerName,
		InsecureSkipVerify: t.InsecureSkipVerify, //nolint:gosec // the operator's explicit choice
	}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("clickhouse.tls.ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("clickhouse.tls.ca_file: no PEM certificate in %s", t.CAFile)
		}
		c.RootCAs = pool
	}
	switch {
	case t.CertFile != "" && t.KeyFile == "":
		return nil, fmt.Errorf("clickhouse.tls.key_file: must be set together with clickhouse.tls.cert_file")
	case t.CertFile == "" && t.KeyFile != "":
		return nil, fmt.Errorf("clickhouse.tls.cert_file: must be set together with clickhouse.tls.key_file")
	case t.CertFile != "":
		certPEM, err := os.ReadFile(t.CertFile)
		if err != nil {
			return nil, fmt.Errorf("clickhouse.tls.cert_file: %w", err)
		}
		keyPEM, err := os.ReadFile(t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("clickhouse.tls.key_file: %w", err)
		}
		cert, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return nil, fmt.Errorf("clickhouse.tls: %w", err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}
