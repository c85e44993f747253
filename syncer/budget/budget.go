// Package budget is the client-side request budget of the Cekat API: one
// limiter that every call (list, detail, re-check, delete, send) passes
// through, paced per minute, capped per day, following what the server says,
// and handing scarce requests out by priority. How and why it paces as it
// does: docs/design.md, "The API budget".
//
// Build one Limiter per API key and pass it as cekat.Options.Limiter; tag
// each call's context with WithPriority. A Wait error wrapping
// ErrDailyBudgetExhausted (errors.As *ExhaustedError for when it resets) is
// the signal to stop and report what was left for later.
package budget

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/cekat-archiver/cekat-archiver/syncer/cekat"
)

// Priority ranks the calls competing for the budget; lower values go first.
type Priority int

const (
	// PriorityNew: walking conversations from the top for new messages, and
	// sends. The default of calls whose context carries no priority.
	PriorityNew Priority = iota
	// PriorityEnrich: the detail call of a newly archived message.
	PriorityEnrich
	// PriorityRecheck: fetching outbound messages again whose status may
	// still change.
	PriorityRecheck
	// PriorityBackfill: filling gaps, the old history.
	PriorityBackfill
	// PriorityPurge: the retention purge (backoffice delete). It has a
	// reserved share of the budget instead of a rank. The default of delete
	// calls whose context carries no priority.
	PriorityPurge

	numPriorities = int(PriorityPurge) + 1
)

// Priorities lists every priority, highest first.
var Priorities = [numPriorities]Priority{PriorityNew, PriorityEnrich, PriorityRecheck, PriorityBackfill, PriorityPurge}

// String is the priority's name, suitable as a metric label.
func (p Priority) String() string {
	switch p {
	case PriorityNew:
		return "new"
	case PriorityEnrich:
		return "enrich"
	case PriorityRecheck:
		return "recheck"
	case PriorityBackfill:
		return "backfill"
	case PriorityPurge:
		return "purge"
	}
	return fmt.Sprintf("priority(%d)", int(p))
}

type priorityKey struct{}

// WithPriority returns a context whose API calls are ranked p.
func WithPriority(ctx context.Context, p Priority) context.Context {
	return context.WithValue(ctx, priorityKey{}, p)
}

// PriorityFrom returns the priority set by WithPriority; ok is false when
// none was set. The limiter then uses PriorityPurge for delete calls and
// PriorityNew for every other call: an untagged call is treated as the most
// urgent, so that a forgotten tag never delays fresh data.
func PriorityFrom(ctx context.Context) (p Priority, ok bool) {
	p, ok = ctx.Value(priorityKey{}).(Priority)
	return p, ok
}

func priorityFor(ctx context.Context, endpoint string) Priority {
	if p, ok := PriorityFrom(ctx); ok {
		switch {
		case p < PriorityNew:
			return PriorityNew
		case p > PriorityPurge:
			return PriorityBackfill
		}
		return p
	}
	if endpoint == cekat.EndpointDelete {
		return PriorityPurge
	}
	return PriorityNew
}

// Defaults of Options; the rates fit the smallest documented plan.
const (
	DefaultPerMinute     = 60
	DefaultPerDay        = 1000 // a suggestion for callers: PerDay 0 means no cap
	DefaultPurgeShare    = 0.1
	DefaultHeadroom      = 0.02
	DefaultResetMargin   = time.Second
	DefaultThrottlePause = time.Minute
	DefaultMaxPause      = 15 * time.Minute
)

