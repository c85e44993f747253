package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/schollz/progressbar/v3"
	"go.uber.org/zap"
	"golang.org/x/term"

	"github.com/cekat-archiver/cekat-archiver/config"
	"github.com/cekat-archiver/cekat-archiver/sink"
	"github.com/cekat-archiver/cekat-archiver/syncer"
	"github.com/cekat-archiver/cekat-archiver/syncer/cekat"
)

type syncCmd struct {
	Once          bool          `help:"Run once and exit (the only mode of this command; the daemon is 'run')." required:""`
	Conversation  []string      `help:"Sync only these conversation ids (repeatable), due or not." name:"conversation" placeholder:"ID"`
	All           bool          `help:"Sync every tracked conversation, including quiet ones not due yet (adaptive polling skips them)."`
	Progress      string        `help:"Progress display: auto (a bar on a terminal, log lines otherwise), bar, log or none." enum:"auto,bar,log,none" default:"auto"`
	ProgressEvery time.Duration `help:"Interval of progress log lines." default:"10s"`
}

// Run syncs once. A run stopped by SIGTERM or SIGINT (a scheduler's
// deadline) writes what it has and is not a failure: it prints its summary
// as stopped and exits 0, as one stopped before it began does; a second
// signal ends the process at once.
func (s syncCmd) Run(ctx context.Context, e *env) error {
	cfg, log, store, err := e.openArchive(ctx)
	if err != nil {
		return stoppedBeforeRun(ctx, e, err)
	}
	defer log.Sync()
	defer store.Close()
	if _, err := store.Migrate(ctx); err != nil {
		return stoppedBeforeRun(ctx, e, err)
	}
	lctx, release, err := holdLease(ctx, cfg, store, log.Named("lease"))
	if err != nil {
		return stoppedBeforeRun(ctx, e, err)
	}
	defer release()
	ctx = lctx
	requests := syncer.NewRequestStats(nil)
	archive, err := sink.OpenArchive(ctx, store, archiveOptions(cfg.Sync, nil))
	if err != nil {
		return stoppedBeforeRun(ctx, e, err)
	}
	limiter, err := newLimiter(ctx, cfg, archive, prometheus.NewRegistry())
	if err != nil {
		return stoppedBeforeRun(ctx, e, err)
	}
	client, err := newClient(cfg.API, limiter, requests.Observe, "", log.Named("cekat"))
	if err != nil {
		return err
	}
	engine := syncer.New(client, archive, engineOptions(cfg, client, limiter, requests, nil, log))

	stopProgress := s.showProgress(e, engine, log, cfg.Sync.BackfillMaxDuration, cfg.API.RateLimit.PerDay)
	sum := engine.SyncWith(ctx, syncer.SyncOptions{Only: s.Conversation, All: s.All})
	stopProgress()
	closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := archive.Close(closeCtx); err != nil && sum.Err == nil {
		sum.Err = err
	}
	printSummary(e.stdout, sum)
	logSummary(log, sum)
	if err := leaseLost(ctx); err != nil {
		return exitCodeError{code: 1, msg: "sync stopped: " + err.Error()}
	}
	if err := sum.Failure(); err != nil {
		return exitCodeError{code: 1, msg: failureMessage(cfg, err)}
	}
	return nil
}

// failureMessage names what failed: the spool's local disk, ClickHouse,
// the API's refusal of the key, or the run itself.
func failureMessage(cfg config.Config, err error) string {
	switch {
	case errors.Is(err, sink.ErrSpoolDisk):
		return fmt.Sprintf("sync failed: the local disk of the spool (sync.spool_dir %s) failed, not ClickHouse: %v",
			cfg.Sync.SpoolDir, err)
	case syncer.IsArchiveFailure(err):
		return fmt.Sprintf("sync failed: ClickHouse (%s, database %s) failed: %v", strings.Join(cfg.ClickHouse.Addr, ", "),
			cfg.ClickHouse.Database, err)
	case cekat.IsAuthRefused(err):
		return "sync failed: " + refusedKey(cfg.API, err)
	}
	return "sync failed: " + err.Error()
}

