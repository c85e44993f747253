package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Validate reports every problem of c at once, one a line, each as
// "key.path: problem". It checks that the files c names (TLS files,
// conversations.file) can be opened; secret files are read by Load, so for
// secrets it only checks that the value or its file is set.
func (c Config) Validate() error {
	var p problems
	c.validate(&p)
	return p.err()
}

func (c Config) validate(p *problems) {
	c.API.validate(p)
	c.ClickHouse.validate(p)
	c.Conversations.validate(p)
	c.Shard.validate(p, c.API.RateLimit)
	c.Sync.validate(p)
	c.Retention.validate(p, c)
	c.Schedule.validate(p)
	c.Daemon.validate(p)
	c.Webhook.validate(p)
	if _, err := loadLocation(c.Analytics.Timezone); err != nil {
		p.check("analytics.timezone", err)
	}
	c.Log.validate(p)
}

func (a API) validate(p *problems) {
	switch {
	case a.BaseURL == "":
		p.add("api.base_url", "must be set")
	default:
		p.check("api.base_url", checkURL(a.BaseURL))
	}
	if a.BackofficeURL != "" {
		p.check("api.backoffice_url", checkURL(a.BackofficeURL))
	}
	if a.Key == "" && a.KeyFile == "" {
		p.add("api.key", "must be set (or api.key_file)")
	}
	oneOf(p, "api.auth", a.Auth, AuthBearer, AuthAPIKey, AuthBoth)
	oneOf(p, "api.backoffice_auth", a.BackofficeAuth, BackofficeAuthAccessToken, BackofficeAuthBearer)
	if _, err := loadLocation(a.Timezone); err != nil {
		p.check("api.timezone", err)
	}
	p.positive("api.timeout", a.Timeout)
	p.between("api.max_retries", a.MaxRetries, 0, 20)
	p.between("api.page_size", a.PageSize, 1, 100)
	p.atLeast("api.rate_limit.per_minute", a.RateLimit.PerMinute, 1)
	p.atLeast("api.rate_limit.per_day", a.RateLimit.PerDay, 0)
}

func (ch ClickHouse) validate(p *problems) {
	if len(ch.Addr) == 0 {
		p.add("clickhouse.addr", "must list at least one host:port")
	}
	for i, addr := range ch.Addr {
		p.check(fmt.Sprintf("clickhouse.addr[%d]", i), checkHostPort(addr))
	}
	switch {
	case ch.Database == "":
		p.add("clickhouse.database", "must be set")
	case !identifier.MatchString(ch.Database):
		p.add("clickhouse.database", "must be letters, digits and underscores, not starting with a digit; got %q", ch.Database)
	}
	if ch.User == "" {
		p.add("clickhouse.user", "must be set")
	}
	ch.TLS.validate(p)
	p.positive("clickhouse.dial_timeout", ch.DialTimeout)
	if ch.Compression != "lz4" && ch.Compression != "none" {
		p.add("clickhouse.compression", "must be lz4 or none; got %q", ch.Compression)
	}
	if ch.Cluster == "" {
		return
	}
	if !identifier.MatchString(ch.Cluster) {
		p.add("clickhouse.cluster", "must be letters, digits and underscores, not starting with a digit; got %q", ch.Cluster)
	}
	// Without {table} every table would claim the same ZooKeeper path.
	if !strings.HasPrefix(ch.ZooKeeperPath, "/") || !strings.Contains(ch.ZooKeeperPath, "{table}") {
		p.add("clickhouse.zookeeper_path", "must start with / and contain {table}; got %q", ch.ZooKeeperPath)
	}
	if strings.TrimSpace(ch.ReplicaName) == "" {
		p.add("clickhouse.replica_name", "must be set with clickhouse.cluster")
	}
}