// Options configures a Limiter. The zero value is usable: 60 requests a
// minute, no daily cap, a tenth reserved for purge.
type Options struct {
	// PerMinute is the configured request rate (default 60). The pace
	// follows a lower X-RateLimit-Limit, never a higher one.
	PerMinute int
	// PerDay caps the requests of a day; 0 means no cap.
	PerDay int
	// PurgeShare is the fraction of the budget reserved for PriorityPurge
	// (default 0.1; negative: none, purge is then simply the lowest
	// priority). Per minute it is reserved only while purge waits; per day
	// it is purge's part, reserved and not exceeded.
	PurgeShare float64
	// Headroom is how far the pace stays under the limit (default 0.02, at
	// most 0.5): it absorbs network jitter against the server's fixed
	// windows.
	Headroom float64
	// ResetMargin is added to X-RateLimit-Reset before sending again once
	// the server's window is spent (default 1s), for clock skew and the
	// whole-second resolution of the header. Negative: none.
	ResetMargin time.Duration
	// ThrottlePause is the pause after a 429 that says neither Retry-After
	// nor X-RateLimit-Reset (default one minute).
	ThrottlePause time.Duration
	// MaxPause: when the server asks for a longer pause than this (a daily
	// cap), Wait fails with ErrDailyBudgetExhausted instead of sleeping
	// (default 15 minutes, the client's default MaxThrottleWait).
	MaxPause time.Duration
	// DayLocation is where the daily count resets at midnight (default UTC).
	DayLocation *time.Location
	// UsedToday is what earlier processes spent today (all but purge): a
	// sync --once per CronJob tick must not get a fresh daily budget each time.
	UsedToday int
	// Now is the clock (default time.Now); tests inject a fake one.
	Now func() time.Time
	// OnWait, when set, is called after every granted Wait with the time
	// the caller waited, for metrics. It must not call the Limiter.
	OnWait func(p Priority, waited time.Duration)
	// Pace spreads the day's cap over the day for the enrichment backlog
	// (see Spare).
	Pace Pace
}

// Pace says how the day's cap is spread over the day: Spare keeps enough
// for every run's listing and the hourly reserve until midnight, and gives
// the rest to the enrichment backlog evenly over the runs left.
type Pace struct {
	// RunEvery is how often runs start; 0: unknown, nothing is kept for
	// later runs and the run in hand may spend the day (a first sync).
	RunEvery time.Duration
	// ReservePerHour is kept for each hour left in the day for calls that
	// no run plans (webhook follow-ups).
	ReservePerHour int
}

// ErrDailyBudgetExhausted is wrapped by the error Wait returns when no
// request may be sent before a reset far ahead: the day's budget is spent,
// or the server asked for a pause longer than Options.MaxPause. Callers stop
// and report what was left for later; errors.As with *ExhaustedError tells
// until when.
var ErrDailyBudgetExhausted = errors.New("request budget exhausted")

// ExhaustedError is the error Wait returns when the budget is exhausted.
type ExhaustedError struct {
	Priority Priority
	Until    time.Time // when requests may be sent again
	Reason   string
}

func (e *ExhaustedError) Error() string {
	return fmt.Sprintf("budget: %v: no %s request before %s: %s",
		ErrDailyBudgetExhausted, e.Priority, e.Until.Format(time.RFC3339), e.Reason)
}

// Is makes errors.Is(err, ErrDailyBudgetExhausted) true.
func (e *ExhaustedError) Is(target error) bool { return target == ErrDailyBudgetExhausted }

// Stats is a snapshot of a Limiter's counters, for metrics and summaries.
type Stats struct {
	Granted [numPriorities]int64         // Waits granted, by priority
	Waited  [numPriorities]time.Duration // total time granted Waits waited, by priority
	Refused [numPriorities]int64         // Waits failed with ErrDailyBudgetExhausted, by priority
	// Throttled is the number of 429 answers observed; Pauses the number of
	// times a 429 made every waiter pause (or pause longer).
	Throttled, Pauses int64
	// Limit is the per-minute rate currently paced to (before Headroom);
	// ServerLimit the last X-RateLimit-Limit seen (0: none).
	Limit, ServerLimit int
	PausedUntil        time.Time // zero or past: not paused
	DayUsed            int       // requests granted today
	DayResets          time.Time // when the daily count resets
}

// Limiter is the request budget shared by every API call. It implements
// cekat.Limiter and is safe for concurrent use.
type Limiter struct {
	opts         Options
	now          func() time.Time
	afterFunc    func(time.Duration, func()) stopper
	purgeReserve int // requests of the day only purge may spend; 0: none
	recoverStep  int // per-minute rate regained each minute after a cut

	mu        sync.Mutex
	queues    [numPriorities][]*waiter
	queued    int
	timer     stopper
	timerAt   time.Time
	timerGen  uint64
	lastGrant time.Time // the last grant (zero before the first): the pace counts from it

	srvLimit   int       // X-RateLimit-Limit, 0 = unknown
	srvReset   time.Time // end of the server's current window, zero = unknown
	srvAllow   int       // requests that may still be sent before srvReset
	srvSeen    time.Time // when srvAllow was last derived from an answer
	pauseUntil time.Time
	pauseWhy   string
	cutLimit   int // per-minute rate after the last 429, 0 = none
	cutAt      time.Time

	inflight    []time.Time   // grants not yet answered, oldest first
	recent      secondBuckets // grants of the last minute, for Remaining
	history     []time.Time   // grants of the last two minutes, to place the server's windows
	maxRemain   int           // the largest X-RateLimit-Remaining seen
	unaligned   bool          // a window of the server was seen to start off the minute
	day         time.Time     // start of the current day
	nextDay     time.Time
	dayUsed     [2]int // [0] all but purge, [1] purge
	purgeCredit float64

	stats Stats
}