// refusedKey says which credential the API refused and how it was sent:
// the run stopped at the first refusal, since every call carries that key.
func refusedKey(cfg config.API, err error) string {
	status := "refused"
	var ce *cekat.Error
	if errors.As(err, &ce) {
		status = fmt.Sprintf("HTTP %d", ce.Status)
	}
	source := "api.key"
	if cfg.KeyFile != "" {
		source = fmt.Sprintf("api.key_file (%s)", cfg.KeyFile)
	}
	var headers string
	switch cekat.AuthMode(cfg.Auth) {
	case cekat.AuthBearer:
		headers = "the Authorization: Bearer header"
	case cekat.AuthAPIKey:
		headers = "the api_key header"
	default:
		headers = "both the Authorization: Bearer and the api_key headers"
	}
	return fmt.Sprintf("the Cekat API refused the API key (%s); the run stopped at the first refusal. Check %s, and api.auth "+
		"(%q: the key is sent in %s): %v", status, source, cfg.Auth, headers, err)
}

// stoppedBeforeRun turns err, met before the run began, into a clean stop
// when the process was told to stop meanwhile: no request was made and
// nothing was written, so there is nothing to report as failed.
func stoppedBeforeRun(ctx context.Context, e *env, err error) error {
	if ctx.Err() == nil {
		return err
	}
	fmt.Fprintf(e.stdout, "sync stopped before the run began: %s\n", display(context.Cause(ctx).Error(), maxLineRunes))
	return nil
}

// showProgress draws a bar on a terminal, or logs a line now and then.
func (s syncCmd) showProgress(e *env, engine *syncer.Engine, log *zap.Logger, backfillMax time.Duration, perDay int) (stop func()) {
	mode := s.Progress
	if mode == "auto" {
		mode = "log"
		if f, ok := e.stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			mode = "bar"
		}
	}
	if mode == "none" {
		return func() {}
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	every := s.ProgressEvery
	var bar *progressbar.ProgressBar
	if mode == "bar" {
		every = 200 * time.Millisecond
		// Rendered blank at once: the spinner's own goroutine reads the
		// start time without the bar's lock, so the first render must come
		// before that goroutine exists.
		bar = progressbar.NewOptions64(-1, progressbar.OptionSetWriter(e.stderr), progressbar.OptionSetDescription("syncing"),
			progressbar.OptionSpinnerType(14), progressbar.OptionThrottle(100*time.Millisecond), progressbar.OptionSetRenderBlankState(true))
	}
	meter := &progressMeter{backfillMax: backfillMax, perDay: perDay}
	go func() {
		defer close(finished)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			p := engine.Progress()
			st := meter.observe(snapshotOf(p), time.Now())
			if bar != nil {
				bar.Describe(st.String())
				_ = bar.Set64(st.Archived)
				continue
			}
			log.Info("sync progress", append(st.fields(),
				zap.Int64("rechecked", p.Rechecked.Load()), zap.Int64("quarantined", p.Quarantined.Load()))...)
		}
	}()
	return func() {
		close(done)
		<-finished
		if bar != nil {
			_ = bar.Finish()
			fmt.Fprintln(e.stderr)
		}
	}
}

