package config

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caarlos0/env/v11"
	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"
)

// envOf returns a lookupEnv that sees only vars.
func envOf(vars map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := vars[k]
		return v, ok
	}
}

var noEnv = envOf(nil)

func TestDefault(t *testing.T) {
	want := Config{
		API: API{
			Auth:           "both",
			BackofficeAuth: "access_token",
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
		Conversations: Conversations{IDs: []string{},
			InboxListing: "auto", Discover: Discover{InboxIDs: []string{}, Platforms: []string{"whatsapp"}, StageStatuses: []string{}}},
		Sync: Sync{
			Concurrency:         4,
			DetailConcurrency:   4,
			BatchRows:           50000,
			BatchBytes:          512 << 10,
			BatchInterval:       5 * time.Second,
			SpoolMaxBytes:       1 << 30,
			RecheckWindow:       168 * time.Hour,
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
		Webhook: Webhook{Path: "/webhook", SignatureHeader: "X-Cekat-Signature", SignatureEncoding: "hex", MaxBody: 1 << 20,
			Debounce: 2 * time.Second, CappedBatch: 10 * time.Minute, RecheckInterval: 6 * time.Hour, MaxEventAge: 24 * time.Hour, Retention: 30 * 24 * time.Hour,
			ReadTimeout: 10 * time.Second, MaxInFlight: 32, JournalMaxBytes: 64 << 20},
		Log:       Log{Format: "json", Level: "info"},
		Analytics: Analytics{Timezone: "Asia/Jakarta"},
	}
	if diff := cmp.Diff(want, Default()); diff != "" {
		t.Errorf("Default() mismatch (-want +got):\n%s", diff)
	}

	// Each call returns its own lists.
	d := Default()
	d.ClickHouse.Addr[0] = "changed:1"
	if got := Default().ClickHouse.Addr[0]; got != "127.0.0.1:9000" {
		t.Errorf("Default() shares its addr list: got %q", got)
	}

	// Only the keys without a default are missing.
	wantErr := "api.base_url: must be set\napi.key: must be set (or api.key_file)"
	if err := Default().Validate(); err == nil || err.Error() != wantErr {
		t.Errorf("Default().Validate() = %v, want %q", err, wantErr)
	}
}

// minimal is Default with what testdata/minimal.yaml sets.
func minimal() Config {
	c := Default()
	c.API.BaseURL = "https://api.cekat.example"
	c.API.Key = "demo-key"
	c.Sync.SpoolDir = DefaultSpoolDir()
	return c
}

func TestLoadGood(t *testing.T) {
	full := Config{
		API: API{
			BaseURL:         "https://api.cekat.example/v1",
			OpenAPIURL:      "https://api.cekat.example/api",
			BackofficeURL:   "https://backoffice.cekat.example",
			Key:             "file-api-key",
			Auth:            AuthBearer,
			BackofficeToken: "file-backoffice-token",
			BackofficeAuth:  BackofficeAuthBearer,
			Timezone:        "UTC",
			Timeout:         time.Minute,
			MaxRetries:      0,
			PageSize:        50,
			RateLimit:       RateLimit{PerMinute: 10, PerDay: 0},
		},
		ClickHouse: ClickHouse{
			Addr:          []string{"ch-1:9000", "[::1]:9440"},
			Database:      "archive_2",
			User:          "archiver",
			Password:      "file-clickhouse-password",
			TLS:           TLS{ServerName: "ch.internal", InsecureSkipVerify: true},
			DialTimeout:   2 * time.Second,
			Compression:   "none",
			Cluster:       "replicas",
			ZooKeeperPath: "/clickhouse/{shard}/{database}/{table}",
			ReplicaName:   "{replica}",
		},
		Conversations: Conversations{IDs: []string{"conv-1", "conv-2"}, File: "testdata/conversations.txt",
			Discover: Discover{Enabled: true, InboxIDs: []string{"inbox-1"}, Platforms: []string{"whatsapp", "instagram"},
				StageStatuses: []string{"pending", "assigned"}}, DiscoverInterval: 15 * time.Minute, InboxListing: "on"},
		Shard: Shard{Index: "1", Count: 2, RateLimit: RateLimit{PerMinute: 4, PerDay: 100}},
		Sync: Sync{
			Concurrency:         1,
			DetailConcurrency:   64,
			BatchRows:           1000000,
			BatchBytes:          512 << 10,
			BatchInterval:       500 * time.Millisecond,
			SpoolDir:            "/var/lib/archiver/spool",
			SpoolMaxBytes:       2 << 20,
			RecheckWindow:       0,
			PollIdleRuns:        3,
			PollBaseInterval:    15 * time.Minute,
			PollMaxInterval:     6 * time.Hour,
			BackfillMaxDuration: 4 * time.Minute,
			RunEvery:            10 * time.Minute,
			ReservePerHour:      5,
			Enrich:              Enrich{History: "younger", MaxAge: 720 * time.Hour, OutboundOnly: true},
		},
		Retention: Retention{Enabled: true, PurgeAfter: 30 * 24 * time.Hour, MaxPerRun: 5, BatchSize: 2},
		Schedule:  Schedule{Sync: "*/5 * * * *", Purge: "30 2 * * 0", Timezone: "UTC"},
		Daemon:    Daemon{Listen: ":9464", ShutdownGrace: 30 * time.Second, ReadyMaxFailing: 30 * time.Minute},
		Webhook: Webhook{Listen: "127.0.0.1:9480", Path: "/hooks/cekat", Secret: "file-webhook-secret", SignatureHeader: "X-Signature",
			SignatureEncoding: "base64", MaxBody: 65536, Debounce: 5 * time.Second, CappedBatch: 15 * time.Minute, RecheckInterval: 12 * time.Hour,
			MaxEventAge: 2 * time.Hour, Retention: 240 * time.Hour, ReadTimeout: 5 * time.Second, MaxInFlight: 8, JournalMaxBytes: 1 << 20},
		Log:       Log{Format: "console", Level: "debug"},
		Analytics: Analytics{Timezone: "UTC"},
	}
	for _, tc := range []struct {
		name, path string
		want       Config
	}{
		{"minimal", "testdata/minimal.yaml", minimal()},
		{"every key", "testdata/full.yaml", full},
		{"example", "../config.example.yaml", func() Config {
			c := Default()
			c.API.BaseURL = "http://127.0.0.1:8090"
			c.API.Key = "demo-api-key"
			c.Sync.SpoolDir = DefaultSpoolDir()
			return c
		}()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Load(tc.path, noEnv)
			if err != nil {
				t.Fatalf("Load(%q): %v", tc.path, err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Load(%q) mismatch (-want +got):\n%s", tc.path, diff)
			}
		})
	}
}

func TestLoadEmptyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "empty.yaml")
	if err := os.WriteFile(path, []byte("# nothing but a comment\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := envOf(map[string]string{
		"CEKAT_ARCHIVER_API_BASE_URL": "https://api.cekat.example",
		"CEKAT_ARCHIVER_API_KEY":      "demo-key",
	})
	for _, p := range []string{path, ""} {
		got, err := Load(p, env)
		if err != nil {
			t.Fatalf("Load(%q): %v", p, err)
		}
		if diff := cmp.Diff(minimal(), got); diff != "" {
			t.Errorf("Load(%q) mismatch (-want +got):\n%s", p, diff)
		}
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load("testdata/no-such-file.yaml", noEnv)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load of a missing file = %v, want fs.ErrNotExist", err)
	}
}

