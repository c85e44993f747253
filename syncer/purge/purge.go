// Package purge is the retention purge and erasure: it deletes
// conversations upstream through the backoffice once they are past
// retention and completely archived, and erases a conversation from
// upstream and from every archive table on request. Every decision is
// written to the archive's audit table (purge_audit), so what was removed,
// when, why and by whom can be proved from the archive alone.
//
// # Archive before delete
//
// A conversation past retention (its newest archived message older than
// PurgeAfter) is deleted only if its archive is complete: history fetched
// back to the first message, no gaps, no message left unenriched for a
// reason that may pass. Right before its delete call its newest page is
// fetched again (through the shared API budget, at PriorityPurge): if
// upstream lists a message the archive lacks, the conversation is synced
// instead, and being active again it is no longer old. The time between
// that check and the delete call is at most one batch (BatchSize checks).
//
// # Intent and outcome
//
// The audit gets an intent row before a delete call and the outcome after
// it. A crash or a stop between the two leaves an intent without outcome:
// the next run asks the API about it (the conversation's messages answer
// 404 once it is deleted) and writes the outcome then, under the intent's
// run id, before planning anything new. The purged marker in the sync state
// is written before the outcome, so a purged conversation always has its
// audit trail, and one never stays polled after it is gone.
package purge

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/cekat-archiver/cekat-archiver/sink"
	"github.com/cekat-archiver/cekat-archiver/syncer/budget"
	"github.com/cekat-archiver/cekat-archiver/syncer/cekat"
	"github.com/cekat-archiver/cekat-archiver/syncer/shard"
)

// API is what the purge needs of the Cekat API.
type API interface {
	ListMessages(ctx context.Context, conversationID string, limit int, before string) (*cekat.Page, error)
	DeleteConversations(ctx context.Context, ids []string) (cekat.DeleteResult, error)
}

// Archive is what the purge needs of the archive.
type Archive interface {
	LoadStates(ctx context.Context) (map[string]sink.State, error)
	// ConversationSummaries returns what the archive holds of the
	// conversations in only, or of those whose newest message was sent
	// before newestBefore; oldest first.
	ConversationSummaries(ctx context.Context, only []string, newestBefore time.Time) ([]sink.ConversationSummary, error)
	// Archived returns, of ids, those archived.
	Archived(ctx context.Context, conversationID string, ids []string) (map[string]sink.ArchivedMessage, error)
	AddState(ctx context.Context, st sink.State) error
	Flush(ctx context.Context) error
	// AddAudit stores audit rows before it returns.
	AddAudit(ctx context.Context, rows ...sink.AuditRow) error
	UnresolvedIntents(ctx context.Context, action string) ([]sink.AuditRow, error)
}

// Recorder runs fn as a run of kind whose API requests are recorded as
// they are made.
type Recorder interface {
	Counted(ctx context.Context, kind string, fn func(context.Context) error) error
}

// counted runs fn as a recorded run of kind, when there is a Recorder.
func (p *Purger) counted(ctx context.Context, kind string, fn func(context.Context) error) error {
	if p.opts.Runs == nil {
		return fn(ctx)
	}
	return p.opts.Runs.Counted(ctx, kind, fn)
}

// Syncer syncs conversations found to have messages the archive lacks.
type Syncer interface {
	SyncConversations(ctx context.Context, ids []string) error
}

// Options configure a Purger. Zero values take the defaults noted.
type Options struct {
	// PurgeAfter is the age of a conversation's newest message after which
	// it is deleted upstream. Required.
	PurgeAfter time.Duration
	MaxPerRun  int  // conversations deleted per run at most (100)
	BatchSize  int  // ids per delete call, 1 to 100 (20)
	DryRun     bool // print and record what would be deleted; delete nothing
	PageSize   int  // of the newest page fetched again before a delete (100)
	// Shard limits the purge to the conversations of this archiver's shard,
	// the one that syncs them (the zero value: all). Erasure is not
	// limited: it is an operator's request about a customer, run once.
	Shard shard.Shard
	// Syncer syncs the conversations that turn out to have new messages;
	// nil leaves them for the next sync.
	Syncer Syncer
	// Runs, when set, records each purge and erasure, with its API
	// requests, in sync_runs (see syncer.Engine.Counted): the daily budget
	// counts them.
	Runs Recorder
	// Metrics receive the counts; nil keeps them unregistered.
	Metrics *Metrics
	Logger  *zap.Logger
	Now     func() time.Time
	// WriteTimeout bounds the archive writes that follow a stop (30s).
	WriteTimeout time.Duration
	// CallWindow is how long a delete call may still be applied upstream
	// after the run that sent it was killed (the client's request
	// timeout): a conversation of such a call found still upstream sooner
	// is looked at again once the window has passed, so that a late
	// deletion is confirmed as the call's, not taken for someone else's.
	CallWindow time.Duration
}