// printSummary prints a run's summary. Its errors quote ids and answers
// from upstream: they go through display.
func printSummary(w io.Writer, s syncer.Summary) {
	result := "ok"
	if err := s.Failure(); err != nil {
		result = "FAILED: " + display(err.Error(), maxLineRunes)
	} else if s.Stopped {
		result = "stopped (wrote what it had; the next run goes on from there)"
	}
	fmt.Fprintf(w, "sync run %s: %s\n", display(s.RunID, maxIDRunes), result)
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "  conversations\t%d (synced %d, failed %d, gone %d; not due %d; unchanged %d)\n", s.Conversations, s.Synced, s.Failed,
		s.Gone, s.NotDue, s.Unchanged)
	fmt.Fprintf(tw, "  new messages\t%d archived", s.NewMessages)
	if s.Waiting > 0 {
		fmt.Fprintf(tw, " (%d of them from the list alone, their detail queued)", s.Waiting)
	}
	fmt.Fprintln(tw)
	fmt.Fprintf(tw, "  enriched\t%d (archived without detail: %d)\n", s.Enriched, s.EnrichFailed)
	if s.Backlog != nil {
		fmt.Fprintf(tw, "  waiting\t%s\n", formatBacklog(s.Backlog, s.Drained))
	}
	fmt.Fprintf(tw, "  re-checked\t%d (changed %d)\n", s.Rechecked, s.Changed)
	fmt.Fprintf(tw, "  quarantined\t%d\n", s.Quarantined)
	fmt.Fprintf(tw, "  requests\t%s\n", formatRequests(s.Requests))
	fmt.Fprintf(tw, "  duration\t%s\n", s.Finished.Sub(s.Started).Round(time.Millisecond))
	if s.LeftForLater > 0 {
		fmt.Fprintf(tw, "  left for later\t%d conversations (new messages or older history still to fetch)\n", s.LeftForLater)
	}
	if s.StoppedBy != "" {
		fmt.Fprintf(tw, "  stopped early\t%s\n", display(s.StoppedBy, maxLineRunes))
	}
	if s.EnrichPaused != "" {
		fmt.Fprintf(tw, "  enrichment paused\t%s\n", display(s.EnrichPaused, maxLineRunes))
	}
	tw.Flush()
	for _, msg := range s.Errors {
		fmt.Fprintf(w, "  error: %s\n", display(msg, maxLineRunes))
	}
}

// formatBacklog says what waits for a detail call and when it is served.
func formatBacklog(b syncer.BacklogCounts, drained time.Time) string {
	n := b["new"] + b["history"]
	out := fmt.Sprintf("%d messages to enrich (new %d, history %d), %d re-checks due", n, b["new"], b["history"], b["recheck"])
	switch {
	case n == 0:
	case drained.IsZero():
		out += "; not drained at the configured daily budget (the runs' listing takes it all)"
	default:
		out += "; drained by about " + fmtTime(drained) + " UTC at the configured budget"
	}
	return out
}

func formatRequests(m map[string]int64) string {
	var total int64
	keys := make([]string, 0, len(m))
	for k, v := range m {
		keys = append(keys, k)
		total += v
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	if len(parts) == 0 {
		return "0"
	}
	return fmt.Sprintf("%d (%s)", total, strings.Join(parts, ", "))
}

func logSummary(log *zap.Logger, s syncer.Summary) {
	fields := []zap.Field{zap.String("run_id", s.RunID), zap.Int("conversations", s.Conversations), zap.Int("synced", s.Synced),
		zap.Int("failed", s.Failed), zap.Int("gone", s.Gone), zap.Int("not_due", s.NotDue), zap.Int("unchanged", s.Unchanged),
		zap.Int("listed", s.Listed), zap.Int64("new_messages", s.NewMessages), zap.Int64("enriched", s.Enriched),
		zap.Int64("rechecked", s.Rechecked), zap.Int64("quarantined", s.Quarantined), zap.Any("requests", s.Requests),
		zap.Int("left_for_later", s.LeftForLater), zap.String("stopped_by", s.StoppedBy),
		zap.Int64("waiting", s.Waiting), zap.Any("backlog", s.Backlog), zap.String("enrichment_paused", s.EnrichPaused),
		zap.Duration("duration", s.Finished.Sub(s.Started))}
	if err := s.Failure(); err != nil {
		log.Error("sync run failed", append(fields, zap.Error(err))...)
		return
	}
	if s.Stopped {
		log.Info("sync run stopped", fields...)
		return
	}
	log.Info("sync run finished", fields...)
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04:05")
}
