// Package syncer archives Cekat conversations into the archive: it walks
// each tracked conversation's history through the list endpoint, enriches
// new messages through the detail endpoint, re-checks statuses that can
// still change, and records its progress so any run can be killed and the
// next one carries on without a gap.
package syncer

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/cekat-archiver/cekat-archiver/sink"
	"github.com/cekat-archiver/cekat-archiver/syncer/budget"
	"github.com/cekat-archiver/cekat-archiver/syncer/cekat"
	"github.com/cekat-archiver/cekat-archiver/syncer/shard"
)

// API is what the engine needs of the Cekat API.
type API interface {
	ListMessages(ctx context.Context, conversationID string, limit int, before string) (*cekat.Page, error)
	GetMessage(ctx context.Context, id string) (cekat.Message, error)
}

// Archive is what the engine needs of the archive. Writes are buffered:
// AddState is queued behind the rows added before it and is never stored
// ahead of them, so a saved state never claims rows that are not stored.
type Archive interface {
	TrackedConversations(ctx context.Context) ([]string, error)
	LoadStates(ctx context.Context) (map[string]sink.State, error)
	// Archived returns, of ids, those archived, with their newest status.
	Archived(ctx context.Context, conversationID string, ids []string) (map[string]sink.ArchivedMessage, error)
	// ConversationsArchived returns, of the conversations ids, those with
	// at least one archived message.
	ConversationsArchived(ctx context.Context, ids []string) (map[string]bool, error)
	// CurrentMessages returns the newest version of the archived messages among ids.
	CurrentMessages(ctx context.Context, conversationID string, ids []string) ([]sink.MessageRow, error)
	// NewerThan counts the archived messages of a conversation sent after t.
	NewerThan(ctx context.Context, conversationID string, t time.Time) (uint64, error)
	// LoadSweep returns the stored mark of the inbox sweep of scope;
	// SaveSweep stores one, at once (the engine flushes first).
	LoadSweep(ctx context.Context, scope string) (sink.SweepMark, bool, error)
	SaveSweep(ctx context.Context, m sink.SweepMark) error
	// DueChecks returns up to limit open schedule entries due at now, the
	// most overdue first, without reading the whole archive.
	DueChecks(ctx context.Context, now time.Time, limit int) ([]sink.StatusCheck, error)
	// Backlog counts the open schedule entries due at now, by kind.
	Backlog(ctx context.Context, now time.Time) (map[uint8]uint64, error)
	// AddMessages queues rows. Like every Add method, it copies what it
	// keeps: the engine reuses the slice it passes.
	AddMessages(ctx context.Context, rows ...sink.MessageRow) error
	// AddQuarantine queues records not already quarantined; it returns how many.
	AddQuarantine(ctx context.Context, rows ...sink.QuarantineRow) (int, error)
	// AddChecks queues schedule entries behind the rows queued so far.
	AddChecks(ctx context.Context, checks ...sink.StatusCheck) error
	// Conversations returns what the conversation list said of each
	// conversation; AddConversations queues new rows behind the rows queued
	// so far.
	Conversations(ctx context.Context) (map[string]sink.ConversationRow, error)
	AddConversations(ctx context.Context, rows ...sink.ConversationRow) error
	AddState(ctx context.Context, st sink.State) error
	Flush(ctx context.Context) error
	SaveRun(ctx context.Context, run sink.RunRow) error
}