// Purger runs purges and erasures. Runs are not meant to overlap (the
// daemon runs the purge alone); nothing here prevents it.
type Purger struct {
	api     API
	archive Archive
	opts    Options
	log     *zap.Logger
}

// New checks the options and returns a Purger.
func New(api API, archive Archive, opts Options) (*Purger, error) {
	if opts.PurgeAfter <= 0 {
		return nil, fmt.Errorf("purge: PurgeAfter must be more than 0, got %s", opts.PurgeAfter)
	}
	if opts.MaxPerRun <= 0 {
		opts.MaxPerRun = 100
	}
	switch {
	case opts.BatchSize <= 0:
		opts.BatchSize = 20
	case opts.BatchSize > 100:
		return nil, fmt.Errorf("purge: BatchSize must be at most 100, got %d", opts.BatchSize)
	}
	if opts.PageSize <= 0 || opts.PageSize > 100 {
		opts.PageSize = 100
	}
	if opts.Metrics == nil {
		opts.Metrics = NewMetrics(prometheus.NewRegistry())
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = 30 * time.Second
	}
	return &Purger{api: api, archive: archive, opts: opts, log: opts.Logger}, nil
}

// RunOptions choose what one run covers and who runs it.
type RunOptions struct {
	// DryRun makes this run a dry run whatever Options.DryRun says.
	DryRun bool
	// Only limits the run to these conversations (they must still be past
	// retention and completely archived); decisions about them are all
	// recorded, even "too recent".
	Only []string
	// Operator and Reason are recorded in every audit row of the run.
	Operator string
	Reason   string
}

// Decision is what a run decided about one conversation.
type Decision struct {
	ConversationID string
	Event          string // sink.EventDeleted, EventGone, EventFailed, EventSkipped, EventWouldDelete
	Skip           string // for EventSkipped: one of the Skip* reasons
	Archived       uint64
	NewestSentAt   time.Time
	Reason         string
	APIAnswer      string
	// Resolved marks the outcome of an earlier run's intent, confirmed by
	// this run; RunID is then that run's.
	Resolved bool
	RunID    string
}

// Summary is the outcome of one run.
type Summary struct {
	RunID    string
	DryRun   bool
	Started  time.Time
	Finished time.Time
	// Cutoff: conversations whose newest message is older are past retention.
	Cutoff      time.Time
	PastCutoff  int // conversations past retention (or named) considered
	Deleted     int
	Gone        int // found already absent upstream
	WouldDelete int // dry run
	Failed      int
	Skipped     int
	SkippedBy   map[string]int // by Skip* reason
	Resolved    int            // intents of interrupted runs confirmed
	// LeftForLater counts conversations ready to be deleted that this run
	// did not reach: over MaxPerRun, the budget spent, a stop.
	LeftForLater int
	Synced       int // conversations synced instead of deleted
	Decisions    []Decision
	// StoppedBy says why the run stopped before doing all it could (a spent
	// budget, a stop signal); not a failure.
	StoppedBy string
	Stopped   bool // told to stop
	// Err is why the run failed as a whole: the archive, or a refused
	// credential.
	Err error
}

// Failure reports whether anything in the run went wrong.
func (s Summary) Failure() error {
	switch {
	case s.Err != nil:
		return s.Err
	case s.Failed > 0:
		return fmt.Errorf("%d conversations could not be deleted", s.Failed)
	}
	return nil
}

// errArchive marks failures of the archive: nothing can be recorded, so
// the run stops before it calls anything else.
type errArchive struct{ err error }

func (e errArchive) Error() string { return "archive: " + e.err.Error() }
func (e errArchive) Unwrap() error { return e.err }

// errRefused stops a run whose credential the API refused (401, 403).
type errRefused struct{ err error }