var _ cekat.Limiter = (*Limiter)(nil)

type stopper interface{ Stop() bool }

type waiter struct {
	p     Priority
	since time.Time
	ch    chan error // receives nil (granted) or the refusal, once
	done  bool       // granted or refused (under Limiter.mu)
	// set at grant, for a refund when the caller gave up meanwhile
	at, prev time.Time
	class    int
	srvAlloc bool
}

// A grant older than this that was never answered no longer counts as in
// flight (the client's own timeout is 30 s by default).
const inflightTTL = 5 * time.Minute

// The grants remembered to place the server's windows: those of the last
// two minutes (a window is one), at most maxHistory.
const (
	historyAge = 2 * time.Minute
	maxHistory = 1 << 14
)

// New returns a Limiter. It fails only on invalid options.
func New(opts Options) (*Limiter, error) {
	switch {
	case opts.PerMinute < 0:
		return nil, fmt.Errorf("budget: PerMinute must not be negative, got %d", opts.PerMinute)
	case opts.PerDay < 0:
		return nil, fmt.Errorf("budget: PerDay must not be negative, got %d", opts.PerDay)
	case opts.UsedToday < 0:
		return nil, fmt.Errorf("budget: UsedToday must not be negative, got %d", opts.UsedToday)
	case opts.PurgeShare >= 1 || math.IsNaN(opts.PurgeShare):
		return nil, fmt.Errorf("budget: PurgeShare must be below 1, got %v", opts.PurgeShare)
	case opts.Headroom < 0 || opts.Headroom > 0.5 || math.IsNaN(opts.Headroom):
		return nil, fmt.Errorf("budget: Headroom must be within [0, 0.5], got %v", opts.Headroom)
	}
	if opts.PerMinute == 0 {
		opts.PerMinute = DefaultPerMinute
	}
	if opts.PurgeShare == 0 {
		opts.PurgeShare = DefaultPurgeShare
	}
	if opts.PurgeShare < 0 {
		opts.PurgeShare = 0
	}
	if opts.Headroom == 0 {
		opts.Headroom = DefaultHeadroom
	}
	switch {
	case opts.ResetMargin == 0:
		opts.ResetMargin = DefaultResetMargin
	case opts.ResetMargin < 0:
		opts.ResetMargin = 0
	}
	if opts.ThrottlePause <= 0 {
		opts.ThrottlePause = DefaultThrottlePause
	}
	if opts.MaxPause <= 0 {
		opts.MaxPause = DefaultMaxPause
	}
	if opts.DayLocation == nil {
		opts.DayLocation = time.UTC
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	l := &Limiter{
		opts:        opts,
		now:         opts.Now,
		afterFunc:   func(d time.Duration, f func()) stopper { return time.AfterFunc(d, f) },
		recoverStep: max(1, int(math.Round(float64(opts.PerMinute)/50))),
	}
	if opts.PerDay > 0 && opts.PurgeShare > 0 {
		l.purgeReserve = min(int(math.Ceil(opts.PurgeShare*float64(opts.PerDay))), opts.PerDay)
	}
	l.rollDayLocked(l.now())
	l.dayUsed[0] = opts.UsedToday
	return l, nil
}

// Wait blocks until a request may be sent to endpoint, ranked by the
// priority in ctx. It returns ctx's error when ctx ends first, and at once an
// error wrapping ErrDailyBudgetExhausted when the budget is exhausted.
func (l *Limiter) Wait(ctx context.Context, endpoint string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p := priorityFor(ctx, endpoint)
	l.mu.Lock()
	now := l.now()
	l.rollDayLocked(now)
	if err := l.refusalLocked(p, now); err != nil {
		l.stats.Refused[p]++
		l.mu.Unlock()
		return err
	}
	w := &waiter{p: p, since: now, ch: make(chan error, 1)}
	if l.queued == 0 && !l.nextGrantLocked(now).After(now) {
		l.grantLocked(w, now)
		l.mu.Unlock()
		<-w.ch
		l.hook(p, 0)
		return nil
	}
	l.queues[p] = append(l.queues[p], w)
	l.queued++
	l.dispatchLocked(now)
	l.mu.Unlock()

	select {
	case err := <-w.ch:
		if err == nil {
			l.hook(p, w.at.Sub(w.since))
		}
		return err
	case <-ctx.Done():
	}
	l.mu.Lock()
	if !w.done {
		l.removeLocked(w)
		l.mu.Unlock()
		return ctx.Err()
	}
	err := <-w.ch
	if err == nil {
		l.refundLocked(w)
	}
	l.mu.Unlock()
	if err != nil {
		return err
	}
	return ctx.Err()
}

func (l *Limiter) hook(p Priority, waited time.Duration) {
	if l.opts.OnWait != nil {
		l.opts.OnWait(p, waited)
	}
}

func (l *Limiter) removeLocked(w *waiter) {
	q := l.queues[w.p]
	if i := slices.Index(q, w); i >= 0 {
		l.queues[w.p] = slices.Delete(q, i, i+1)
		l.queued--
	}
}

// refundLocked gives back a grant whose caller gave up before using it: the
// daily count, the in-flight entry, and the pacing slot when no grant came
// after it.
func (l *Limiter) refundLocked(w *waiter) {
	l.stats.Granted[w.p]--
	l.stats.Waited[w.p] -= w.at.Sub(w.since)
	if !w.at.Before(l.day) && l.dayUsed[w.class] > 0 {
		l.dayUsed[w.class]--
	}
	if i := slices.Index(l.inflight, w.at); i >= 0 {
		l.inflight = slices.Delete(l.inflight, i, i+1)
	}
	l.recent.add(w.at, -1)
	if i := slices.Index(l.history, w.at); i >= 0 {
		l.history = slices.Delete(l.history, i, i+1)
	}
	if l.lastGrant.Equal(w.at) {
		l.lastGrant = w.prev
		if w.srvAlloc {
			l.srvAllow++
		}
	}
	l.dispatchLocked(l.now())
}

func classOf(p Priority) int {
	if p == PriorityPurge {
		return 1
	}
	return 0
}

// dayBudgetLocked is the daily limit that applies to p and what was spent
// of it.
func (l *Limiter) dayBudgetLocked(p Priority) (limit, used int) {
	if l.purgeReserve == 0 {
		return l.opts.PerDay, l.dayUsed[0] + l.dayUsed[1]
	}
	if p == PriorityPurge {
		return l.purgeReserve, l.dayUsed[1]
	}
	return l.opts.PerDay - l.purgeReserve, l.dayUsed[0]
}

// refusalLocked is the error of a Wait that cannot be granted before a reset
// far ahead, or nil.
func (l *Limiter) refusalLocked(p Priority, now time.Time) error {
	if d := l.pauseUntil.Sub(now); d > l.opts.MaxPause {
		return &ExhaustedError{Priority: p, Until: l.pauseUntil, Reason: l.pauseWhy}
	}
	if end := l.srvReset.Add(l.opts.ResetMargin); l.srvAllow <= 0 && end.Sub(now) > l.opts.MaxPause {
		return &ExhaustedError{Priority: p, Until: end, Reason: "the server says no request is left before its reset"}
	}
	if l.opts.PerDay > 0 {
		if limit, used := l.dayBudgetLocked(p); used >= limit {
			what := "daily budget"
			if l.purgeReserve > 0 {
				what = "daily budget of other calls"
				if p == PriorityPurge {
					what = "daily purge share"
				}
			}
			return &ExhaustedError{Priority: p, Until: l.nextDay, Reason: fmt.Sprintf("%s of %d requests spent", what, limit)}
		}
	}
	return nil
}

func (l *Limiter) rollDayLocked(now time.Time) {
	if !now.Before(l.day) && now.Before(l.nextDay) {
		return
	}
	y, m, d := now.In(l.opts.DayLocation).Date()
	l.day = time.Date(y, m, d, 0, 0, 0, 0, l.opts.DayLocation)
	l.nextDay = time.Date(y, m, d+1, 0, 0, 0, 0, l.opts.DayLocation)
	l.dayUsed = [2]int{}
}

// limitLocked is the per-minute rate paced to: the configured one, lowered
// to the server's X-RateLimit-Limit and after a 429.
func (l *Limiter) limitLocked(now time.Time) int {
	limit := l.opts.PerMinute
	if l.srvLimit > 0 && l.srvLimit < limit {
		limit = l.srvLimit
	}
	if l.cutLimit > 0 {
		regained := l.cutLimit + int(now.Sub(l.cutAt)/time.Minute)*l.recoverStep
		if regained < limit {
			limit = regained
		}
	}
	return max(limit, 1)
}

func (l *Limiter) intervalLocked(now time.Time) time.Duration {
	return time.Duration(float64(time.Minute) * (1 + l.opts.Headroom) / float64(l.limitLocked(now)))
}

// srvValidLocked reports whether the server's window as last reported still
// governs what may be sent.
func (l *Limiter) srvValidLocked(now time.Time) bool {
	return !l.srvReset.IsZero() && now.Before(l.srvReset.Add(l.opts.ResetMargin))
}

// nextGrantLocked is the earliest time the next request may be sent.
func (l *Limiter) nextGrantLocked(now time.Time) time.Time {
	var at time.Time
	if !l.lastGrant.IsZero() {
		at = l.lastGrant.Add(l.intervalLocked(now))
	}
	if l.pauseUntil.After(at) {
		at = l.pauseUntil
	}
	if l.srvValidLocked(now) {
		end := l.srvReset.Add(l.opts.ResetMargin)
		if l.srvAllow <= 0 {
			at = later(at, end)
		} else {
			// Spread what is left over the time left, the last one a step
			// before the window ends. The step counts from the last grant,
			// not from the answer: answers come a round trip late.
			base := l.lastGrant
			if base.IsZero() {
				base = l.srvSeen
			}
			at = later(at, base.Add(end.Sub(base)/time.Duration(l.srvAllow+1)))
		}
	}
	return at
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// dispatchLocked hands out every slot that is due, refuses the waiters whose
// budget is exhausted, and arms the timer for the next slot.
func (l *Limiter) dispatchLocked(now time.Time) {
	l.rollDayLocked(now)
	for l.queued > 0 {
		for i := range l.queues {
			if len(l.queues[i]) == 0 {
				continue
			}
			if err := l.refusalLocked(Priority(i), now); err != nil {
				for _, w := range l.queues[i] {
					w.done = true
					w.ch <- err
					l.stats.Refused[i]++
				}
				l.queued -= len(l.queues[i])
				l.queues[i] = nil
			}
		}
		if l.queued == 0 {
			return
		}
		at := l.nextGrantLocked(now)
		if at.After(now) {
			l.armLocked(now, at)
			return
		}
		l.grantLocked(l.pickLocked(), now)
	}
}

// pickLocked takes the waiter that gets the next slot off its queue.
func (l *Limiter) pickLocked() *waiter {
	other := -1
	for i := range int(PriorityPurge) {
		if len(l.queues[i]) > 0 {
			other = i
			break
		}
	}
	purge := len(l.queues[PriorityPurge]) > 0
	take := other
	switch {
	case other < 0:
		take = int(PriorityPurge)
	case purge && l.opts.PurgeShare > 0:
		l.purgeCredit += l.opts.PurgeShare
		if l.purgeCredit >= 1-1e-9 {
			l.purgeCredit = max(l.purgeCredit-1, 0)
			take = int(PriorityPurge)
		}
	}
	w := l.queues[take][0]
	l.queues[take] = slices.Delete(l.queues[take], 0, 1)
	l.queued--
	return w
}

func (l *Limiter) grantLocked(w *waiter, now time.Time) {
	w.done, w.at, w.prev, w.class = true, now, l.lastGrant, classOf(w.p)
	if l.srvValidLocked(now) {
		l.srvAllow--
		w.srvAlloc = true
	}
	l.lastGrant = now
	l.dayUsed[w.class]++
	l.pruneLocked(now)
	l.inflight = append(l.inflight, now)
	l.recent.add(now, 1)
	l.history = append(l.history, now)
	l.stats.Granted[w.p]++
	l.stats.Waited[w.p] += now.Sub(w.since)
	w.ch <- nil
}

func (l *Limiter) pruneLocked(now time.Time) {
	i := 0
	for i < len(l.inflight) && now.Sub(l.inflight[i]) > inflightTTL {
		i++
	}
	l.inflight = l.inflight[i:]
	i = 0
	for i < len(l.history) && (now.Sub(l.history[i]) >= historyAge || len(l.history)-i > maxHistory) {
		i++
	}
	l.history = l.history[i:]
}

func (l *Limiter) armLocked(now, at time.Time) {
	if l.timer != nil {
		if !l.timerAt.After(at) {
			return // an earlier dispatch is due anyway and will re-arm
		}
		l.timer.Stop()
	}
	l.timerGen++
	gen := l.timerGen
	l.timerAt = at
	l.timer = l.afterFunc(at.Sub(now), func() { l.onTimer(gen) })
}

func (l *Limiter) onTimer(gen uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if gen == l.timerGen {
		l.timer = nil
	}
	l.dispatchLocked(l.now())
}

// Observe adapts the limiter to an answer: X-RateLimit-Limit lowers the
// pace, X-RateLimit-Remaining bounds what is sent before the end of the
// server's window (X-RateLimit-Reset, else inferred from the counts), and a
// 429 pauses every waiter. status 0 (no answer) only
// ends the request's in-flight count.
func (l *Limiter) Observe(endpoint string, status int, h http.Header) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	l.pruneLocked(now)
	sent := now // when the answered request was sent: the oldest in flight
	if len(l.inflight) > 0 {
		sent = l.inflight[0]
		l.inflight = l.inflight[1:]
	}
	if h == nil {
		h = http.Header{}
	}
	if status == 0 {
		return
	}
	others := len(l.inflight) // sent before this answer came, maybe not yet counted by the server
	if n, ok := headerInt(h, "X-RateLimit-Limit"); ok && n > 0 {
		l.srvLimit = n
	}
	reset, hasReset := parseReset(h.Get("X-RateLimit-Reset"), now)
	remaining, hasRemaining := headerInt(h, "X-RateLimit-Remaining")

	if status == http.StatusTooManyRequests {
		l.stats.Throttled++
		d, ok := cekat.RetryAfter(h, now)
		if !ok {
			d = l.opts.ThrottlePause
		}
		if !now.Before(l.pauseUntil) {
			// A new episode, not the echo of one already paused for:
			// the server allows less than thought.
			l.cutLimit = max(1, l.limitLocked(now)*4/5)
			l.cutAt = now
		}
		if until := now.Add(d); until.After(l.pauseUntil) {
			l.pauseUntil = until
			l.pauseWhy = fmt.Sprintf("the server answered %s %d and asked to wait %s", endpoint, status, d.Round(time.Second))
			l.stats.Pauses++
		}
		if hasReset && reset.After(now) && !reset.Before(l.srvReset) {
			l.srvReset, l.srvAllow, l.srvSeen = reset, 0, now
		}
	} else if hasRemaining {
		l.maxRemain = max(l.maxRemain, remaining)
		if !hasReset {
			// The server does not say when its window ends: infer it.
			reset = l.windowStartLocked(sent, remaining).Add(time.Minute)
		}
		if reset.After(now) {
			derived := remaining - others
			switch {
			case l.srvValidLocked(now) && absDuration(reset.Sub(l.srvReset)) <= time.Second:
				// The same window: both figures are lower bounds of what is
				// left, the larger is the better one.
				l.srvAllow = max(l.srvAllow, derived)
				l.srvSeen = now
			case !l.srvValidLocked(now) || reset.After(l.srvReset):
				l.srvReset, l.srvAllow, l.srvSeen = reset, derived, now
			}
			// An answer about an earlier window came late: ignored.
		}
	}
	l.dispatchLocked(now)
}

// windowStartLocked estimates when the server's current window started,
// from an answer that says how many requests are left in it but not when it
// ends. The server counted limit - remaining requests in the window, the
// answered one (sent at sent) the last of them. Matched against this
// limiter's own grants, the window started after the grant that many places
// back and no later than the next one: a new window (Remaining jumping back
// up) started between the previous grant and this one. Fixed windows of
// clock minutes are the common case, so a minute boundary within that span
// is taken as the start, unless a window was seen to start off the minute
// (no boundary within the span, or a window outlasting its clock minute).
// Otherwise the latest start possible is taken, so that the window is never
// thought to end before it does; a server whose window starts at the first
// request after the previous window ended starts it there.
func (l *Limiter) windowStartLocked(sent time.Time, remaining int) time.Time {
	limit := l.srvLimit
	if limit <= 0 {
		// Right after its window started the server says limit-1 are left:
		// the largest figure seen is at most that, and a lower limit only
		// moves the estimate later.
		limit = l.maxRemain + 1
	}
	used := max(limit-remaining, 1)
	k, found := slices.BinarySearchFunc(l.history, sent, func(a, b time.Time) int { return a.Compare(b) })
	if !found {
		k-- // the last grant before sent
	}
	hi := sent // the latest possible start
	var lo time.Time
	if k >= 0 && k-used+1 >= 0 {
		hi = l.history[k-used+1]
		if k-used >= 0 {
			lo = l.history[k-used]
		}
	}
	m := hi.Truncate(time.Minute)
	if (!lo.IsZero() && !m.After(lo)) || !m.Add(time.Minute).After(sent) {
		l.unaligned = true
	}
	if l.unaligned {
		return hi
	}
	return m
}

func absDuration(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

// Remaining is what may still be sent: in the current minute (the server's
// X-RateLimit-Remaining as tracked, else the pace's rate less the grants of
// the last minute; 0 while paused) and today (-1 without a daily cap; 0
// while the server's pause runs past MaxPause).
func (l *Limiter) Remaining() (minute, day int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	l.rollDayLocked(now)
	l.pruneLocked(now)
	minute = max(l.limitLocked(now)-l.recent.count(now), 0)
	if l.srvValidLocked(now) {
		minute = min(minute, max(l.srvAllow, 0))
	}
	if now.Before(l.pauseUntil) {
		minute = 0
	}
	day = -1
	if l.opts.PerDay > 0 {
		day = max(l.opts.PerDay-l.dayUsed[0]-l.dayUsed[1], 0)
	}
	if l.pauseUntil.Sub(now) > l.opts.MaxPause || (l.srvAllow <= 0 && l.srvReset.Sub(now) > l.opts.MaxPause) {
		day = 0
	}
	return minute, day
}

// Spare says how many requests the enrichment backlog may take now: the
// day's budget (less purge's part) not spent yet, less listingPerRun for
// each run that starts before midnight (Pace.RunEvery) and one more, and
// Pace.ReservePerHour for each hour left; share is this run's part of it,
// spread evenly over the runs left, this one included. Both are -1 without
// a daily cap, 0 when the server's own cap ended the day.
func (l *Limiter) Spare(listingPerRun int) (free, share int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	l.rollDayLocked(now)
	if l.opts.PerDay <= 0 {
		return -1, -1
	}
	if l.refusalLocked(PriorityEnrich, now) != nil {
		return 0, 0
	}
	limit, used := l.dayBudgetLocked(PriorityEnrich)
	left := l.nextDay.Sub(now)
	runs, kept := 0, 0
	if l.opts.Pace.RunEvery > 0 {
		// One run's listing more than the runs left: a run lists more
		// than the estimate now and then, and the last run of the day
		// must not find the day spent.
		runs = int(left / l.opts.Pace.RunEvery)
		kept = runs + 1
	}
	hours := int(math.Ceil(left.Hours()))
	free = max(limit-used-max(listingPerRun, 0)*kept-max(l.opts.Pace.ReservePerHour, 0)*hours, 0)
	share = (free + runs) / (runs + 1) // rounded up
	return free, share
}

// BacklogPerDay is what a whole day of the cap leaves for the enrichment
// backlog beyond listingPerRun requests a run (Pace.RunEvery; one run a day
// when unknown) and the hourly reserve: -1 without a daily cap.
func (l *Limiter) BacklogPerDay(listingPerRun int) int {
	if l.opts.PerDay <= 0 {
		return -1
	}
	limit := l.opts.PerDay - l.purgeReserve
	runs := 1
	if l.opts.Pace.RunEvery > 0 {
		runs = int((24*time.Hour + l.opts.Pace.RunEvery - 1) / l.opts.Pace.RunEvery)
	}
	return max(limit-max(listingPerRun, 0)*runs-24*max(l.opts.Pace.ReservePerHour, 0), 0)
}

// Stats returns a snapshot of the counters.
func (l *Limiter) Stats() Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	l.rollDayLocked(now)
	s := l.stats
	s.Limit = l.limitLocked(now)
	s.ServerLimit = l.srvLimit
	if now.Before(l.pauseUntil) {
		s.PausedUntil = l.pauseUntil
	}
	s.DayUsed = l.dayUsed[0] + l.dayUsed[1]
	s.DayResets = l.nextDay
	return s
}