func TestLoadBad(t *testing.T) {
	for _, tc := range []struct {
		file string
		env  map[string]string
		want string
	}{
		{
			file: "no-such-file.yaml",
			want: "open testdata/no-such-file.yaml: no such file or directory",
		},
		{
			file: "not-yaml.yaml",
			want: "parsing testdata/not-yaml.yaml: yaml: line 2: did not find expected key",
		},
		{
			file: "two-documents.yaml",
			want: "parsing testdata/two-documents.yaml: more than one YAML document",
		},
		{
			file: "unknown-key.yaml",
			want: `api.tiemout: line 4: unknown key
clickhouse.tls.enable: line 7: unknown key
loggin: line 8: unknown key`,
		},
		{
			file: "duplicate-key.yaml",
			want: "sync.concurrency: line 6: duplicate key, first set on line 5",
		},
		{
			// The mapping that holds a duplicate is not read at all: its
			// other keys are not reported as missing.
			file: "duplicate-key-beside-required.yaml",
			want: "api.key: line 5: duplicate key, first set on line 3",
		},
		{
			file: "duplicate-section.yaml",
			want: "api: line 6: duplicate key, first set on line 1",
		},
		{
			file: "section-not-mapping.yaml",
			want: "api: line 2: cannot use a list as a mapping",
		},
		{
			file: "wrong-type.yaml",
			want: `api.max_retries: line 4: cannot use "five" as an integer
api.rate_limit: line 5: cannot use "60" as a mapping
clickhouse.addr: line 7: cannot use "127.0.0.1:9000" as a list
clickhouse.tls.enabled: line 9: cannot use "maybe" as true or false
conversations.ids[1]: line 13: cannot use a list as a string
sync.concurrency: line 15: cannot use "2.5" as an integer`,
		},
		{
			file: "bad-duration.yaml",
			want: `api.timeout: line 4: cannot use "fast" as a duration like "30s"
sync.batch_interval: line 6: cannot use "5" as a duration like "30s"
sync.recheck_window: line 7: cannot use "a very long time indeed" as a duration like "30s"`,
		},
		{
			file: "bad-url.yaml",
			want: `api.base_url: must be an absolute http or https URL, got "api.cekat.example/v1"
api.backoffice_url: must be an absolute http or https URL, got "ftp://backoffice.cekat.example"`,
		},
		{
			file: "bad-schedule.yaml",
			want: `sync.poll_max_interval: must not be less than sync.poll_base_interval (1h0m0s), got 30m0s
schedule.sync: cron spec "*/5 * * *": expected exactly 5 fields, found 4: [*/5 * * *]
daemon.listen: must be [host]:port, got "localhost"
daemon.shutdown_grace: must be more than 0, got 0s`,
		},
		{
			file: "bad-schedule-zone.yaml",
			want: `schedule.timezone: unknown time zone Mars/Olympus`,
		},
		{
			file: "bad-schedule-tz-prefix.yaml",
			want: `schedule.sync: must not name a zone (use schedule.timezone), got "CRON_TZ=Asia/Jakarta 0 * * * *"`,
		},
		{
			file: "bad-auth.yaml",
			want: `api.auth: must be one of bearer, api_key, both; got "basic"
api.backoffice_auth: must be one of access_token, bearer; got "api_key"`,
		},
		{
			file: "port-missing.yaml",
			want: `clickhouse.addr[0]: must be host:port, got "clickhouse-1"
clickhouse.addr[1]: port must be a number from 1 to 65535, got "native"
clickhouse.addr[2]: host is missing in ":9000"
clickhouse.addr[3]: port must be a number from 1 to 65535, got "70000"`,
		},
		{
			file: "key-and-key-file.yaml",
			want: "api.key_file: cannot be set together with api.key",
		},
		{
			file: "minimal.yaml",
			env:  map[string]string{"CEKAT_ARCHIVER_API_KEY_FILE": "testdata/secrets/api-key"},
			want: "api.key_file: cannot be set together with api.key",
		},
		{
			file: "missing-key-file.yaml",
			want: "api.key_file: open testdata/secrets/no-such-file: no such file or directory",
		},
		{
			file: "empty-key-file.yaml",
			want: "api.key_file: testdata/secrets/empty is empty",
		},
		{
			file: "tls-cert-without-key.yaml",
			want: "clickhouse.tls.key_file: must be set together with clickhouse.tls.cert_file",
		},
		{
			file: "tls-bad-ca.yaml",
			want: "clickhouse.tls.ca_file: no PEM certificate in testdata/tls/not-pem.crt",
		},
		{
			file: "several-problems.yaml",
			want: `api.base_url: must be set
api.key: must be set (or api.key_file)
api.auth: must be one of bearer, api_key, both; got "token"
api.timezone: unknown time zone Mars/Olympus_Mons
api.timeout: must be more than 0, got 0s
api.max_retries: must be from 0 to 20, got 21
api.page_size: must be from 1 to 100, got 500
api.rate_limit.per_minute: must be at least 1, got 0
api.rate_limit.per_day: must be at least 0, got -1
clickhouse.addr: must list at least one host:port
clickhouse.database: must be letters, digits and underscores, not starting with a digit; got "1archive"
clickhouse.user: must be set
clickhouse.tls.cert_file: must be set together with clickhouse.tls.key_file
clickhouse.tls.ca_file: open testdata/tls/no-such-ca.pem: no such file or directory
clickhouse.tls.key_file: open testdata/tls/no-such-client.key: no such file or directory
clickhouse.dial_timeout: must be more than 0, got -1s
clickhouse.compression: must be lz4 or none; got "zstd"
clickhouse.cluster: must be letters, digits and underscores, not starting with a digit; got "2-replicas"
clickhouse.zookeeper_path: must start with / and contain {table}; got "clickhouse/tables/{shard}"
clickhouse.replica_name: must be set with clickhouse.cluster
conversations.ids[1]: must not be empty
conversations.ids[2]: must not be empty
conversations.file: open testdata/no-such-conversations.txt: no such file or directory
sync.concurrency: must be from 1 to 64, got 0
sync.detail_concurrency: must be from 1 to 64, got 65
sync.batch_rows: must be from 1 to 1000000, got 0
sync.batch_interval: must be more than 0, got 0s
sync.recheck_window: must not be negative, got -1h0m0s
log.format: must be one of json, console; got "text"
log.level: must be one of debug, info, warn, error; got "trace"`,
		},
		{
			// Decoding problems of the file and of the environment come
			// together, before any validation.
			file: "env-several.yaml",
			env: map[string]string{
				"CEKAT_ARCHIVER_API_MAX_RETRIES":                     "many",
				"CEKAT_ARCHIVER_API_PAGE_SIZE":                       "1.5",
				"CEKAT_ARCHIVER_CLICKHOUSE_TLS_ENABLED":              "yes",
				"CEKAT_ARCHIVER_SYNC_BATCH_INTERVAL":                 "5",
				"CEKAT_ARCHIVER_SYNC_CONCURRENCY":                    "0", // decodes, and validation says what is wrong
				"CEKAT_ARCHIVER_CLICKHOUSE_TLS_INSECURE_SKIP_VERIFY": " true ",
			},
			want: `api.timeout: line 5: cannot use "soon" as a duration like "30s"
api.max_retries: CEKAT_ARCHIVER_API_MAX_RETRIES: cannot use "many" as an integer
api.page_size: CEKAT_ARCHIVER_API_PAGE_SIZE: cannot use "1.5" as an integer
clickhouse.tls.enabled: CEKAT_ARCHIVER_CLICKHOUSE_TLS_ENABLED: cannot use "yes" as true or false
sync.batch_interval: CEKAT_ARCHIVER_SYNC_BATCH_INTERVAL: cannot use "5" as a duration like "30s"
sync.concurrency: must be from 1 to 64, got 0`,
		},
	} {
		t.Run(tc.file, func(t *testing.T) {
			_, err := Load(filepath.Join("testdata", tc.file), envOf(tc.env))
			if err == nil {
				t.Fatalf("Load succeeded, want error:\n%s", tc.want)
			}
			if got := err.Error(); got != tc.want {
				t.Errorf("Load error mismatch (-want +got):\n%s", cmp.Diff(strings.Split(tc.want, "\n"), strings.Split(got, "\n")))
			}
		})
	}
}