// Options tune the engine. Zero values take the defaults noted.
type Options struct {
	PageSize          int           // list page size (100)
	Concurrency       int           // conversations at once (4)
	DetailConcurrency int           // detail calls in flight across all conversations (4)
	RecheckWindow     time.Duration // how long statuses that can still change are re-checked (7 days); 0 or less turns re-checks off
	// RecheckFloor is the shortest wait before a scheduled re-check (0: the
	// freshness rule alone, 2 x age + 1 minute). With webhook events telling
	// each status change, the schedule is only the net for lost events.
	RecheckFloor time.Duration
	// ConversationIDs and ConversationsFile are tracked besides the ids in
	// the archive's table; the file is read at every run.
	ConversationIDs   []string
	ConversationsFile string
	// Discovery, when set, tracks the conversations the API lists and polls
	// only those whose last message changed.
	Discovery *Discovery
	// Shard is this engine's part of the conversations: every run, re-check
	// and webhook event is about the conversations it owns only, whichever
	// way they became tracked. The zero value owns them all.
	Shard shard.Shard
	// GoneRetry is how long a conversation answered 404 is left alone.
	GoneRetry time.Duration // (24h)
	// Adaptive polling: after PollIdleRuns runs in a row without a new
	// message a conversation is next due after PollBaseInterval, doubling
	// with each further idle run up to PollMaxInterval (3, 15m, 6h).
	PollIdleRuns     int
	PollBaseInterval time.Duration
	PollMaxInterval  time.Duration
	// Metrics receive the engine's counts; nil keeps them unregistered.
	Metrics *Metrics
	// BackfillMaxDuration bounds the time a run spends fetching older
	// history, after new messages and re-checks (4m).
	BackfillMaxDuration time.Duration
	// FlushTimeout bounds the final write of a run, which happens even
	// when the run was cancelled (30s).
	FlushTimeout time.Duration
	// Budget, when it has a daily cap, makes a run archive what its
	// budget cannot enrich now from the list items and queue the
	// enrichment (see backlog.go); nil: every message is enriched as it is
	// archived.
	Budget Budget
	// Enrich says which messages that had to wait are enriched later.
	Enrich EnrichPolicy
	// Inbox, when set, makes runs find new messages by listing the whole
	// inbox (sweep.go) before listing conversations one by one.
	Inbox *InboxSweep
	// EventBatch spaces, under a daily cap, the runs for webhook events
	// that list conversations: events that ask for one wait, pending, until
	// EventBatch has passed since the last (10m; negative: no wait).
	EventBatch time.Duration
	Requests   *RequestStats
	// RequestStep is how many API requests a run's row in sync_runs
	// records ahead of them (DefaultRequestStep); see RecordingLimiter.
	RequestStep int
	Logger      *zap.Logger
	Now         func() time.Time
}

// Engine runs syncs. One Engine runs one sync at a time.
type Engine struct {
	api   API
	store Archive
	opts  Options
	log   *zap.Logger
	mu    sync.Mutex // one run at a time
	live  atomic.Pointer[Progress]
	// unsaved holds run rows the archive could not take (under mu).
	unsaved []sink.RunRow
	// lastListing is when the conversation list was last paged.
	lastListing atomic.Pointer[time.Time]
	// listHasStatus: list answers carry statuses (the flat shape), so a
	// list page can re-check many messages at once.
	listHasStatus atomic.Bool
	// heads: the newest message of each conversation synced since the
	// last listing of the conversations.
	heads heads
	// listingPerRun: what the budget keeps for each later run's listing of
	// new messages (0: not known yet), from the last runs' (noteListing).
	listingPerRun atomic.Int64
	listingMu     sync.Mutex
	listings      []int64 // the last scheduled runs' list calls
	// listCalls counts the list calls made (messages and conversations).
	listCalls atomic.Int64
	// inboxOff: the API answered the inbox listing as a deployment without
	// it does, or in no order of time.
	inboxOff atomic.Bool
	// lastEventListing: when a run for webhook events last listed.
	lastEventListing atomic.Pointer[time.Time]
}

