package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/cekat-archiver/cekat-archiver/config"
	"github.com/cekat-archiver/cekat-archiver/sink"
	"github.com/cekat-archiver/cekat-archiver/syncer"
	"github.com/cekat-archiver/cekat-archiver/syncer/budget"
	"github.com/cekat-archiver/cekat-archiver/syncer/cekat"
	"github.com/cekat-archiver/cekat-archiver/syncer/daemon"
	"github.com/cekat-archiver/cekat-archiver/syncer/purge"
)

type purgeCmd struct {
	DryRun       bool     `help:"Only print and record what would be deleted, whatever retention.dry_run says." name:"dry-run"`
	Conversation []string `help:"Purge only these conversations (repeatable); they must still be past retention and completely archived." name:"conversation" placeholder:"ID"`
	Reason       string   `help:"Why this purge is run, recorded in the audit table."`
	Operator     string   `help:"Who runs it, recorded in the audit table (default: user@host)."`
}

// Run purges once, as the daemon does on schedule.purge. It deletes only
// with retention.enabled and retention.dry_run false; --dry-run works with
// the policy disabled, to preview it.
func (c purgeCmd) Run(ctx context.Context, e *env) error {
	cfg, log, store, err := e.openArchive(ctx)
	if err != nil {
		return err
	}
	defer log.Sync()
	defer store.Close()
	dry := c.DryRun || cfg.Retention.DryRun
	if !cfg.Retention.Enabled && !c.DryRun {
		return errors.New("retention.enabled is false: nothing is purged (set it, and retention.dry_run to false to delete; or preview with --dry-run)")
	}
	if !dry {
		if err := needBackoffice(cfg.API); err != nil {
			return err
		}
	}
	if _, err := store.Migrate(ctx); err != nil {
		return err
	}
	if !dry {
		// A purge beside a running archiver could send a delete twice.
		lctx, release, err := holdLease(ctx, cfg, store, log.Named("lease"))
		if err != nil {
			return err
		}
		defer release()
		ctx = lctx
	}
	p, _, closeArchive, err := newPurgeRig(ctx, cfg, store, prometheus.NewRegistry(), nil, log)
	if err != nil {
		return err
	}
	defer closeArchive()
	sum := p.Run(ctx, purge.RunOptions{DryRun: c.DryRun, Only: c.Conversation, Operator: operator(c.Operator), Reason: c.Reason})
	printPurgeSummary(e.stdout, sum, cfg.Retention)
	if err := sum.Failure(); err != nil {
		return exitCodeError{code: 1, msg: "purge failed: " + err.Error()}
	}
	return nil
}

type eraseCmd struct {
	Conversation []string      `help:"Erase these conversations (repeatable)." name:"conversation" placeholder:"ID"`
	Phone        []string      `help:"Erase the conversations whose archived rows name this phone number, and any other row naming it (repeatable; digits compared)." placeholder:"NUMBER"`
	Yes          bool          `help:"Erase. Without it, say what would be erased and exit non-zero."`
	Reason       string        `help:"Why (a request's reference), recorded in the audit table; put no personal data in it."`
	Operator     string        `help:"Who erases, recorded in the audit table (default: user@host)."`
	Timeout      time.Duration `help:"Time limit, including the wait for ClickHouse to apply the deletions." default:"30m"`
}

