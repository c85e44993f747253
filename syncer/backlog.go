package syncer

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync/atomic"
	"time"

	"github.com/cekat-archiver/cekat-archiver/sink"
	"github.com/cekat-archiver/cekat-archiver/syncer/budget"
	"github.com/cekat-archiver/cekat-archiver/syncer/cekat"
)

// Under a daily cap the archive is complete at the cost of the list pages:
// every message a list page returns is written at once from its list item,
// and its detail call waits on the schedule (status_checks, kind
// CheckEnrichNew or CheckEnrichHistory, due at once) unless the day's budget
// has room for it now. The enrichment backlog is served after the listing,
// from what the budget leaves (Budget.Spare): new messages newest first,
// then due re-checks, then the history newest first. Without a daily cap
// nothing waits: every message is enriched in its walk, as one row.

// Budget is what the engine asks of the API budget before it spends calls
// on enrichment (*budget.Limiter implements it).
type Budget interface {
	// Spare says how many calls the enrichment backlog may take now beyond
	// listingPerRun calls for each run still to start before the day ends:
	// free is all of it, share this run's part when the day is paced.
	// Both are negative without a daily cap.
	Spare(listingPerRun int) (free, share int)
	// BacklogPerDay is what a whole day leaves for enrichment beyond
	// listingPerRun calls a run (negative without a daily cap).
	BacklogPerDay(listingPerRun int) int
}

// EnrichPolicy says which messages the enrichment backlog takes when
// they cannot be enriched as they are archived. The zero value enriches
// everything.
type EnrichPolicy struct {
	// History: "all" (the default), "younger" (only messages younger than
	// MaxAge) or "none".
	History string
	MaxAge  time.Duration
	// OutboundOnly leaves inbound messages that had to wait unenriched
	// (their detail adds delivery and read times, which matter most for
	// what was sent).
	OutboundOnly bool
}

// The values of EnrichPolicy.History.
const (
	EnrichHistoryAll     = "all"
	EnrichHistoryYounger = "younger"
	EnrichHistoryNone    = "none"
)

// wants says whether a message that could not be enriched as it was
// archived goes on the backlog.
func (p EnrichPolicy) wants(row sink.MessageRow, kind uint8, now time.Time) bool {
	if p.OutboundOnly && row.Direction == "inbound" {
		return false
	}
	if kind != sink.CheckEnrichHistory {
		return true
	}
	switch p.History {
	case EnrichHistoryNone:
		return false
	case EnrichHistoryYounger:
		return now.Sub(row.SentAt) < p.MaxAge
	}
	return true
}

// newMessageAge: a message of a first sync younger than this is a new
// message, not history, for the order in which the backlog serves it.
const newMessageAge = 24 * time.Hour

// backlogFor is how long a message stays on the enrichment backlog: long
// enough for the history of a large workspace at the smallest plan.
const backlogFor = 5 * 366 * 24 * time.Hour

// The enrich_error of a message archived from its list item only.
const (
	waitingPrefix = "waiting: "
	waitingError  = waitingPrefix + "archived from the list; its detail call waits for the API budget"
	policyError   = "not enriched: the enrichment policy leaves it out (sync.enrich)"
)

// allowance is what a run may spend on enrichment under a daily cap: nil
// without one.
type allowance struct {
	left  atomic.Int64 // may go below zero when calls race for the last
	share int64        // the run's part of the day, as planned at its start
	spent atomic.Int64
}

// spend takes one call of the run's allowance, if there is one left.
func (r *run) spend() bool {
	a := r.allow
	if a == nil {
		return true
	}
	if a.left.Add(-1) < 0 {
		return false
	}
	a.spent.Add(1)
	return true
}

// capped says whether the run works under a daily cap: enrichment that
// does not fit waits on the backlog.
func (r *run) capped() bool { return r.allow != nil }

// planAllowance sets what the run may spend on enrichment, keeping what its
// own listing and the day's later runs need. Until a scheduled run has
// measured that listing, a run for webhook events spends nothing on it: its
// statuses are kept provisional.
func (e *Engine) planAllowance(r *run, due int, triggered bool) {
	if e.opts.Budget == nil {
		return
	}
	est := int(e.listingPerRun.Load())
	if est <= 0 && triggered {
		if free, _ := e.opts.Budget.Spare(0); free >= 0 {
			r.allow = &allowance{}
		}
		return
	}
	if est <= 0 {
		est = due
	}
	free, share := e.opts.Budget.Spare(est)
	if free < 0 {
		return
	}
	a := &allowance{share: int64(share)}
	a.left.Store(int64(max(min(free-est, share), 0)))
	r.allow = a
}