// New returns an engine reading from api and writing to store.
func New(api API, store Archive, opts Options) *Engine {
	if opts.PageSize <= 0 || opts.PageSize > 100 {
		opts.PageSize = 100
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = 4
	}
	if opts.DetailConcurrency <= 0 {
		opts.DetailConcurrency = 4
	}
	if opts.GoneRetry <= 0 {
		opts.GoneRetry = 24 * time.Hour
	}
	if opts.BackfillMaxDuration <= 0 {
		opts.BackfillMaxDuration = 4 * time.Minute
	}
	if opts.EventBatch == 0 {
		opts.EventBatch = 10 * time.Minute
	}
	if opts.FlushTimeout <= 0 {
		opts.FlushTimeout = 30 * time.Second
	}
	if opts.PollIdleRuns <= 0 {
		opts.PollIdleRuns = 3
	}
	if opts.PollBaseInterval <= 0 {
		opts.PollBaseInterval = 15 * time.Minute
	}
	if opts.PollMaxInterval < opts.PollBaseInterval {
		opts.PollMaxInterval = max(6*time.Hour, opts.PollBaseInterval)
	}
	if opts.Metrics == nil {
		opts.Metrics = NewMetrics(prometheus.NewRegistry())
	}
	if opts.Requests == nil {
		opts.Requests = NewRequestStats(opts.Metrics)
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Engine{api: shareDetails(api, opts.Now), store: store, opts: opts, log: opts.Logger}
}

// Progress counts a run's work while it goes; read it with Engine.Progress.
type Progress struct {
	Conversations atomic.Int64 // conversations to sync in this run
	Backlog       atomic.Int64 // conversations with older history to fetch
	Done          atomic.Int64 // conversations finished, well or not
	Failed        atomic.Int64
	Gone          atomic.Int64
	NewMessages   atomic.Int64
	Enriched      atomic.Int64
	EnrichFailed  atomic.Int64
	Rechecked     atomic.Int64
	Changed       atomic.Int64 // re-checks that found a new status
	Quarantined   atomic.Int64
	// Found counts the new messages the run's list pages showed: those it
	// archives (NewMessages) as it goes.
	Found atomic.Int64
	// BackfillDone counts the conversations of Backlog whose turn in the
	// backfill phase ended (history complete, or paused for the next run).
	BackfillDone atomic.Int64
	// Tracked and HistoryComplete: the tracked conversations (not gone or
	// purged), and those of them whose whole history is archived.
	Tracked         atomic.Int64
	HistoryComplete atomic.Int64
	Waiting         atomic.Int64 // archived from the list, their enrichment queued
	phase           atomic.Pointer[string]
}

// Phase names the part of the run in progress: new messages, re-checks or backfill.
func (p *Progress) Phase() string {
	if s := p.phase.Load(); s != nil {
		return *s
	}
	return "starting"
}

func (p *Progress) setPhase(s string) { p.phase.Store(&s) }

// Progress returns the counters of the run in progress, or of the last run.
func (e *Engine) Progress() *Progress {
	if p := e.live.Load(); p != nil {
		return p
	}
	return &Progress{}
}

// Summary is the outcome of one run.
type Summary struct {
	RunID         string
	Started       time.Time
	Finished      time.Time
	Conversations int // due in this run
	Attempted     int // worked on: the due ones and those with history to fetch
	Synced        int // whose new messages were all fetched
	Failed        int
	Gone          int
	NotDue        int
	// Listed counts the conversations the conversation list showed (and the
	// filters and the shard took); Unchanged those of them with nothing new, not polled.
	Listed       int
	Unchanged    int
	NewMessages  int64
	Enriched     int64
	EnrichFailed int64
	Rechecked    int64
	Changed      int64
	Quarantined  int64
	// Waiting counts the messages this run archived from their list item
	// only, their enrichment queued (under a daily cap).
	Waiting int64
	// Backlog is the enrichment backlog at the end of the run, by kind
	// (new, recheck, history), when the run counted it (nil otherwise);
	// Drained is when it will be served at the configured budget (zero:
	// not at this budget).
	Backlog BacklogCounts
	Drained time.Time
	// EnrichPaused says why the run left enrichment waiting although
	// the day's budget is not spent (its share kept for later runs).
	EnrichPaused string
	Requests     map[string]int64 // by endpoint
	// LeftForLater counts conversations with work left for a later run:
	// new messages not fetched, or older history still to fetch.
	LeftForLater int
	// StoppedBy says why the run stopped before doing everything it could
	// (a spent API budget, a stop signal); it is not a failure.
	StoppedBy string
	// Stopped: the run was told to stop (a signal, a deadline) and wrote
	// what it had.
	Stopped bool
	// Errors holds the first problems of the run, one per conversation.
	Errors []string
	// Err is why the run stopped early, if it did.
	Err error
}

// Failure reports whether anything in the run went wrong. A stopped run has
// not failed.
func (s Summary) Failure() error {
	switch {
	case s.Err != nil:
		return s.Err
	case s.Failed > 0:
		return fmt.Errorf("%d of %d conversations worked on failed", s.Failed, max(s.Attempted, s.Failed))
	}
	return nil
}

const maxSummaryErrors = 20

// dueSlack is how early a conversation may be polled before it is due.
const dueSlack = time.Minute

// pollDelay is how long a conversation that has had idle runs in a row
// without a new message waits before it is polled again.
func (e *Engine) pollDelay(idle uint32) time.Duration {
	n := int(idle) - e.opts.PollIdleRuns
	if n < 0 {
		return 0
	}
	d := e.opts.PollBaseInterval
	for ; n > 0 && d < e.opts.PollMaxInterval; n-- {
		d *= 2
	}
	return min(d, e.opts.PollMaxInterval)
}

// count adds n to a run's progress counter and to its metric.
func count(p *atomic.Int64, c prometheus.Counter, n int64) {
	p.Add(n)
	inc(c, n)
}

// errStore marks failures of the archive: nothing can be saved, so the run
// stops instead of going on conversation after conversation.
type errStore struct{ err error }

func (e errStore) Error() string { return "archive: " + e.err.Error() }
func (e errStore) Unwrap() error { return e.err }

// IsArchiveFailure says whether err is a failure of the archive (not of
// the API): the operator's problem is then the archive's store.
func IsArchiveFailure(err error) bool { return errors.As(err, new(errStore)) }

func storeErr(err error) error {
	if err == nil {
		return nil
	}
	return errStore{err}
}

// run is the state shared by the conversations of one run.
type run struct {
	// stopped is the run's own context: done when the run is told to stop,
	// not when a sibling's failure ends a phase.
	stopped  context.Context
	id       string
	log      *zap.Logger // carries the run id
	started  time.Time
	progress *Progress
	calls    *detailCalls // runs every detail call of the run
	allow    *allowance   // enrichment under a daily cap; nil: none
	// enrichPaused: why enrichment stopped with work left (Summary.EnrichPaused).
	enrichPaused string
	// unarchived: due conversations without a state of which the archive
	// held no message when the run began; the first page of their walk
	// from the top takes the mark and needs no look-up.
	unarchived sync.Map
	due        *dueSet
	fetched    map[string]cekat.Message // read only during the run
	changed    map[string]bool          // read only during the run
	told       map[string]StatusTold    // read only during the run
	mu         sync.Mutex
	errors     []string
	failed     map[string]bool
	topOK      map[string]bool
	attempted  map[string]bool
	// ends: where each conversation's walk of this run left off at the end
	// of a whole page, and that page's ids; see convSync.lookupFrom.
	ends map[string]walkEnd
	// lookAll: conversations whose walks look up every page this run.
	lookAll map[string]bool
	// swept: the inbox sweep's new messages of covered conversations, as
	// the first page of their walks from the top (read only during the run).
	swept map[string]*cekat.Page
}

func (r *run) attempt(conv string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.attempted == nil {
		r.attempted = map[string]bool{}
	}
	r.attempted[conv] = true
}

func (r *run) fail(conv string, err error) {
	r.mu.Lock()
	if r.failed == nil {
		r.failed = map[string]bool{}
	}
	r.failed[conv] = true
	r.mu.Unlock()
	r.noteError(conv, err)
}

func (r *run) topDone(conv string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.topOK == nil {
		r.topOK = map[string]bool{}
	}
	r.topOK[conv] = true
}

// walkEnd is where a walk of this run stopped between pages: its cursor and
// the ids of the last page that the next page may show again (edgeIDs).
type walkEnd struct {
	before string
	ids    map[string]bool
}

// endWalk records where the conversation's walk stopped between pages;
// an empty before forgets it.
func (r *run) endWalk(conv string, end walkEnd) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ends == nil {
		r.ends = map[string]walkEnd{}
	}
	if end.before == "" {
		delete(r.ends, conv)
		return
	}
	r.ends[conv] = end
}