func (e errRefused) Error() string { return e.err.Error() }
func (e errRefused) Unwrap() error { return e.err }

// run is the state of one run.
type run struct {
	id      string
	dry     bool
	now     time.Time
	ro      RunOptions
	log     *zap.Logger
	sum     *Summary
	states  map[string]sink.State
	sent    map[string]bool // ids a delete call was made for: never twice in a run
	resync  []string
	pending map[string]bool // intents left unconfirmed
}

func newRunID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Run runs one purge. It returns a summary even when the run stopped early;
// Summary.Failure says whether anything went wrong.
func (p *Purger) Run(ctx context.Context, ro RunOptions) Summary {
	now := p.opts.Now().UTC()
	r := &run{id: newRunID(), dry: p.opts.DryRun || ro.DryRun, now: now, ro: ro, sent: map[string]bool{}, pending: map[string]bool{}}
	r.log = p.log.With(zap.String("purge_run_id", r.id), zap.Bool("dry_run", r.dry))
	sum := Summary{RunID: r.id, DryRun: r.dry, Started: now, Cutoff: now.Add(-p.opts.PurgeAfter), SkippedBy: map[string]int{}}
	r.sum = &sum
	r.log.Info("purge started", zap.Time("cutoff", sum.Cutoff), zap.Int("named", len(ro.Only)))

	err := p.counted(ctx, sink.RunPurge, func(ctx context.Context) error { return p.run(ctx, r) })
	if ctx.Err() != nil && (err == nil || !errors.As(err, new(errArchive))) {
		sum.Stopped, sum.StoppedBy, err = true, "stopped: "+context.Cause(ctx).Error(), nil
	}
	switch {
	case err != nil && isBudget(err):
		sum.StoppedBy, err = err.Error(), nil
	case errors.Is(err, errStopBatches):
		err = nil // StoppedBy says why; the failed conversations count
	}
	sum.Err = err
	sum.Finished = p.opts.Now().UTC()
	p.opts.Metrics.observe(sum)

	fields := []zap.Field{zap.Int("deleted", sum.Deleted), zap.Int("gone", sum.Gone), zap.Int("would_delete", sum.WouldDelete),
		zap.Int("failed", sum.Failed), zap.Int("skipped", sum.Skipped), zap.Any("skipped_by", sum.SkippedBy),
		zap.Int("resolved", sum.Resolved), zap.Int("left_for_later", sum.LeftForLater), zap.Int("synced_instead", sum.Synced),
		zap.String("stopped_by", sum.StoppedBy), zap.Duration("duration", sum.Finished.Sub(sum.Started))}
	if f := sum.Failure(); f != nil {
		r.log.Error("purge failed", append(fields, zap.Error(f))...)
	} else {
		r.log.Info("purge finished", fields...)
	}
	return sum
}

func (p *Purger) run(ctx context.Context, r *run) error {
	pctx := budget.WithPriority(ctx, budget.PriorityPurge)
	// Syncs write through a buffer: what they wrote must be visible to
	// Archived before anything is decided.
	if err := p.archive.Flush(ctx); err != nil {
		return errArchive{fmt.Errorf("flush before the purge: %w", err)}
	}
	states, err := p.archive.LoadStates(ctx)
	if err != nil {
		return errArchive{fmt.Errorf("load sync state: %w", err)}
	}
	r.states = states
	if err := p.resolve(ctx, pctx, r); err != nil {
		return err
	}
	ready, err := p.plan(ctx, r)
	if err != nil {
		return err
	}
	if r.dry {
		rows := make([]sink.AuditRow, 0, len(ready))
		for _, c := range ready {
			d := Decision{ConversationID: c.ConversationID, Event: sink.EventWouldDelete, Archived: c.Archived,
				NewestSentAt: c.NewestSentAt, Reason: p.qualifies(r, c)}
			r.decide(d)
			rows = append(rows, p.auditRow(r, d))
		}
		return p.audit(ctx, rows...)
	}
	for i := 0; i < len(ready); i += p.opts.BatchSize {
		batch := ready[i:min(i+p.opts.BatchSize, len(ready))]
		if err := p.batch(ctx, pctx, r, batch); err != nil {
			r.sum.LeftForLater += len(ready) - i - len(batch)
			return err
		}
		if ctx.Err() != nil {
			r.sum.LeftForLater += len(ready) - i - len(batch)
			return ctx.Err()
		}
	}
	if len(r.resync) > 0 && p.opts.Syncer != nil {
		// Found active again: archived now, not deleted.
		r.sum.Synced = len(r.resync)
		if err := p.opts.Syncer.SyncConversations(ctx, r.resync); err != nil {
			r.log.Warn("syncing the conversations found with new messages failed; the next sync goes on", zap.Error(err))
		}
	}
	return nil
}