func (t TLS) validate(p *problems) {
	if !t.Enabled {
		return
	}
	before := len(*p)
	if t.CertFile != "" && t.KeyFile == "" {
		p.add("clickhouse.tls.key_file", "must be set together with clickhouse.tls.cert_file")
	}
	if t.CertFile == "" && t.KeyFile != "" {
		p.add("clickhouse.tls.cert_file", "must be set together with clickhouse.tls.key_file")
	}
	for _, f := range []struct{ key, name string }{
		{"clickhouse.tls.ca_file", t.CAFile},
		{"clickhouse.tls.cert_file", t.CertFile},
		{"clickhouse.tls.key_file", t.KeyFile},
	} {
		if f.name != "" {
			p.check(f.key, checkReadable(f.name))
		}
	}
	if len(*p) == before {
		// The files are there: see that they hold what they should.
		if _, err := t.Config(); err != nil {
			*p = append(*p, err)
		}
	}
}

func (cs Conversations) validate(p *problems) {
	for i, id := range cs.IDs {
		if strings.TrimSpace(id) == "" {
			p.add(fmt.Sprintf("conversations.ids[%d]", i), "must not be empty")
		}
	}
	if cs.File != "" {
		p.check("conversations.file", checkReadable(cs.File))
	}
	for i, st := range cs.Discover.StageStatuses {
		switch st {
		case "assigned", "resolved", "pending":
		default:
			p.add(fmt.Sprintf("conversations.discover.stage_statuses[%d]", i), "must be assigned, resolved or pending, got %q", st)
		}
	}
	if cs.DiscoverInterval < 0 {
		p.add("conversations.discover_interval", "must not be negative, got %s", cs.DiscoverInterval)
	}
	switch cs.InboxListing {
	case InboxListingAuto, InboxListingOn, InboxListingOff:
	default:
		p.add("conversations.inbox_listing", "must be auto, on or off, got %q", cs.InboxListing)
	}
}

func (s Shard) validate(p *problems, api RateLimit) {
	p.between("shard.count", s.Count, 1, 1000)
	switch n, err := ordinal(s.Index); {
	case err != nil:
		p.check("shard.index", err)
	case s.Count >= 1 && n >= s.Count:
		p.add("shard.index", "must be below shard.count (%d), got %d (from %q)", s.Count, n, s.Index)
	}
	p.atLeast("shard.rate_limit.per_minute", s.RateLimit.PerMinute, 0)
	p.atLeast("shard.rate_limit.per_day", s.RateLimit.PerDay, 0)
	// A share of nothing would stop the shard for good.
	if s.Count > 1 && s.RateLimit.PerMinute == 0 && api.PerMinute >= 1 && api.PerMinute < s.Count {
		p.add("shard.rate_limit.per_minute", "must be set when api.rate_limit.per_minute (%d) is less than shard.count (%d)",
			api.PerMinute, s.Count)
	}
	if s.Count > 1 && s.RateLimit.PerDay == 0 && api.PerDay > 0 && api.PerDay < s.Count {
		p.add("shard.rate_limit.per_day", "must be set when api.rate_limit.per_day (%d) is less than shard.count (%d)",
			api.PerDay, s.Count)
	}
}

func (s Sync) validate(p *problems) {
	p.between("sync.concurrency", s.Concurrency, 1, 64)
	p.between("sync.detail_concurrency", s.DetailConcurrency, 1, 64)
	p.between("sync.batch_rows", s.BatchRows, 1, 1_000_000)
	p.between("sync.batch_bytes", s.BatchBytes, 1<<10, 1<<30)
	p.positive("sync.batch_interval", s.BatchInterval)
	p.between("sync.spool_max_bytes", s.SpoolMaxBytes, 1<<20, 1<<40)
	if s.RecheckWindow < 0 {
		p.add("sync.recheck_window", "must not be negative, got %s", s.RecheckWindow)
	}
	p.between("sync.poll_idle_runs", s.PollIdleRuns, 1, 1000)
	p.positive("sync.backfill_max_duration", s.BackfillMaxDuration)
	p.atLeast("sync.reserve_per_hour", s.ReservePerHour, 0)
	if s.RunEvery < 0 {
		p.add("sync.run_every", "must not be negative, got %s", s.RunEvery)
	}
	switch s.Enrich.History {
	case "", "all", "none":
	case "younger":
		p.positive("sync.enrich.max_age", s.Enrich.MaxAge)
	default:
		p.add("sync.enrich.history", "must be all, younger or none, got %q", s.Enrich.History)
	}
	p.positive("sync.poll_base_interval", s.PollBaseInterval)
	if s.PollMaxInterval < s.PollBaseInterval {
		p.add("sync.poll_max_interval", "must not be less than sync.poll_base_interval (%s), got %s", s.PollBaseInterval, s.PollMaxInterval)
	}
}