func (r *run) walkEnded(conv string) (walkEnd, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	end, ok := r.ends[conv]
	return end, ok
}

func (r *run) lookUpAll(conv string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.lookAll == nil {
		r.lookAll = map[string]bool{}
	}
	r.lookAll[conv] = true
}

func (r *run) looksUpAll(conv string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lookAll[conv]
}

func (r *run) isTopDone(conv string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.topOK[conv]
}

func (r *run) noteError(conv string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.errors) < maxSummaryErrors {
		r.errors = append(r.errors, fmt.Sprintf("%s: %v", conv, err))
	}
}

// Sync runs once over the tracked conversations, or over only when given.
// It returns a summary even when the run stopped early; Summary.Failure
// says whether anything went wrong.
func (e *Engine) Sync(ctx context.Context, only []string) Summary {
	return e.SyncWith(ctx, SyncOptions{Only: only})
}

// SyncOptions choose what a run covers.
type SyncOptions struct {
	// Only limits the run to these conversations, due or not.
	Only []string
	// All syncs every tracked conversation, due or not.
	All bool
	// Triggered runs for a hint (a webhook event): it syncs exactly Only
	// (maybe none), and the status checks that are due, without listing
	// conversations.
	Triggered bool
	// Fetched are message details fetched just before the run (to find the
	// conversation a webhook event is about): the run uses them instead of
	// paying for them again.
	Fetched map[string]cekat.Message
	// Changed are messages whose status an event says changed: they are
	// fetched directly, never looked for in a list answer first.
	Changed map[string]bool
	// account, when set, is the run's, begun before it (the webhook events'
	// look-ups are the run's requests).
	account *account
	// Told is what a delivery or read event said of a message: under a
	// daily cap that cannot pay for its detail call now, the event's time
	// is recorded as provisional until a detail call confirms it.
	Told map[string]StatusTold
}