// resolve confirms the intents that earlier runs left without an outcome.
// A dry run only notes them: it writes nothing to the state.
func (p *Purger) resolve(ctx, pctx context.Context, r *run) error {
	intents, err := p.archive.UnresolvedIntents(ctx, sink.AuditPurge)
	if err != nil {
		return errArchive{fmt.Errorf("read unconfirmed intents: %w", err)}
	}
	byConv := map[string][]sink.AuditRow{}
	var order []string
	for _, in := range intents {
		if !p.opts.Shard.Owns(in.ConversationID) {
			continue // another shard's to confirm
		}
		if byConv[in.ConversationID] == nil {
			order = append(order, in.ConversationID)
		}
		byConv[in.ConversationID] = append(byConv[in.ConversationID], in)
	}
	for _, conv := range order {
		if r.dry {
			r.pending[conv] = true
			continue
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		_, err := p.api.ListMessages(pctx, conv, 1, "")
		if err == nil {
			var sent time.Time
			for _, in := range byConv[conv] {
				if in.At.After(sent) {
					sent = in.At
				}
			}
			if wait := sent.Add(p.opts.CallWindow).Sub(p.opts.Now()); wait > 0 {
				r.log.Info("an interrupted delete call may still be applied; looking again when it cannot",
					zap.String("conversation_id", conv), zap.Duration("wait", wait))
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(wait):
				}
				_, err = p.api.ListMessages(pctx, conv, 1, "")
			}
		}
		var (
			event  string
			reason string
		)
		switch {
		case cekat.IsNotFound(err):
			event = sink.EventDeleted
			reason = "confirmed after an interrupted run: the conversation's messages answer 404 upstream"
		case err == nil:
			event = sink.EventFailed
			reason = "interrupted before the delete call was answered; the conversation is still upstream, so it is planned again"
		case isBudget(err) || ctx.Err() != nil:
			return err
		case refused(err):
			return errRefused{fmt.Errorf("the messages API refused the API key while confirming earlier deletes: %w", err)}
		default:
			r.pending[conv] = true
			r.log.Warn("could not confirm an earlier delete; asked again next run", zap.String("conversation_id", conv), zap.Error(err))
			continue
		}
		if event == sink.EventDeleted {
			if err := p.markPurged(ctx, r, conv); err != nil {
				return err
			}
			if err := p.flush(ctx); err != nil {
				return err
			}
		}
		rows := make([]sink.AuditRow, 0, len(byConv[conv]))
		for _, in := range byConv[conv] {
			d := Decision{ConversationID: conv, Event: event, Archived: in.ArchivedMessages, NewestSentAt: in.NewestSentAt,
				Reason: reason + " (intent of run " + in.RunID + ")", Resolved: true, RunID: in.RunID}
			row := p.auditRow(r, d)
			row.RunID, row.Operator, row.OperatorReason = in.RunID, in.Operator, in.OperatorReason
			rows = append(rows, row)
		}
		if err := p.audit(ctx, rows...); err != nil {
			return err
		}
		r.sum.Resolved++
		d := Decision{ConversationID: conv, Event: event, Archived: byConv[conv][0].ArchivedMessages,
			NewestSentAt: byConv[conv][0].NewestSentAt, Reason: reason, Resolved: true, RunID: byConv[conv][0].RunID}
		if event == sink.EventDeleted {
			r.sum.Deleted++
		}
		r.sum.Decisions = append(r.sum.Decisions, d)
		r.log.Info("earlier delete confirmed", zap.String("conversation_id", conv), zap.String("outcome", event))
	}
	return nil
}