// Run erases conversations upstream and from every archive table.
func (c eraseCmd) Run(ctx context.Context, e *env) error {
	if len(c.Conversation) == 0 && len(c.Phone) == 0 {
		return errors.New("name what to erase: --conversation ID or --phone NUMBER")
	}
	cfg, log, store, err := e.openArchive(ctx)
	if err != nil {
		return err
	}
	defer log.Sync()
	defer store.Close()
	if err := needBackoffice(cfg.API); err != nil {
		return err
	}
	if _, err := store.Migrate(ctx); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	p, archive, closeArchive, err := newPurgeRig(ctx, cfg, store, prometheus.NewRegistry(), nil, log)
	if err != nil {
		return err
	}
	defer closeArchive()
	res := p.Erase(ctx, archive, purge.EraseRequest{ConversationIDs: c.Conversation, Phones: c.Phone, Yes: c.Yes,
		Operator: operator(c.Operator), Reason: c.Reason})
	printErase(e.stdout, res)
	if res.Err != nil {
		return res.Err
	}
	if !c.Yes {
		return exitCodeError{code: 1, msg: "nothing erased: add --yes to erase these conversations"}
	}
	// A conversation still named in the configuration is synced again:
	// found gone upstream, it would come back as a state row.
	if named := stillNamed(cfg.Conversations, res); len(named) > 0 {
		fmt.Fprintf(e.stdout, "note: remove from conversations.ids or conversations.file, or they come back as gone: %s\n",
			strings.Join(named, ", "))
	}
	if err := res.Failure(); err != nil {
		return exitCodeError{code: 1, msg: "erase failed: " + err.Error()}
	}
	return nil
}

// newPurgeRig builds what a purge or an erasure needs: the archive, the
// one API budget (with the purge's reserved share), the client and an
// engine for the conversations found to have new messages. engine, when
// given, is the daemon's.
func newPurgeRig(ctx context.Context, cfg config.Config, store *sink.Store, reg *prometheus.Registry, engine *syncer.Engine,
	log *zap.Logger) (*purge.Purger, *sink.Archive, func(), error) {
	archive, err := sink.OpenArchive(ctx, store, archiveOptions(cfg.Sync, nil))
	if err != nil {
		return nil, nil, nil, err
	}
	closeArchive := func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if err := archive.Close(cctx); err != nil {
			log.Warn("closing the archive", zap.Error(err))
		}
	}
	limiter, err := newSharedLimiter(ctx, cfg, archive, reg, 0)
	if err != nil {
		closeArchive()
		return nil, nil, nil, err
	}
	requests := syncer.NewRequestStats(nil)
	client, err := newClient(cfg.API, limiter, requests.Observe, "", log.Named("cekat"))
	if err != nil {
		closeArchive()
		return nil, nil, nil, err
	}
	if engine == nil {
		engine = syncer.New(client, archive, engineOptions(cfg, client, limiter, requests, nil, log))
	}
	p, err := newPurger(cfg, client, archive, engine, reg, log)
	if err != nil {
		closeArchive()
		return nil, nil, nil, err
	}
	return p, archive, closeArchive, nil
}

func newPurger(cfg config.Config, client *cekat.Client, archive *sink.Archive, engine *syncer.Engine, reg prometheus.Registerer,
	log *zap.Logger) (*purge.Purger, error) {
	return purge.New(client, archive, purge.Options{
		PurgeAfter: cfg.Retention.PurgeAfter, MaxPerRun: cfg.Retention.MaxPerRun, BatchSize: cfg.Retention.BatchSize,
		DryRun: cfg.Retention.DryRun, PageSize: cfg.API.PageSize, Syncer: engineSyncer{engine, log}, Runs: engine,
		Metrics: purge.NewMetrics(reg), Logger: log.Named("purge"), Shard: shardOf(cfg),
		CallWindow: cfg.API.Timeout + 5*time.Second,
	})
}

// purgeJob is the daemon's purge on schedule.purge. It runs alone (the
// daemon keeps it from overlapping any sync), through the daemon's engine
// and archive, on the API budget whose reserved share is the purge's.
func purgeJob(cfg config.Config, client *cekat.Client, archive *sink.Archive, engine *syncer.Engine, reg prometheus.Registerer,
	log *zap.Logger) (daemon.Job, error) {
	schedule, err := config.ParseSchedule(cfg.Schedule.Purge, cfg.Schedule.Location())
	if err != nil {
		return daemon.Job{}, fmt.Errorf("schedule.purge: %w", err)
	}
	p, err := newPurger(cfg, client, archive, engine, reg, log)
	if err != nil {
		return daemon.Job{}, err
	}
	return daemon.Job{Name: "purge", Schedule: schedule, Exclusive: true, Run: func(ctx context.Context) error {
		return p.Run(ctx, purge.RunOptions{Operator: "schedule"}).Failure()
	}}, nil
}