func TestEnvOverrides(t *testing.T) {
	vars := map[string]string{
		"CEKAT_ARCHIVER_API_BASE_URL":                          "http://sim:8090",
		"CEKAT_ARCHIVER_API_BACKOFFICE_URL":                    " https://backoffice.example ",
		"CEKAT_ARCHIVER_API_KEY":                               "env-api-key",
		"CEKAT_ARCHIVER_API_AUTH":                              "api_key",
		"CEKAT_ARCHIVER_API_BACKOFFICE_TOKEN":                  "env-backoffice-token",
		"CEKAT_ARCHIVER_API_BACKOFFICE_AUTH":                   "bearer",
		"CEKAT_ARCHIVER_API_TIMEZONE":                          "UTC",
		"CEKAT_ARCHIVER_API_TIMEOUT":                           "1m30s",
		"CEKAT_ARCHIVER_API_MAX_RETRIES":                       "0",
		"CEKAT_ARCHIVER_API_PAGE_SIZE":                         "25",
		"CEKAT_ARCHIVER_API_RATE_LIMIT_PER_MINUTE":             "10",
		"CEKAT_ARCHIVER_API_RATE_LIMIT_PER_DAY":                "0",
		"CEKAT_ARCHIVER_CLICKHOUSE_ADDR":                       "ch-1:9000, ch-2:9000 ,ch-3:9440",
		"CEKAT_ARCHIVER_CLICKHOUSE_DATABASE":                   "archive",
		"CEKAT_ARCHIVER_CLICKHOUSE_CLUSTER":                    "archive_cluster",
		"CEKAT_ARCHIVER_CLICKHOUSE_ZOOKEEPER_PATH":             "/ch/{shard}/{table}",
		"CEKAT_ARCHIVER_CLICKHOUSE_REPLICA_NAME":               "{host}",
		"CEKAT_ARCHIVER_CLICKHOUSE_USER":                       "archiver",
		"CEKAT_ARCHIVER_CLICKHOUSE_PASSWORD":                   "env-password",
		"CEKAT_ARCHIVER_CLICKHOUSE_TLS_SERVER_NAME":            "ch.internal",
		"CEKAT_ARCHIVER_CLICKHOUSE_COMPRESSION":                "none",
		"CEKAT_ARCHIVER_CLICKHOUSE_TLS_INSECURE_SKIP_VERIFY":   "true",
		"CEKAT_ARCHIVER_CLICKHOUSE_DIAL_TIMEOUT":               "250ms",
		"CEKAT_ARCHIVER_CONVERSATIONS_IDS":                     "conv-a,conv-b, conv-c",
		"CEKAT_ARCHIVER_CONVERSATIONS_FILE":                    "testdata/conversations.txt",
		"CEKAT_ARCHIVER_CONVERSATIONS_DISCOVER_ENABLED":        "true",
		"CEKAT_ARCHIVER_CONVERSATIONS_DISCOVER_INBOX_IDS":      "in-1,in-2",
		"CEKAT_ARCHIVER_CONVERSATIONS_DISCOVER_PLATFORMS":      "livechat",
		"CEKAT_ARCHIVER_CONVERSATIONS_DISCOVER_STAGE_STATUSES": "resolved",
		"CEKAT_ARCHIVER_CONVERSATIONS_DISCOVER_INTERVAL":       "1h",
		"CEKAT_ARCHIVER_CONVERSATIONS_INBOX_LISTING":           "off",
		"CEKAT_ARCHIVER_API_OPEN_API_URL":                      "http://sim:8090/open",
		"CEKAT_ARCHIVER_SHARD_INDEX":                           "cekat-archiver-2",
		"CEKAT_ARCHIVER_SHARD_COUNT":                           "3",
		"CEKAT_ARCHIVER_SHARD_RATE_LIMIT_PER_MINUTE":           "3",
		"CEKAT_ARCHIVER_SHARD_RATE_LIMIT_PER_DAY":              "50",
		"CEKAT_ARCHIVER_WEBHOOK_LISTEN":                        ":9480",
		"CEKAT_ARCHIVER_WEBHOOK_PATH":                          "/wh",
		"CEKAT_ARCHIVER_WEBHOOK_SECRET":                        "env-webhook-secret",
		"CEKAT_ARCHIVER_WEBHOOK_SIGNATURE_HEADER":              "X-Hub-Signature-256",
		"CEKAT_ARCHIVER_WEBHOOK_SIGNATURE_ENCODING":            "hex",
		"CEKAT_ARCHIVER_WEBHOOK_MAX_BODY":                      "4096",
		"CEKAT_ARCHIVER_WEBHOOK_DEBOUNCE":                      "1s",
		"CEKAT_ARCHIVER_WEBHOOK_CAPPED_BATCH":                  "1m",
		"CEKAT_ARCHIVER_WEBHOOK_MAX_EVENT_AGE":                 "1h",
		"CEKAT_ARCHIVER_WEBHOOK_RETENTION":                     "200h",
		"CEKAT_ARCHIVER_WEBHOOK_READ_TIMEOUT":                  "3s",
		"CEKAT_ARCHIVER_WEBHOOK_MAX_IN_FLIGHT":                 "4",
		"CEKAT_ARCHIVER_WEBHOOK_JOURNAL_MAX_BYTES":             "8192",
		"CEKAT_ARCHIVER_WEBHOOK_RECHECK_INTERVAL":              "12h",
		"CEKAT_ARCHIVER_RETENTION_ENABLED":                     "true",
		"CEKAT_ARCHIVER_RETENTION_PURGE_AFTER":                 "720h",
		"CEKAT_ARCHIVER_RETENTION_MAX_PER_RUN":                 "7",
		"CEKAT_ARCHIVER_RETENTION_BATCH_SIZE":                  "3",
		"CEKAT_ARCHIVER_RETENTION_DRY_RUN":                     "false",
		"CEKAT_ARCHIVER_SCHEDULE_PURGE":                        "@daily",
		"CEKAT_ARCHIVER_SYNC_CONCURRENCY":                      "8",
		"CEKAT_ARCHIVER_SYNC_DETAIL_CONCURRENCY":               "2",
		"CEKAT_ARCHIVER_SYNC_BATCH_ROWS":                       "500",
		"CEKAT_ARCHIVER_SYNC_BATCH_INTERVAL":                   "2s",
		"CEKAT_ARCHIVER_SYNC_SPOOL_DIR":                        "/spool",
		"CEKAT_ARCHIVER_SYNC_SPOOL_MAX_BYTES":                  "4194304",
		"CEKAT_ARCHIVER_SYNC_RECHECK_WINDOW":                   "72h",
		"CEKAT_ARCHIVER_SYNC_RUN_EVERY":                        "15m",
		"CEKAT_ARCHIVER_SYNC_RESERVE_PER_HOUR":                 "7",
		"CEKAT_ARCHIVER_SYNC_ENRICH_HISTORY":                   "none",
		"CEKAT_ARCHIVER_SYNC_ENRICH_MAX_AGE":                   "48h",
		"CEKAT_ARCHIVER_SYNC_ENRICH_OUTBOUND_ONLY":             "true",
		"CEKAT_ARCHIVER_ANALYTICS_TIMEZONE":                    "Asia/Makassar",
		"CEKAT_ARCHIVER_LOG_FORMAT":                            "console",
		"CEKAT_ARCHIVER_LOG_LEVEL":                             "warn",
		"CEKAT_ARCHIVER_CLICKHOUSE_TLS_ENABLED":                "", // empty: ignored
		"CEKAT_ARCHIVER_UNRELATED":                             "ignored",
		"CEKAT_ARCHIVER_API_RATE_LIMIT_PER_HOUR":               "ignored",
		"API_BASE_URL":                                         "ignored: no prefix",
		"CEKAT_ARCHIVER_CLICKHOUSE_TLS_CA_FILE_NOT_A_VARIABLE": "ignored",
	}
	want := Config{
		API: API{
			BaseURL:         "http://sim:8090",
			OpenAPIURL:      "http://sim:8090/open",
			BackofficeURL:   "https://backoffice.example",
			Key:             "env-api-key",
			Auth:            AuthAPIKey,
			BackofficeToken: "env-backoffice-token",
			BackofficeAuth:  BackofficeAuthBearer,
			Timezone:        "UTC",
			Timeout:         90 * time.Second,
			MaxRetries:      0,
			PageSize:        25,
			RateLimit:       RateLimit{PerMinute: 10, PerDay: 0},
		},
		ClickHouse: ClickHouse{
			Addr:          []string{"ch-1:9000", "ch-2:9000", "ch-3:9440"},
			Database:      "archive",
			User:          "archiver",
			Password:      "env-password",
			TLS:           TLS{ServerName: "ch.internal", InsecureSkipVerify: true},
			DialTimeout:   250 * time.Millisecond,
			Compression:   "none",
			Cluster:       "archive_cluster",
			ZooKeeperPath: "/ch/{shard}/{table}",
			ReplicaName:   "{host}",
		},
		Conversations: Conversations{IDs: []string{"conv-a", "conv-b", "conv-c"}, File: "testdata/conversations.txt",
			Discover: Discover{Enabled: true, InboxIDs: []string{"in-1", "in-2"}, Platforms: []string{"livechat"},
				StageStatuses: []string{"resolved"}}, DiscoverInterval: time.Hour, InboxListing: "off"},
		Shard: Shard{Index: "cekat-archiver-2", Count: 3, RateLimit: RateLimit{PerMinute: 3, PerDay: 50}},
		Sync: Sync{
			Concurrency:         8,
			DetailConcurrency:   2,
			BatchRows:           500,
			BatchBytes:          512 << 10,
			BatchInterval:       2 * time.Second,
			SpoolDir:            "/spool",
			SpoolMaxBytes:       4 << 20,
			RecheckWindow:       72 * time.Hour,
			PollIdleRuns:        3,
			PollBaseInterval:    15 * time.Minute,
			PollMaxInterval:     6 * time.Hour,
			BackfillMaxDuration: 4 * time.Minute,
			RunEvery:            15 * time.Minute,
			ReservePerHour:      7,
			Enrich:              Enrich{History: "none", MaxAge: 48 * time.Hour, OutboundOnly: true},
		},
		Retention: Retention{Enabled: true, PurgeAfter: 720 * time.Hour, MaxPerRun: 7, BatchSize: 3},
		Schedule:  Schedule{Sync: "*/5 * * * *", Purge: "@daily", Timezone: "UTC"},
		Daemon:    Daemon{Listen: ":9464", ShutdownGrace: 30 * time.Second, ReadyMaxFailing: 30 * time.Minute},
		Webhook: Webhook{Listen: ":9480", Path: "/wh", Secret: "env-webhook-secret", SignatureHeader: "X-Hub-Signature-256",
			SignatureEncoding: "hex", MaxBody: 4096, Debounce: time.Second, CappedBatch: time.Minute, RecheckInterval: 12 * time.Hour,
			MaxEventAge: time.Hour, Retention: 200 * time.Hour, ReadTimeout: 3 * time.Second, MaxInFlight: 4, JournalMaxBytes: 8192},
		Log:       Log{Format: "console", Level: "warn"},
		Analytics: Analytics{Timezone: "Asia/Makassar"},
	}

	t.Run("over defaults", func(t *testing.T) {
		got, err := Load("", envOf(vars))
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("mismatch (-want +got):\n%s", diff)
		}
	})
	t.Run("over the file", func(t *testing.T) {
		// testdata/full.yaml sets every key; the environment wins wherever
		// it has a non-empty variable.
		got, err := Load("testdata/full.yaml", envOf(vars))
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("mismatch (-want +got):\n%s", diff)
		}
	})
	t.Run("one variable", func(t *testing.T) {
		got, err := Load("testdata/minimal.yaml", envOf(map[string]string{"CEKAT_ARCHIVER_CLICKHOUSE_ADDR": "db:9000"}))
		if err != nil {
			t.Fatal(err)
		}
		w := minimal()
		w.ClickHouse.Addr = []string{"db:9000"}
		if diff := cmp.Diff(w, got); diff != "" {
			t.Errorf("mismatch (-want +got):\n%s", diff)
		}
	})
}