// replanAllowance recomputes the allowance once the run's listing is done:
// what the day has left now, within the run's planned share.
func (e *Engine) replanAllowance(r *run) {
	if r.allow == nil {
		return
	}
	free, _ := e.opts.Budget.Spare(max(int(e.listingPerRun.Load()), 1))
	if free < 0 {
		r.allow = nil
		return
	}
	r.allow.left.Store(int64(max(min(int64(free), r.allow.share-r.allow.spent.Load()), 0)))
}

// enrichKind is the backlog kind of a message a walk archives: history
// when the walk goes to the start of a history and the message is not
// recent.
func (c *convSync) enrichKind(m cekat.Message, now time.Time) uint8 {
	if c.history && now.Sub(m.Timestamp) > newMessageAge {
		return sink.CheckEnrichHistory
	}
	return sink.CheckEnrichNew
}

// enrichNow says whether a walk fetches a message's detail as it archives
// it: always without a daily cap; under one, a new message while the run's
// allowance lasts, never a walk to the start of a history (its listing, of
// unknown length, comes first; its enrichment after, recent messages
// first). A message without a time stamp cannot be ordered and always
// waits for its detail answer.
func (c *convSync) enrichNow(m cekat.Message) bool {
	if !c.r.capped() || m.Timestamp.IsZero() {
		return true
	}
	if c.history {
		return false
	}
	return c.r.spend()
}

// waitingRow is the row of a message archived from its list item only, and
// its place on the enrichment backlog (nil when the policy leaves it out).
func (c *convSync) waitingRow(m cekat.Message) (sink.MessageRow, *sink.StatusCheck) {
	e, r := c.e, c.r
	now := e.opts.Now().UTC()
	conv := c.st.ConversationID
	row := rowFrom(conv, m, nil, now)
	kind := c.enrichKind(m, now)
	if !e.opts.Enrich.wants(row, kind, now) {
		row.EnrichError = joinError(policyError, row.EnrichError)
		return row, nil
	}
	row.EnrichError = joinError(waitingError, row.EnrichError)
	count(&r.progress.Waiting, e.opts.Metrics.waiting, 1)
	return row, &sink.StatusCheck{ConversationID: conv, MessageID: m.ID, SentAt: row.SentAt, Until: now.Add(backlogFor),
		CheckedAt: now, NextCheckAt: now, Open: true, Kind: kind, Version: uint64(now.UnixNano())}
}

func joinError(reason, warnings string) string {
	if warnings == "" {
		return reason
	}
	return reason + "; " + warnings
}

// drainChunk is how many backlog entries are handed to the conversations
// at once: the backlog's order holds across conversations chunk by chunk.
const drainChunk = 200

// drain serves the backlog due now, in its order (sink.CheckRank), while
// the run's allowance lasts. It reads the schedule again: the entries this
// run queued are due too.
func (e *Engine) drain(ctx context.Context, r *run) error {
	if err := e.store.Flush(ctx); err != nil {
		return storeErr(fmt.Errorf("write before serving the enrichment backlog: %w", err))
	}
	e.replanAllowance(r)
	checks, err := e.store.DueChecks(ctx, e.opts.Now().UTC(), maxDueChecks)
	if err != nil {
		return storeErr(fmt.Errorf("load the enrichment backlog: %w", err))
	}
	checks = slices.DeleteFunc(checks, func(c sink.StatusCheck) bool { return !e.opts.Shard.Owns(c.ConversationID) })
	for i, chunk := 0, []sink.StatusCheck(nil); i < len(checks); i += len(chunk) {
		chunk = checks[i:min(i+drainChunk, len(checks))]
		if r.allow != nil && r.allow.left.Load() <= 0 {
			r.enrichPaused = fmt.Sprintf("this run's share of the day's API budget for enrichment is spent (%d planned); "+
				"the rest of the day is kept for the listing of later runs", r.allow.share)
			break
		}
		r.due = newDueSet(chunk)
		if err := e.recheck(ctx, r); err != nil {
			return err
		}
	}
	return nil
}