// daemonLimiter is the daemon's API budget: with a share reserved for the
// purge when it runs one.
func daemonLimiter(ctx context.Context, cfg config.Config, archive requestCounter, reg prometheus.Registerer) (*budget.Limiter, error) {
	if cfg.Retention.Enabled {
		return newSharedLimiter(ctx, cfg, archive, reg, 0)
	}
	return newLimiter(ctx, cfg, archive, reg)
}

// engineSyncer syncs the conversations the purge found with new messages.
type engineSyncer struct {
	engine *syncer.Engine
	log    *zap.Logger
}

func (s engineSyncer) SyncConversations(ctx context.Context, ids []string) error {
	sum := s.engine.Sync(ctx, ids)
	logSummary(s.log, sum)
	return sum.Failure()
}

func needBackoffice(api config.API) error {
	if api.BackofficeURL == "" || api.BackofficeToken == "" {
		return errors.New("api.backoffice_url and api.backoffice_token (or api.backoffice_token_file) must be set: deletes go through the backoffice")
	}
	return nil
}

// operator is who runs a command, for the audit: the flag, else user@host.
func operator(flag string) string {
	if flag != "" {
		return flag
	}
	name := os.Getenv("USER")
	if u, err := user.Current(); err == nil && u.Username != "" {
		name = u.Username
	}
	if name == "" {
		name = "unknown"
	}
	if host, err := os.Hostname(); err == nil && host != "" {
		name += "@" + host
	}
	return name
}

// printPurgeSummary prints a purge run and each decision. Ids and reasons
// quote upstream: they go through display.
func printPurgeSummary(w io.Writer, s purge.Summary, policy config.Retention) {
	result := "ok"
	switch err := s.Failure(); {
	case err != nil:
		result = "FAILED: " + display(err.Error(), maxLineRunes)
	case s.Stopped:
		result = "stopped (what was decided is recorded; the next run goes on)"
	}
	mode := ""
	if s.DryRun {
		mode = " (dry run: nothing deleted)"
	}
	fmt.Fprintf(w, "purge run %s%s: %s\n", display(s.RunID, maxIDRunes), mode, result)
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "  past retention\t%d (newest message before %s; retention.purge_after %s)\n", s.PastCutoff, fmtTime(s.Cutoff), policy.PurgeAfter)
	if s.DryRun {
		fmt.Fprintf(tw, "  would delete\t%d\n", s.WouldDelete)
	} else {
		fmt.Fprintf(tw, "  deleted\t%d (already gone upstream: %d; failed: %d)\n", s.Deleted, s.Gone, s.Failed)
	}
	fmt.Fprintf(tw, "  skipped\t%d%s\n", s.Skipped, formatCounts(s.SkippedBy))
	if s.Resolved > 0 {
		fmt.Fprintf(tw, "  confirmed\t%d deletes of interrupted runs\n", s.Resolved)
	}
	if s.Synced > 0 {
		fmt.Fprintf(tw, "  synced instead\t%d (new messages upstream)\n", s.Synced)
	}
	if s.LeftForLater > 0 {
		fmt.Fprintf(tw, "  left for later\t%d (retention.max_per_run %d, the API budget or a stop)\n", s.LeftForLater, policy.MaxPerRun)
	}
	if s.StoppedBy != "" {
		fmt.Fprintf(tw, "  stopped early\t%s\n", display(s.StoppedBy, maxLineRunes))
	}
	fmt.Fprintf(tw, "  duration\t%s\n", s.Finished.Sub(s.Started).Round(time.Millisecond))
	tw.Flush()
	if len(s.Decisions) == 0 {
		return
	}
	tw = tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CONVERSATION\tDECISION\tMESSAGES\tNEWEST\tREASON")
	for _, d := range s.Decisions {
		event := strings.ReplaceAll(d.Event, "_", " ")
		if d.Resolved {
			event += " (run " + display(d.RunID, maxIDRunes) + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", display(d.ConversationID, maxIDRunes), event, d.Archived, fmtTime(d.NewestSentAt),
			display(d.Reason, maxLineRunes))
	}
	tw.Flush()
}