func TestLoadUsesOSEnvironmentByDefault(t *testing.T) {
	t.Setenv("CEKAT_ARCHIVER_API_BASE_URL", "https://api.cekat.example")
	t.Setenv("CEKAT_ARCHIVER_API_KEY", "demo-key")
	got, err := Load("", nil)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(minimal(), got); diff != "" {
		t.Errorf("mismatch (-want +got):\n%s", diff)
	}
}

func TestSecretFiles(t *testing.T) {
	got, err := Load("testdata/minimal.yaml", envOf(map[string]string{
		"CEKAT_ARCHIVER_API_KEY":                   "",
		"CEKAT_ARCHIVER_API_BACKOFFICE_TOKEN_FILE": "testdata/secrets/backoffice-token",
		"CEKAT_ARCHIVER_CLICKHOUSE_PASSWORD_FILE":  "testdata/secrets/clickhouse-password",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := got.API.BackofficeToken.Reveal(), "backoffice-token-from-file"; got != want {
		t.Errorf("backoffice token = %q, want %q", got, want)
	}
	if got, want := got.ClickHouse.Password.Reveal(), "clickhouse-password-from-file"; got != want {
		t.Errorf("password = %q, want %q", got, want)
	}
	if got.API.BackofficeTokenFile != "testdata/secrets/backoffice-token" {
		t.Errorf("backoffice_token_file = %q, want it kept", got.API.BackofficeTokenFile)
	}

	// The file's content is trimmed of surrounding whitespace.
	got, err = Load("", envOf(map[string]string{
		"CEKAT_ARCHIVER_API_BASE_URL": "https://api.cekat.example",
		"CEKAT_ARCHIVER_API_KEY_FILE": "testdata/secrets/api-key",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := got.API.Key.Reveal(), "api-key-from-file"; got != want {
		t.Errorf("key = %q, want %q", got, want)
	}
}

func TestMasked(t *testing.T) {
	c := minimal()
	c.API.Key = "sk-live-KEY"
	c.API.BackofficeToken = "bo-TOKEN"
	c.ClickHouse.Password = "ch-PASSWORD"
	secrets := []string{"sk-live-KEY", "bo-TOKEN", "ch-PASSWORD"}

	out, err := c.Masked()
	if err != nil {
		t.Fatal(err)
	}
	printed := map[string]string{
		"Masked": string(out),
		"JSON":   mustJSON(t, c),
	}
	// Every verb, also the wrong ones, on the Config, a part of it, a
	// pointer to it and a Secret.
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%10.3s", "%T"} {
		for name, v := range map[string]any{"Config": c, "*Config": &c, "API": c.API, "Secret": c.API.Key} {
			printed[verb+" of "+name] = fmt.Sprintf(verb, v)
		}
	}
	for name, s := range printed {
		for _, secret := range secrets {
			if strings.Contains(s, secret) || strings.Contains(s, hexOf(secret)) {
				t.Errorf("%s shows the secret %q:\n%s", name, secret, s)
			}
		}
	}

	// Masked is the whole effective configuration, as a file Load accepts.
	var back Config
	dec := yaml.NewDecoder(strings.NewReader(string(out)))
	dec.KnownFields(true)
	if err := dec.Decode(&back); err != nil {
		t.Fatalf("Masked output does not decode: %v\n%s", err, out)
	}
	want := c
	want.API.Key, want.API.BackofficeToken, want.ClickHouse.Password = "***", "***", "***"
	if diff := cmp.Diff(want, back); diff != "" {
		t.Errorf("Masked round trip mismatch (-want +got):\n%s", diff)
	}

	// An unset secret shows as "".
	out, err = Default().Masked()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{`  key: ""`, `  backoffice_token: ""`, `  password: ""`} {
		if !strings.Contains(string(out), line+"\n") {
			t.Errorf("Default().Masked() has no line %q:\n%s", line, out)
		}
	}
}

func TestSecret(t *testing.T) {
	for _, tc := range []struct {
		s                            Secret
		str, goStr, yamlOut, jsonOut string
	}{
		{"hunter2", "***", `config.Secret("***")`, "'***'\n", `"***"`},
		{"", "", `config.Secret("")`, "\"\"\n", `""`},
	} {
		if got := tc.s.String(); got != tc.str {
			t.Errorf("String() = %q, want %q", got, tc.str)
		}
		if got := tc.s.GoString(); got != tc.goStr {
			t.Errorf("GoString() = %q, want %q", got, tc.goStr)
		}
		if got := tc.s.Reveal(); got != string(tc.s) {
			t.Errorf("Reveal() = %q, want %q", got, string(tc.s))
		}
		y, err := yaml.Marshal(tc.s)
		if err != nil || string(y) != tc.yamlOut {
			t.Errorf("yaml.Marshal = %q, %v; want %q", y, err, tc.yamlOut)
		}
		if got := mustJSON(t, tc.s); got != tc.jsonOut {
			t.Errorf("json.Marshal = %s, want %s", got, tc.jsonOut)
		}
	}
}

func TestLocation(t *testing.T) {
	if got := Default().API.Location().String(); got != "Asia/Jakarta" {
		t.Errorf("Location() = %q, want Asia/Jakarta", got)
	}
	defer func() {
		if recover() == nil {
			t.Error("Location() of an unknown zone did not panic")
		}
	}()
	API{Timezone: "Mars/Olympus_Mons"}.Location()
}

// TestNaming checks that every key's environment variable is its key path
// in upper case, and that caarlos0/env sees the same variables.
func TestNaming(t *testing.T) {
	var ours []string
	for _, f := range fields() {
		if f.env == "" {
			continue
		}
		want := EnvPrefix + strings.ToUpper(strings.ReplaceAll(f.path, ".", "_"))
		if f.env != want {
			t.Errorf("%s: variable %s, want %s", f.path, f.env, want)
		}
		ours = append(ours, f.env)
	}
	params, err := env.GetFieldParamsWithOptions(&Config{}, env.Options{Prefix: EnvPrefix, Environment: map[string]string{}})
	if err != nil {
		t.Fatal(err)
	}
	var theirs []string
	for _, p := range params {
		theirs = append(theirs, p.Key)
	}
	if diff := cmp.Diff(ours, theirs); diff != "" {
		t.Errorf("variables differ from caarlos0/env's (-ours +theirs):\n%s", diff)
	}
}

// TestExampleDocumentsEveryKey checks that config.example.yaml shows every
// key and names its variable.
func TestExampleDocumentsEveryKey(t *testing.T) {
	data, err := os.ReadFile("../config.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		t.Fatal(err)
	}
	f := indexFile(&root)
	inFile := map[string]bool{}
	for _, l := range f.all {
		inFile[l.path] = true
	}
	for _, fl := range fields() {
		if !inFile[fl.path] {
			t.Errorf("config.example.yaml lacks %s", fl.path)
		}
		if fl.env != "" && !strings.Contains(string(data), " "+fl.env+"\n") {
			t.Errorf("config.example.yaml does not name %s", fl.env)
		}
	}
}

func hexOf(s string) string { return hex.EncodeToString([]byte(s)) }

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(*Config)
		want   string // "" for valid
	}{
		{"minimal", func(*Config) {}, ""},
		{"key from a file", func(c *Config) { c.API.Key, c.API.KeyFile = "", "testdata/secrets/api-key" }, ""},
		{"URL with a path", func(c *Config) { c.API.BaseURL = "https://api.cekat.example/v1/" }, ""},
		{"IPv6 address", func(c *Config) { c.ClickHouse.Addr = []string{"[::1]:9000", "ch:1"} }, ""},
		{"unparsable URL", func(c *Config) { c.API.BaseURL = "http://[::1" },
			`api.base_url: must be an absolute http or https URL, got "http://[::1"`},
		{"URL without host", func(c *Config) { c.API.BackofficeURL = "https:///delete" },
			`api.backoffice_url: must be an absolute http or https URL, got "https:///delete"`},
		{"password in a bad URL", func(c *Config) { c.API.BaseURL = "ftp://user:hunter2@api.cekat.example" },
			`api.base_url: must be an absolute http or https URL, got "ftp://user:***@api.cekat.example"`},
		{"no timezone", func(c *Config) { c.API.Timezone = "" }, "api.timezone: must be set"},
		{"no database", func(c *Config) { c.ClickHouse.Database = "" }, "clickhouse.database: must be set"},
		{"database with a dash", func(c *Config) { c.ClickHouse.Database = "cekat-archive" },
			`clickhouse.database: must be letters, digits and underscores, not starting with a digit; got "cekat-archive"`},
		{"port 0", func(c *Config) { c.ClickHouse.Addr = []string{"ch:0"} },
			`clickhouse.addr[0]: port must be a number from 1 to 65535, got "0"`},
		{"conversations file is a directory", func(c *Config) { c.Conversations.File = "testdata" },
			"conversations.file: testdata is a directory"},
		{"TLS files ignored when disabled", func(c *Config) { c.ClickHouse.TLS.CAFile = "testdata/no-such-ca.pem" }, ""},
		{"retention without the backoffice", func(c *Config) { c.Retention.Enabled = true },
			"api.backoffice_url: must be set when retention.enabled is true (the purge deletes through the backoffice)\n" +
				"api.backoffice_token: must be set (or api.backoffice_token_file) when retention.enabled is true"},
		{"retention shorter than the re-check window", func(c *Config) {
			c.API.BackofficeURL, c.API.BackofficeTokenFile = "https://bo.example", "testdata/secrets/backoffice-token"
			c.Retention.Enabled, c.Retention.PurgeAfter = true, 24*time.Hour
		}, "retention.purge_after: must not be less than sync.recheck_window (168h0m0s) when retention.enabled is true, got 24h0m0s"},
		{"retention limits", func(c *Config) {
			c.Retention = Retention{PurgeAfter: 0, MaxPerRun: 0, BatchSize: 101}
			c.Schedule.Purge = "daily"
		}, "retention.purge_after: must be more than 0, got 0s\nretention.max_per_run: must be at least 1, got 0\n" +
			"retention.batch_size: must be from 1 to 100, got 101\n" +
			`schedule.purge: cron spec "daily": expected exactly 5 fields, found 1: [daily]`},
		{"retention disabled needs no backoffice", func(c *Config) { c.Retention.PurgeAfter = time.Hour }, ""},
		{"webhook bounds", func(c *Config) {
			c.Webhook.Listen, c.Webhook.Secret = ":9480", "s"
			c.Webhook.MaxEventAge, c.Webhook.Retention, c.Webhook.ReadTimeout = 240*time.Hour, 200*time.Hour, 0
			c.Webhook.MaxInFlight, c.Webhook.JournalMaxBytes = 0, 1000
		}, "webhook.retention: must be at least 240h0m0s (7 days, and webhook.max_event_age), got 200h0m0s\n" +
			"webhook.read_timeout: must be from 1s to 10m, got 0s\nwebhook.max_in_flight: must be at least 1, got 0\n" +
			"webhook.journal_max_bytes: must be at least webhook.max_body (1048576), got 1000"},
		{"webhook without a window", func(c *Config) { c.Webhook.Listen, c.Webhook.Secret, c.Webhook.MaxEventAge = ":9480", "s", 0 }, ""},
		{"shard from a pod name", func(c *Config) { c.Shard = Shard{Index: "cekat-archiver-2", Count: 3} }, ""},
		{"shard beyond the count", func(c *Config) { c.Shard = Shard{Index: "cekat-archiver-3", Count: 3} },
			`shard.index: must be below shard.count (3), got 3 (from "cekat-archiver-3")`},
		{"shard index not a number", func(c *Config) { c.Shard = Shard{Index: "cekat-archiver", Count: 3} },
			`shard.index: must be a number from 0, or a name ending in -NUMBER (a StatefulSet pod's name), got "cekat-archiver"`},
		{"negative shard index", func(c *Config) { c.Shard = Shard{Index: "-1", Count: 3} },
			`shard.index: must be a number from 0, or a name ending in -NUMBER (a StatefulSet pod's name), got "-1"`},
		{"no shards", func(c *Config) { c.Shard = Shard{Index: "0", Count: 0} }, "shard.count: must be from 1 to 1000, got 0"},
		{"shard share of nothing", func(c *Config) {
			c.API.RateLimit = RateLimit{PerMinute: 3, PerDay: 3}
			c.Shard = Shard{Index: "0", Count: 4}
		}, "shard.rate_limit.per_minute: must be set when api.rate_limit.per_minute (3) is less than shard.count (4)\n" +
			"shard.rate_limit.per_day: must be set when api.rate_limit.per_day (3) is less than shard.count (4)"},
		{"shard share set", func(c *Config) {
			c.API.RateLimit = RateLimit{PerMinute: 3, PerDay: 3}
			c.Shard = Shard{Index: "0", Count: 4, RateLimit: RateLimit{PerMinute: 1, PerDay: 1}}
		}, ""},
		{"limits", func(c *Config) {
			c.API.MaxRetries, c.API.PageSize, c.API.RateLimit = 20, 1, RateLimit{PerMinute: 1, PerDay: 0}
			c.Sync = Sync{Concurrency: 64, DetailConcurrency: 1, BatchRows: 1, BatchBytes: 1 << 10, BatchInterval: 1, SpoolDir: "s", SpoolMaxBytes: 1 << 20, RecheckWindow: 0,
				PollIdleRuns: 1, PollBaseInterval: 1, PollMaxInterval: 1, BackfillMaxDuration: 1}
		}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := minimal()
			tc.change(&c)
			err := c.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("Validate() = %v, want nil", err)
			case tc.want != "" && (err == nil || err.Error() != tc.want):
				t.Errorf("Validate() = %v, want %q", err, tc.want)
			}
		})
	}
}

// Each shard takes its part of the one upstream limit, unless told otherwise.
func TestShardRateLimit(t *testing.T) {
	for _, tc := range []struct {
		api, shard RateLimit
		count      int
		want       RateLimit
	}{
		{RateLimit{60, 1000}, RateLimit{}, 1, RateLimit{60, 1000}},
		{RateLimit{60, 1000}, RateLimit{}, 3, RateLimit{20, 333}},
		{RateLimit{10, 0}, RateLimit{}, 4, RateLimit{2, 0}}, // no daily cap stays none
		{RateLimit{60, 1000}, RateLimit{PerMinute: 30}, 3, RateLimit{30, 333}},
		{RateLimit{60, 1000}, RateLimit{PerDay: 500}, 3, RateLimit{20, 500}},
	} {
		c := minimal()
		c.API.RateLimit, c.Shard = tc.api, Shard{Index: "0", Count: tc.count, RateLimit: tc.shard}
		if got := c.RateLimit(); got != tc.want {
			t.Errorf("api %+v, shard %+v of %d: RateLimit() = %+v, want %+v", tc.api, tc.shard, tc.count, got, tc.want)
		}
	}
}

func TestShardOrdinal(t *testing.T) {
	for in, want := range map[string]int{"0": 0, "7": 7, "cekat-archiver-2": 2, "a-b-c-10": 10} {
		if got := (Shard{Index: in}).Ordinal(); got != want {
			t.Errorf("Ordinal(%q) = %d, want %d", in, got, want)
		}
	}
}

func TestMaskURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://api.cekat.ai/v1":                     "https://api.cekat.ai/v1",
		"https://user@api.cekat.ai/v1":                "https://user@api.cekat.ai/v1",
		"https://user:pa55@api.cekat.ai/v1?x=1":       "https://user:***@api.cekat.ai/v1?x=1",
		"http://u%40x:p%3Aw%40d@host:8080/":           "http://u%40x:***@host:8080/",
		"https://user:p@ss@host/":                     "https://user:***@host/",
		"http://user:pa55@host\x7f/":                  "http://user:***@host\x7f/", // does not parse: masked as text
		"user:pa55@clickhouse:9000":                   "user:***@clickhouse:9000",
		"clickhouse:9000":                             "clickhouse:9000",
		"api.cekat.example/v1":                        "api.cekat.example/v1",
		"":                                            "",
		"https://host/path/with:colon@at":             "https://host/path/with:colon@at",
		"ftp://anonymous:guest@files.example/pub/x@y": "ftp://anonymous:***@files.example/pub/x@y",
	} {
		if got := MaskURL(in); got != want {
			t.Errorf("MaskURL(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestMaskedHidesURLPasswords(t *testing.T) {
	c := minimal()
	c.API.BaseURL = "https://archiver:base-PASSWORD@api.cekat.example/v1"
	c.API.BackofficeURL = "https://ops:bo-PASSWORD@backoffice.cekat.example"
	out, err := c.Masked()
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"base-PASSWORD", "bo-PASSWORD"} {
		if strings.Contains(string(out), secret) {
			t.Errorf("Masked shows %s:\n%s", secret, out)
		}
	}
	for _, line := range []string{"base_url: https://archiver:***@api.cekat.example/v1", "backoffice_url: https://ops:***@backoffice.cekat.example"} {
		if !strings.Contains(string(out), line+"\n") {
			t.Errorf("Masked lacks %q:\n%s", line, out)
		}
	}
	if c.API.BaseURL != "https://archiver:base-PASSWORD@api.cekat.example/v1" {
		t.Error("Masked changed the configuration it printed")
	}
	// A bad URL is reported without its password.
	c.API.BaseURL = "api.example:base-PASSWORD@x"
	c.ClickHouse.Addr = []string{"default:ch-PASSWORD@clickhouse:9000"}
	if err := c.Validate(); err == nil || strings.Contains(err.Error(), "PASSWORD") {
		t.Errorf("Validate = %v; want errors without the passwords", err)
	}
}

func TestUnknownEnv(t *testing.T) {
	got := UnknownEnv([]string{
		"CEKAT_ARCHIVER_API_KEY=k", "CEKAT_ARCHIVER_API_TIMEZONE=UTC", "CEKAT_ARCHIVER_CONFIG=/etc/cekat.yaml",
		"CEKAT_ARCHIVER_API_TIEMOUT=5s", "CEKAT_ARCHIVER_CLICKHOUSE_PASSWROD=x", "CEKAT_ARCHIVER_TEST_CLICKHOUSE_ADDR=127.0.0.1:19000",
		"CEKAT_ARCHIVER_API_TIEMOUT=6s", "PATH=/usr/bin", "cekat_archiver_api_key=lowercase, not ours", "CEKAT_ARCHIVER_API=",
	})
	want := []string{"CEKAT_ARCHIVER_API", "CEKAT_ARCHIVER_API_TIEMOUT", "CEKAT_ARCHIVER_CLICKHOUSE_PASSWROD"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("UnknownEnv (-want +got):\n%s", diff)
	}
}