// BacklogCounts is the enrichment backlog by kind (sink.CheckKindName).
type BacklogCounts map[string]uint64

// refreshBacklog sets the backlog gauges and returns the counts.
func (e *Engine) refreshBacklog(ctx context.Context) (BacklogCounts, error) {
	byKind, err := e.store.Backlog(ctx, e.opts.Now().UTC())
	if err != nil {
		return nil, storeErr(fmt.Errorf("count the enrichment backlog: %w", err))
	}
	out := BacklogCounts{}
	for _, k := range []uint8{sink.CheckEnrichNew, sink.CheckRecheck, sink.CheckEnrichHistory} {
		out[sink.CheckKindName(k)] = byKind[k]
		e.opts.Metrics.backlog.WithLabelValues(sink.CheckKindName(k)).Set(float64(byKind[k]))
	}
	return out, nil
}

// DrainEstimate says when a backlog of n detail calls is drained at perDay
// calls a day for enrichment; zero when it cannot be (perDay <= 0).
func DrainEstimate(now time.Time, n uint64, perDay int) time.Time {
	if n == 0 {
		return now
	}
	if perDay <= 0 {
		return time.Time{}
	}
	return now.Add(time.Duration(float64(n) / float64(perDay) * float64(24*time.Hour)))
}

var _ Budget = (*budget.Limiter)(nil)

// countBacklog puts the backlog at the end of the run in the summary and
// the gauges, with when it will be drained at the configured budget.
func (e *Engine) countBacklog(ctx context.Context, r *run, sum *Summary) error {
	ctx = context.WithoutCancel(ctx)
	if err := e.store.Flush(ctx); err != nil {
		return storeErr(err)
	}
	counts, err := e.refreshBacklog(ctx)
	if err != nil {
		return err
	}
	sum.Backlog = counts
	n := counts[sink.CheckKindName(sink.CheckEnrichNew)] + counts[sink.CheckKindName(sink.CheckEnrichHistory)]
	perDay := -1
	if e.opts.Budget != nil {
		perDay = e.opts.Budget.BacklogPerDay(max(int(e.listingPerRun.Load()), 1))
	}
	now := e.opts.Now().UTC()
	switch {
	case n == 0:
		sum.Drained = now
	case perDay < 0:
		// No daily cap: the next runs enrich it at the pace of the minute.
		sum.Drained = time.Time{}
	default:
		sum.Drained = DrainEstimate(now, n, perDay)
	}
	if !sum.Drained.IsZero() {
		e.opts.Metrics.drainedBy.Set(float64(sum.Drained.Unix()))
	}
	return nil
}

// listingRuns is how many recent runs the listing estimate looks back on.
const listingRuns = 12

// noteListing records what a scheduled run's listing of new messages cost.
// The estimate for later runs is the larger of the last one and a quarter
// over the recent mean: runs vary with the traffic, and a reserve that
// falls short ends the day's listing early.
func (e *Engine) noteListing(n int64) {
	e.listingMu.Lock()
	defer e.listingMu.Unlock()
	e.listings = append(e.listings, max(n, 1))
	if len(e.listings) > listingRuns {
		e.listings = e.listings[len(e.listings)-listingRuns:]
	}
	var sum int64
	for _, v := range e.listings {
		sum += v
	}
	mean := float64(sum) / float64(len(e.listings))
	e.listingPerRun.Store(max(e.listings[len(e.listings)-1], int64(math.Ceil(mean*1.25))))
}

// errNoLookup: under a daily cap, the day has no room for the detail call
// that finds the conversation of an event naming none. The next scheduled
// run's listing (the conversation list, or the conversation's poll) finds
// the message; the event only made it sooner.
var errNoLookup = errors.New("the day's API budget keeps its calls for the runs' listing; no detail call to find the conversation")

// eventLookups is how many events naming no conversation may be looked up
// now: what the budget leaves beyond the day's listing; nil without a
// daily cap.
func (e *Engine) eventLookups() *atomic.Int64 {
	if e.opts.Budget == nil {
		return nil
	}
	est := int(e.listingPerRun.Load())
	free, _ := e.opts.Budget.Spare(max(est, 1))
	if free < 0 {
		return nil
	}
	n := new(atomic.Int64)
	if est > 0 { // until a scheduled run measured the listing, none
		n.Store(int64(free))
	}
	return n
}