// plan decides from the archive alone which conversations are ready to be
// deleted, oldest first and at most MaxPerRun, and records why the others
// past retention are not.
func (p *Purger) plan(ctx context.Context, r *run) ([]sink.ConversationSummary, error) {
	only := dedupe(r.ro.Only)
	sums, err := p.archive.ConversationSummaries(ctx, only, r.sum.Cutoff)
	if err != nil {
		return nil, errArchive{fmt.Errorf("read what the archive holds: %w", err)}
	}
	var skips []sink.AuditRow
	skip := func(c sink.ConversationSummary, why, text string) {
		d := Decision{ConversationID: c.ConversationID, Event: sink.EventSkipped, Skip: why, Archived: c.Archived,
			NewestSentAt: c.NewestSentAt, Reason: why + ": " + text}
		r.decide(d)
		skips = append(skips, p.auditRow(r, d))
	}
	found := map[string]bool{}
	var ready []sink.ConversationSummary
	for _, c := range sums {
		found[c.ConversationID] = true
		if !p.opts.Shard.Owns(c.ConversationID) {
			continue // another shard's to decide, with its own budget
		}
		st, ok := r.states[c.ConversationID]
		switch {
		case ok && !st.PurgedAt.IsZero():
			// Done before: nothing to decide.
			continue
		case !c.NewestSentAt.Before(r.sum.Cutoff):
			skip(c, SkipTooRecent, fmt.Sprintf("its newest message (%s) is not older than retention.purge_after (%s)",
				c.NewestSentAt.Format(time.RFC3339), p.opts.PurgeAfter))
			continue
		}
		r.sum.PastCutoff++
		switch {
		case !ok:
			skip(c, SkipNoState, "messages are archived but there is no sync state: completeness unknown")
		case !st.BackfillComplete:
			skip(c, SkipBackfill, "its history is not archived back to the first message yet")
		case len(st.Gaps) > 0:
			skip(c, SkipGaps, fmt.Sprintf("%d stretches of its history are still to be fetched", len(st.Gaps)))
		case c.TransientUnenriched > 0:
			skip(c, SkipUnenriched, fmt.Sprintf("%d messages lack their detail for a reason that may pass", c.TransientUnenriched))
		case r.pending[c.ConversationID]:
			skip(c, SkipUnconfirmed, "an earlier delete of it is not confirmed yet")
		case len(ready) >= p.opts.MaxPerRun:
			r.sum.LeftForLater++
		default:
			ready = append(ready, c)
		}
	}
	var others []string
	for _, id := range only {
		switch {
		case !p.opts.Shard.Owns(id):
			others = append(others, id)
		case !found[id]:
			skip(sink.ConversationSummary{ConversationID: id}, SkipNotArchived, "no message of it is archived")
		}
	}
	if len(others) > 0 {
		r.log.Info("conversations named belong to other shards; their shards decide about them", zap.Strings("conversations", others))
	}
	return ready, p.audit(ctx, skips...)
}

// qualifies says why a conversation is ready to be deleted.
func (p *Purger) qualifies(r *run, c sink.ConversationSummary) string {
	age := r.now.Sub(c.NewestSentAt).Truncate(time.Hour)
	return fmt.Sprintf("newest message %s (%s ago) is older than retention.purge_after %s; archive complete: %d messages, "+
		"history back to the first message, no gaps, every message enriched", c.NewestSentAt.Format(time.RFC3339), age,
		p.opts.PurgeAfter, c.Archived)
}