func formatCounts(m map[string]int) string {
	if len(m) == 0 {
		return ""
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

// printErase prints what an erasure did, or would do. It never prints the
// phone numbers asked for.
func printErase(w io.Writer, res purge.EraseResult) {
	if res.Done {
		fmt.Fprintf(w, "erase run %s:\n", display(res.RunID, maxIDRunes))
	} else {
		fmt.Fprintln(w, "erase preview (nothing erased, nothing called):")
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CONVERSATION\tFOUND BY\tARCHIVE ROWS\tUPSTREAM\tRESULT")
	for _, c := range res.Conversations {
		by := "id"
		if c.ByPhone {
			by = "phone"
		}
		var rows []string
		tables := make([]string, 0, len(c.Rows))
		for t := range c.Rows {
			tables = append(tables, t)
		}
		slices.Sort(tables)
		for _, t := range tables {
			rows = append(rows, fmt.Sprintf("%s %d", t, c.Rows[t]))
		}
		if len(rows) == 0 {
			rows = []string{"none"}
		}
		upstream, result := "-", "would erase"
		if len(c.Rows) == 0 {
			result = "no archive row (a typo?); would delete it upstream if there"
		}
		if res.Done {
			upstream = c.Upstream
			switch {
			case c.Erased:
				result = "erased, verified: no row left"
			case c.Err != nil:
				result = "FAILED: " + display(c.Err.Error(), maxLineRunes)
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", display(c.ConversationID, maxIDRunes), by, strings.Join(rows, ", "), upstream, result)
	}
	tw.Flush()
	if len(res.Unlinked) > 0 {
		fmt.Fprintf(w, "rows naming the phone number and no conversation (webhook events never resolved): %s\n", countsByTable(res.Unlinked))
	}
	if res.Done && res.ByPhone && res.Err == nil {
		if len(res.PhoneRowsLeft) == 0 {
			fmt.Fprintln(w, "verified: no row in any table names the phone number")
		} else {
			fmt.Fprintf(w, "FAILED: rows still name the phone number: %s\n", countsByTable(res.PhoneRowsLeft))
		}
	}
}

// countsByTable writes row counts by table, e.g. "messages 3, quarantine 1".
func countsByTable(m map[string]uint64) string {
	tables := make([]string, 0, len(m))
	for t := range m {
		tables = append(tables, t)
	}
	slices.Sort(tables)
	parts := make([]string, len(tables))
	for i, t := range tables {
		parts[i] = fmt.Sprintf("%s %d", t, m[t])
	}
	return strings.Join(parts, ", ")
}

// stillNamed lists the erased conversations that conversations.ids or
// conversations.file still name.
func stillNamed(cfg config.Conversations, res purge.EraseResult) []string {
	named := map[string]bool{}
	for _, id := range cfg.IDs {
		named[id] = true
	}
	if cfg.File != "" {
		if f, err := os.Open(cfg.File); err == nil {
			sc := bufio.NewScanner(f)
			for sc.Scan() {
				named[strings.TrimSpace(sc.Text())] = true
			}
			f.Close()
		}
	}
	var out []string
	for _, c := range res.Conversations {
		if c.Erased && named[c.ConversationID] {
			out = append(out, display(c.ConversationID, maxIDRunes))
		}
	}
	return out
}