func (s Schedule) validate(p *problems) {
	loc, err := loadLocation(s.Timezone)
	if err != nil {
		p.add("schedule.timezone", "%v", err)
		return
	}
	if _, err := ParseSchedule(s.Sync, loc); err != nil {
		p.add("schedule.sync", "%v", err)
	}
	if _, err := ParseSchedule(s.Purge, loc); err != nil {
		p.add("schedule.purge", "%v", err)
	}
}

func (r Retention) validate(p *problems, c Config) {
	p.positive("retention.purge_after", r.PurgeAfter)
	p.atLeast("retention.max_per_run", r.MaxPerRun, 1)
	p.between("retention.batch_size", r.BatchSize, 1, 100)
	if !r.Enabled {
		return
	}
	// A purge deletes upstream: it cannot run without the backoffice,
	// dry run or not, so that turning dry_run off never meets a gap.
	if c.API.BackofficeURL == "" {
		p.add("api.backoffice_url", "must be set when retention.enabled is true (the purge deletes through the backoffice)")
	}
	if c.API.BackofficeToken == "" && c.API.BackofficeTokenFile == "" {
		p.add("api.backoffice_token", "must be set (or api.backoffice_token_file) when retention.enabled is true")
	}
	// Statuses still re-checked must not be deleted, and a conversation
	// purged must have nothing left on the re-check schedule.
	if r.PurgeAfter > 0 && r.PurgeAfter < c.Sync.RecheckWindow {
		p.add("retention.purge_after", "must not be less than sync.recheck_window (%s) when retention.enabled is true, got %s",
			c.Sync.RecheckWindow, r.PurgeAfter)
	}
}

func (d Daemon) validate(p *problems) {
	if d.Listen != "" {
		// A listen address may leave the host out (":9464": every interface).
		if _, port, err := net.SplitHostPort(d.Listen); err != nil {
			p.add("daemon.listen", "must be [host]:port, got %q", d.Listen)
		} else if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
			p.add("daemon.listen", "port must be a number from 1 to 65535, got %q", port)
		}
	}
	p.positive("daemon.shutdown_grace", d.ShutdownGrace)
	p.positive("daemon.ready_max_failing", d.ReadyMaxFailing)
}

func (l Log) validate(p *problems) {
	oneOf(p, "log.format", l.Format, "json", "console")
	oneOf(p, "log.level", l.Level, "debug", "info", "warn", "error")
}

// identifier is a ClickHouse name that needs no quoting.
var identifier = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func checkURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("must be an absolute http or https URL, got %q", MaskURL(s))
	}
	return nil
}

func checkHostPort(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("must be host:port, got %q", MaskURL(addr))
	}
	if host == "" {
		return fmt.Errorf("host is missing in %q", MaskURL(addr))
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return fmt.Errorf("port must be a number from 1 to 65535, got %q", port)
	}
	return nil
}

// checkReadable reports whether the file name can be opened for reading.
func checkReadable(name string) error {
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if fi.IsDir() {
		return fmt.Errorf("%s is a directory", name)
	}
	return nil
}

// problems gathers "key.path: problem" errors.
type problems []error