// batch checks a batch of conversations against upstream and deletes those
// whose archive holds everything upstream lists.
func (p *Purger) batch(ctx, pctx context.Context, r *run, batch []sink.ConversationSummary) error {
	var ok []sink.ConversationSummary
	for i, c := range batch {
		if ctx.Err() != nil {
			r.sum.LeftForLater += len(batch) - i
			return ctx.Err()
		}
		missing, err := p.precheck(ctx, pctx, c.ConversationID)
		switch {
		case cekat.IsNotFound(err):
			if err := p.gone(ctx, r, c, "already absent upstream (its messages answer 404); no delete sent"); err != nil {
				return err
			}
		case err != nil && (isBudget(err) || ctx.Err() != nil):
			r.sum.LeftForLater += len(batch) - i
			return err
		case err != nil && errors.As(err, new(errArchive)):
			return err
		case refused(err):
			return errRefused{fmt.Errorf("the messages API refused the API key (check api.key and api.auth); purge stopped: %w", err)}
		case err != nil:
			d := p.skipDecision(c, SkipPrecheckFailed, "fetching its newest page again failed: "+err.Error())
			d.APIAnswer = err.Error()
			if err := p.record(ctx, r, d); err != nil {
				return err
			}
		case missing > 0:
			d := p.skipDecision(c, SkipNewMessages, fmt.Sprintf("upstream lists %d messages the archive lacks; synced instead", missing))
			if err := p.record(ctx, r, d); err != nil {
				return err
			}
			r.resync = append(r.resync, c.ConversationID)
		case r.sent[c.ConversationID]:
			// Cannot happen: each conversation is planned once a run.
		default:
			ok = append(ok, c)
		}
	}
	if len(ok) == 0 {
		return nil
	}
	intents := make([]sink.AuditRow, len(ok))
	ids := make([]string, len(ok))
	for i, c := range ok {
		ids[i] = c.ConversationID
		intents[i] = p.auditRow(r, Decision{ConversationID: c.ConversationID, Event: sink.EventIntent, Archived: c.Archived,
			NewestSentAt: c.NewestSentAt, Reason: p.qualifies(r, c)})
		r.sent[c.ConversationID] = true
	}
	// The intent is stored before the call, or the call is not made.
	if err := p.audit(ctx, intents...); err != nil {
		return err
	}
	res, err := p.api.DeleteConversations(pctx, ids)
	if cekat.IsNotFound(err) {
		// Unknown or already deleted ids are not errors: a server that
		// answers 404 for them gets each id checked below, like one whose
		// answer does not list them.
		res, err = cekat.DeleteResult{}, nil
	}
	if err != nil {
		return p.deleteFailed(ctx, pctx, r, ok, err)
	}
	listed := map[string]bool{}
	for _, id := range res.ConversationIDs {
		listed[id] = true
	}
	if len(res.ConversationIDs) == 0 && res.Deleted == len(ids) {
		// An answer with a count and no ids: the count says all went.
		for _, id := range ids {
			listed[id] = true
		}
	}
	var deleted []sink.ConversationSummary
	var later []Decision
	for _, c := range ok {
		if listed[c.ConversationID] {
			deleted = append(deleted, c)
			continue
		}
		// Not in the answer: deleted meanwhile by someone else (not an
		// error), or not deleted (tried again on a later run).
		_, cerr := p.api.ListMessages(pctx, c.ConversationID, 1, "")
		d := Decision{ConversationID: c.ConversationID, Archived: c.Archived, NewestSentAt: c.NewestSentAt,
			APIAnswer: fmt.Sprintf("deleted %d of %d asked; this id not listed", res.Deleted, len(ids))}
		switch {
		case cekat.IsNotFound(cerr):
			d.Event, d.Reason = sink.EventGone, "not listed in the delete answer, and absent upstream (404)"
		case cerr == nil:
			d.Event, d.Reason = sink.EventFailed, "not deleted: the delete answer did not list it and it is still upstream; tried again on a later run"
		default:
			d.Event, d.Reason = sink.EventFailed, "the delete answer did not list it, and checking upstream failed ("+cerr.Error()+"); confirmed on a later run"
		}
		later = append(later, d)
	}
	// The purged marker first: an outcome is never stored for a
	// conversation still polled, and a crash before the outcome leaves an
	// intent the next run confirms.
	for _, c := range deleted {
		if err := p.markPurged(ctx, r, c.ConversationID); err != nil {
			return err
		}
	}
	for _, d := range later {
		if d.Event == sink.EventGone {
			if err := p.markPurged(ctx, r, d.ConversationID); err != nil {
				return err
			}
		}
	}
	if err := p.flush(ctx); err != nil {
		return err
	}
	rows := make([]sink.AuditRow, 0, len(ok))
	for _, c := range deleted {
		d := Decision{ConversationID: c.ConversationID, Event: sink.EventDeleted, Archived: c.Archived, NewestSentAt: c.NewestSentAt,
			Reason: "deleted upstream by the backoffice delete; the archive keeps its " + fmt.Sprint(c.Archived) + " messages"}
		r.decide(d)
		rows = append(rows, p.auditRow(r, d))
	}
	for _, d := range later {
		r.decide(d)
		rows = append(rows, p.auditRow(r, d))
	}
	return p.audit(ctx, rows...)
}