// StatusTold is a status a webhook event told, and when.
type StatusTold struct {
	Event string // message.delivered or message.read
	At    time.Time
}

// SyncWith runs once as opts say; see Sync.
func (e *Engine) SyncWith(ctx context.Context, opts SyncOptions) Summary {
	e.lockRun(opts)
	defer e.mu.Unlock()
	acct := opts.account
	if acct == nil {
		acct = e.newAccount(sink.RunSync)
	}

	r := &run{stopped: ctx, id: acct.row.RunID, started: acct.row.StartedAt, progress: &Progress{}, due: newDueSet(nil),
		fetched: opts.Fetched, changed: opts.Changed, told: opts.Told, swept: map[string]*cekat.Page{}}
	e.live.Store(r.progress)
	log := e.log.With(zap.String("run_id", r.id))
	r.log = log
	sum := Summary{RunID: r.id, Started: r.started}
	acct.setFill(func(row *sink.RunRow) {
		p := r.progress
		row.NewMessages, row.Enriched, row.Rechecked = uint64(p.NewMessages.Load()), uint64(p.Enriched.Load()), uint64(p.Rechecked.Load())
		row.Quarantined, row.Conversations = uint64(p.Quarantined.Load()), uint32(p.Conversations.Load())
	})
	// The run is in sync_runs before its first request; a run that cannot
	// write it stops at its first request (or at its first write).
	if err := acct.begin(ctx); err != nil {
		log.Warn("recording the run's start failed", zap.Error(err))
	}
	ctx = withAccount(ctx, acct)

	r.calls = startDetailCalls(e.opts.DetailConcurrency)
	err := e.sync(ctx, r, opts, &sum, log)
	r.calls.stop()
	if ctx.Err() != nil && cutByStop(ctx, err) {
		// A read or write of the archive that the stop cut short is the
		// stop, not a failure of the archive: the flush below says whether
		// what the run had was written.
		err = ctx.Err()
	}
	// What is in hand is written even when the run is being stopped.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), e.opts.FlushTimeout)
	defer cancel()
	ferr := e.store.Flush(wctx)
	if ferr != nil && (err == nil || !errors.As(err, new(errStore))) {
		err = storeErr(ferr)
	}
	if ctx.Err() != nil && !errors.As(err, new(errStore)) {
		// Told to stop: not a failure, as long as what it had was written.
		sum.Stopped, sum.StoppedBy, err = true, "stopped: "+context.Cause(ctx).Error(), nil
	}

	sum.Finished = e.opts.Now().UTC()
	r.tally(&sum, ferr == nil)
	sum.Requests = acct.requests()
	sum.Err = err
	if sum.Failed > 0 {
		log.Warn("conversations failed in this run", zap.Int("failed", sum.Failed), zap.Int("worked_on", sum.Attempted),
			zap.Strings("first_errors", r.errors[:min(len(r.errors), 3)]))
	}
	row := e.runRow(sum)
	e.saveRun(wctx, acct.final(row), log)
	return sum
}

// tally counts in sum what the run did. New messages count only when
// written: rows are counted once they are stored, not when queued.
func (r *run) tally(sum *Summary, written bool) {
	p := r.progress
	p.Failed.Store(int64(len(r.failed)))
	sum.Failed = len(r.failed)
	sum.Attempted = len(r.attempted)
	sum.Gone = int(p.Gone.Load())
	for id := range r.topOK {
		if !r.failed[id] {
			sum.Synced++
		}
	}
	sum.Enriched, sum.EnrichFailed = p.Enriched.Load(), p.EnrichFailed.Load()
	sum.Rechecked, sum.Changed, sum.Quarantined = p.Rechecked.Load(), p.Changed.Load(), p.Quarantined.Load()
	sum.Waiting = p.Waiting.Load()
	sum.EnrichPaused = r.enrichPaused
	if written {
		sum.NewMessages = p.NewMessages.Load()
	}
	sum.Errors = r.errors
}