func (p *problems) add(key, format string, args ...any) {
	*p = append(*p, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
}

// check adds err, if any, as the problem of key.
func (p *problems) check(key string, err error) {
	if err != nil {
		*p = append(*p, fmt.Errorf("%s: %w", key, err))
	}
}

func (p *problems) err() error { return errors.Join(*p...) }

// dropRepeatedKeys drops the problems after the first n whose key one of
// the first n already has, or is within (api.base_url within api), or is
// within a mapping of the file that could not be read (unread; "" is the
// whole file): such a key was checked as its default, which says nothing.
func (p problems) dropRepeatedKeys(n int, unread ...string) problems {
	out := p[:n:n]
	for _, e := range p[n:] {
		key, repeated := problemKey(e), false
		for _, first := range p[:n] {
			k := problemKey(first)
			repeated = repeated || key == k || strings.HasPrefix(key, k+".")
		}
		for _, u := range unread {
			repeated = repeated || u == "" || key == u || strings.HasPrefix(key, u+".")
		}
		if !repeated {
			out = append(out, e)
		}
	}
	return out
}

// problemKey is the key path a problem starts with, without a list index.
func problemKey(e error) string {
	key, _, _ := strings.Cut(e.Error(), ": ")
	key, _, _ = strings.Cut(key, "[")
	return key
}

func oneOf[T ~string](p *problems, key string, v T, allowed ...T) {
	names := make([]string, len(allowed))
	for i, a := range allowed {
		if a == v {
			return
		}
		names[i] = string(a)
	}
	p.add(key, "must be one of %s; got %q", strings.Join(names, ", "), v)
}

func (p *problems) between(key string, v, low, high int) {
	if v < low || v > high {
		p.add(key, "must be from %d to %d, got %d", low, high, v)
	}
}

func (p *problems) atLeast(key string, v, low int) {
	if v < low {
		p.add(key, "must be at least %d, got %d", low, v)
	}
}

func (p *problems) positive(key string, d time.Duration) {
	if d <= 0 {
		p.add(key, "must be more than 0, got %s", d)
	}
}

func (w Webhook) validate(p *problems) {
	if w.Listen == "" {
		return
	}
	if w.Secret == "" && w.SecretFile == "" {
		p.add("webhook.secret", "must be set (or webhook.secret_file) when webhook.listen is set: unsigned events are refused")
	}
	if !strings.HasPrefix(w.Path, "/") {
		p.add("webhook.path", "must start with /, got %q", w.Path)
	}
	if w.SignatureHeader == "" {
		p.add("webhook.signature_header", "must be set")
	}
	if w.SignatureEncoding != "hex" && w.SignatureEncoding != "base64" {
		p.add("webhook.signature_encoding", "must be hex or base64, got %q", w.SignatureEncoding)
	}
	if w.MaxBody < 1024 {
		p.add("webhook.max_body", "must be at least 1024 bytes, got %d", w.MaxBody)
	}
	if w.CappedBatch < 0 {
		p.add("webhook.capped_batch", "must not be negative, got %s", w.CappedBatch)
	}
	if w.Debounce < 0 {
		p.add("webhook.debounce", "must not be negative, got %s", w.Debounce)
	}
	if w.RecheckInterval < 0 {
		p.add("webhook.recheck_interval", "must not be negative, got %s", w.RecheckInterval)
	}
	if w.MaxEventAge < 0 {
		p.add("webhook.max_event_age", "must not be negative, got %s", w.MaxEventAge)
	}
	// Stored events are what a delivery again is recognised by, and the
	// archiver acts on events up to 7 days old.
	if minRetention := max(7*24*time.Hour, w.MaxEventAge); w.Retention < minRetention {
		p.add("webhook.retention", "must be at least %s (7 days, and webhook.max_event_age), got %s", minRetention, w.Retention)
	}
	if w.ReadTimeout < time.Second || w.ReadTimeout > 10*time.Minute {
		p.add("webhook.read_timeout", "must be from 1s to 10m, got %s", w.ReadTimeout)
	}
	if w.MaxInFlight < 1 {
		p.add("webhook.max_in_flight", "must be at least 1, got %d", w.MaxInFlight)
	}
	if w.JournalMaxBytes < w.MaxBody {
		p.add("webhook.journal_max_bytes", "must be at least webhook.max_body (%d), got %d", w.MaxBody, w.JournalMaxBytes)
	}
}