// deleteFailed records the outcome of a delete call that failed. A call
// that may have reached the server (its answer cut, dropped or late) is
// never sent again: each of its conversations is looked at upstream, and
// one found absent was deleted by this run. A call cut by a stop, or whose
// conversations cannot be looked at, leaves its intents for the next run to
// confirm.
func (p *Purger) deleteFailed(ctx, pctx context.Context, r *run, ok []sink.ConversationSummary, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	var rows []sink.AuditRow
	var deleted []sink.ConversationSummary
	for _, c := range ok {
		d := Decision{ConversationID: c.ConversationID, Archived: c.Archived, NewestSentAt: c.NewestSentAt, APIAnswer: err.Error()}
		switch {
		case !isBudget(err) && !refused(err):
			// The call may have been applied with its answer lost (cut,
			// dropped, timed out): what it did is looked at upstream now.
			_, cerr := p.api.ListMessages(pctx, c.ConversationID, 1, "")
			switch {
			case cekat.IsNotFound(cerr):
				deleted = append(deleted, c)
				continue
			case cerr != nil:
				// The intent stays without outcome: the next run confirms it.
				r.pending[c.ConversationID] = true
				r.sum.LeftForLater++
				r.log.Warn("the delete call's answer was lost and checking upstream failed; confirmed by the next run",
					zap.String("conversation_id", c.ConversationID), zap.Error(cerr))
				continue
			}
			d.Event, d.Reason = sink.EventFailed, "the delete call failed and the conversation is still upstream: not deleted; planned again on a later run"
		case isBudget(err):
			d.Event, d.Skip = sink.EventSkipped, SkipBudget
			d.Reason = SkipBudget + ": not sent: the API budget is spent or the server throttles for long; left for a later run"
		case refused(err):
			d.Event, d.Reason = sink.EventFailed, "the backoffice refused the token: not deleted"
		}
		r.decide(d)
		rows = append(rows, p.auditRow(r, d))
	}
	// Absent after this run's own call: deleted by it, whatever the lost
	// answer would have said. Marked purged before the outcome is stored.
	for _, c := range deleted {
		if err := p.markPurged(ctx, r, c.ConversationID); err != nil {
			return err
		}
	}
	if len(deleted) > 0 {
		if err := p.flush(ctx); err != nil {
			return err
		}
	}
	for _, c := range deleted {
		d := Decision{ConversationID: c.ConversationID, Event: sink.EventDeleted, Archived: c.Archived, NewestSentAt: c.NewestSentAt,
			APIAnswer: err.Error(), Reason: "deleted upstream by this run's backoffice delete, whose answer was lost: absent upstream (404) right after it; the archive keeps its " +
				fmt.Sprint(c.Archived) + " messages"}
		r.decide(d)
		rows = append(rows, p.auditRow(r, d))
	}
	if aerr := p.audit(ctx, rows...); aerr != nil {
		return aerr
	}
	if len(deleted) == len(ok) {
		// Every one deleted: the backoffice works, only an answer was lost.
		return nil
	}
	switch {
	case isBudget(err):
		return err
	case refused(err):
		return errRefused{fmt.Errorf("the backoffice refused the token (check api.backoffice_token and api.backoffice_auth); purge stopped: %w", err)}
	}
	// The backoffice is failing: the rest waits for a later run.
	r.sum.StoppedBy = "the backoffice delete failed: " + err.Error()
	return errStopBatches
}

// errStopBatches ends a run whose delete endpoint is failing without making
// it fail twice: the failed conversations already count.
var errStopBatches = errors.New("the backoffice delete is failing; the rest is left for a later run")

// precheck fetches a conversation's newest page again and returns how many
// of its messages the archive lacks.
func (p *Purger) precheck(ctx, pctx context.Context, conv string) (int, error) {
	page, err := p.api.ListMessages(pctx, conv, p.opts.PageSize, "")
	if err != nil {
		return 0, err
	}
	var ids []string
	for _, m := range page.Messages {
		// Items of other conversations are the list's mistake, not this
		// conversation's messages (the sync quarantines them).
		if m.ConversationID == "" || m.ConversationID == conv {
			ids = append(ids, m.ID)
		}
	}
	if len(ids) == 0 {
		return 0, nil
	}
	have, err := p.archive.Archived(ctx, conv, ids)
	if err != nil {
		return 0, errArchive{fmt.Errorf("look up archived messages: %w", err)}
	}
	missing := 0
	for _, id := range ids {
		if _, ok := have[id]; !ok {
			missing++
		}
	}
	return missing, nil
}