// runRow is a finished run's row in sync_runs, its result from sum.
func (e *Engine) runRow(sum Summary) sink.RunRow {
	row := sink.RunRow{RunID: sum.RunID, Shard: e.opts.Shard.ID(), StartedAt: sum.Started, FinishedAt: sum.Finished, Result: "ok",
		Conversations: uint32(sum.Conversations), NewMessages: uint64(sum.NewMessages), Enriched: uint64(sum.Enriched),
		Rechecked: uint64(sum.Rechecked), Quarantined: uint64(sum.Quarantined)}
	for _, n := range sum.Requests {
		row.Requests += uint64(n)
	}
	switch f := sum.Failure(); {
	case f != nil:
		row.Result, row.Error = "failed", f.Error()
	case sum.Stopped:
		row.Result, row.Error = "stopped", sum.StoppedBy
	case sum.StoppedBy != "":
		row.Result, row.Error = "partial", sum.StoppedBy
	}
	return row
}

// newAccount starts counting the requests of a new run of kind.
func (e *Engine) newAccount(kind string) *account {
	row := sink.RunRow{RunID: newRunID(), Kind: kind, Shard: e.opts.Shard.ID(), StartedAt: e.opts.Now().UTC()}
	return newAccount(row, e.opts.RequestStep, e.store.SaveRun, e.opts.Now)
}

// Counted runs fn as a run of kind (sink.RunPurge, sink.RunErase) whose API
// requests are recorded in sync_runs as a sync's are, before they are sent,
// so that the daily budget counts them after a restart. It refuses to run
// fn when the run's row cannot be written.
func (e *Engine) Counted(ctx context.Context, kind string, fn func(context.Context) error) error {
	acct := e.newAccount(kind)
	if err := acct.begin(ctx); err != nil {
		return err
	}
	err := fn(withAccount(ctx, acct))
	e.closeAccount(ctx, acct, err, true)
	return err
}

// closeAccount writes the final row of a run that is not a sync, or that
// ended before its sync: its requests count in the day's budget. A run
// that made none leaves no row unless always.
func (e *Engine) closeAccount(ctx context.Context, acct *account, err error, always bool) {
	if len(acct.requests()) == 0 && !always {
		return
	}
	row := acct.base()
	row.FinishedAt, row.Result = e.opts.Now().UTC(), "ok"
	if err != nil {
		row.Result, row.Error = "failed", err.Error()
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), e.opts.FlushTimeout)
	defer cancel()
	e.mu.Lock()
	defer e.mu.Unlock()
	e.saveRun(wctx, acct.final(row), e.log.With(zap.String("run_id", row.RunID)))
}

// saveRun records a run in the archive. A run whose row cannot be written
// (the archive is down) is kept and written with the next one, so that the
// day's API budget still counts its requests.
func (e *Engine) saveRun(ctx context.Context, row sink.RunRow, log *zap.Logger) {
	e.unsaved = append(e.unsaved, row)
	for len(e.unsaved) > 0 {
		if err := e.store.SaveRun(ctx, e.unsaved[0]); err != nil {
			log.Warn("saving the run summary failed; it is kept for the next run", zap.Int("unsaved_runs", len(e.unsaved)), zap.Error(err))
			const keep = 1000
			if len(e.unsaved) > keep {
				e.unsaved = e.unsaved[len(e.unsaved)-keep:]
			}
			return
		}
		e.unsaved = e.unsaved[1:]
	}
}

// cutByStop says whether err is the cancellation of ctx, as the archive
// and the API client report it (wrapping ctx.Err() or its cause).
func cutByStop(ctx context.Context, err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Cause(ctx))
}

// stopsRun says whether an error ends the whole run rather than one
// conversation's sync: the archive is failing, the API budget is spent, or
// the API refused the key (every other call would be refused too).
func stopsRun(err error) bool {
	return errors.As(err, new(errStore)) || outOfBudget(err) || cekat.IsAuthRefused(err)
}

// outOfBudget: the daily budget is spent, or the server asked for a pause
// longer than a run should sleep (a daily cap).
func outOfBudget(err error) bool {
	return errors.Is(err, budget.ErrDailyBudgetExhausted) || cekat.KindOf(err) == cekat.KindThrottled
}

func newRunID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// trackedUnion merges id lists, dropping blanks and duplicates, keeping
// first-seen order.
func trackedUnion(lists ...[]string) []string {
	seen := map[string]bool{}
	var out []string
	for _, l := range lists {
		for _, id := range l {
			if id == "" || seen[id] {
				continue
			}
			seen[id] = true
			out = append(out, id)
		}
	}
	return slices.Clip(out)
}