// gone records a conversation found absent upstream, then marks it purged.
// The audit row goes first: no conversation is ever purged without one.
func (p *Purger) gone(ctx context.Context, r *run, c sink.ConversationSummary, why string) error {
	d := Decision{ConversationID: c.ConversationID, Event: sink.EventGone, Archived: c.Archived, NewestSentAt: c.NewestSentAt, Reason: why}
	if err := p.record(ctx, r, d); err != nil {
		return err
	}
	if err := p.markPurged(ctx, r, c.ConversationID); err != nil {
		return err
	}
	return p.flush(ctx)
}

func (p *Purger) skipDecision(c sink.ConversationSummary, why, text string) Decision {
	return Decision{ConversationID: c.ConversationID, Event: sink.EventSkipped, Skip: why, Archived: c.Archived,
		NewestSentAt: c.NewestSentAt, Reason: why + ": " + text}
}

// record counts a decision and writes its audit row.
func (p *Purger) record(ctx context.Context, r *run, d Decision) error {
	r.decide(d)
	return p.audit(ctx, p.auditRow(r, d))
}

// decide counts a decision in the summary.
func (r *run) decide(d Decision) {
	switch d.Event {
	case sink.EventDeleted:
		r.sum.Deleted++
	case sink.EventGone:
		r.sum.Gone++
	case sink.EventWouldDelete:
		r.sum.WouldDelete++
	case sink.EventFailed:
		r.sum.Failed++
	case sink.EventSkipped:
		r.sum.Skipped++
		r.sum.SkippedBy[d.Skip]++
	}
	r.sum.Decisions = append(r.sum.Decisions, d)
	r.log.Debug("purge decision", zap.String("conversation_id", d.ConversationID), zap.String("event", d.Event),
		zap.String("reason", d.Reason))
}

func (p *Purger) auditRow(r *run, d Decision) sink.AuditRow {
	return sink.AuditRow{At: p.opts.Now().UTC(), RunID: r.id, Action: sink.AuditPurge, Event: d.Event, ConversationID: d.ConversationID,
		ArchivedMessages: d.Archived, NewestSentAt: d.NewestSentAt, DryRun: r.dry, Reason: d.Reason, APIAnswer: d.APIAnswer,
		Operator: r.ro.Operator, OperatorReason: r.ro.Reason}
}

// audit writes rows even when the run is being stopped: a decision made is
// recorded.
func (p *Purger) audit(ctx context.Context, rows ...sink.AuditRow) error {
	if len(rows) == 0 {
		return nil
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.opts.WriteTimeout)
	defer cancel()
	if err := p.archive.AddAudit(wctx, rows...); err != nil {
		return errArchive{fmt.Errorf("write the audit: %w", err)}
	}
	return nil
}

func (p *Purger) flush(ctx context.Context) error {
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.opts.WriteTimeout)
	defer cancel()
	if err := p.archive.Flush(wctx); err != nil {
		return errArchive{fmt.Errorf("write the purged marker: %w", err)}
	}
	return nil
}

// markPurged queues a new version of the conversation's state that says it
// was purged; flush stores it.
func (p *Purger) markPurged(ctx context.Context, r *run, conv string) error {
	st, ok := r.states[conv]
	if !ok {
		st = sink.State{ConversationID: conv}
	}
	if !st.PurgedAt.IsZero() {
		return nil
	}
	now := p.opts.Now().UTC()
	st.PurgedAt, st.UpdatedAt = now, now
	st.Version = max(st.Version+1, uint64(now.UnixNano()))
	r.states[conv] = st
	if err := p.archive.AddState(ctx, st); err != nil {
		return errArchive{fmt.Errorf("mark %s purged: %w", conv, err)}
	}
	return nil
}

// isBudget: no request may be sent for long (the day's budget, or the
// server throttling for longer than the client waits).
func isBudget(err error) bool {
	return errors.Is(err, budget.ErrDailyBudgetExhausted) || cekat.KindOf(err) == cekat.KindThrottled
}

// refused: the API refused the credential.
func refused(err error) bool {
	var e *cekat.Error
	return errors.As(err, &e) && (e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden)
}

func dedupe(ids []string) []string {
	var out []string
	for _, id := range ids {
		if id = strings.TrimSpace(id); id != "" && !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	return out
}
