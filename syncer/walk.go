package syncer

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/cekat-archiver/cekat-archiver/sink"
	"github.com/cekat-archiver/cekat-archiver/syncer/budget"
	"github.com/cekat-archiver/cekat-archiver/syncer/cekat"
)

// convSync is the sync of one conversation within a run: walks from the
// top down to the head, then the gaps, newest first; pages enriched newest
// first and written in groups, the cursor moving behind each group; pages
// looked up in the archive only where they can hold rows the state does not
// account for. The rules and their reasons: docs/design.md, "How a sync
// works".
type convSync struct {
	e        *Engine
	r        *run
	st       sink.State
	version  uint64
	head     *cekat.Message // the newest message a walk from the top found
	fresh    int64          // messages archived by this run
	history  bool           // the walk goes to the start of the history (see enrichKind)
	upstream int64          // messages found above the stop, archived before or not
	deadline time.Time      // backfill pauses when it passes
}

// syncTop archives a conversation's new messages: it walks from the top
// down to the head. A conversation never synced gets only its newest page
// here; the rest of its history becomes the gap the backfill phase fills.
func (e *Engine) syncTop(ctx context.Context, r *run, st sink.State) (sink.State, error) {
	now := e.opts.Now().UTC()
	st.LastAttemptAt = now
	c := &convSync{e: e, r: r, st: st, version: st.Version}
	ctx = budget.WithPriority(ctx, budget.PriorityNew)
	// A conversation never synced has only history above its stop.
	c.history = st.HeadMessageID == ""
	err := c.walkTop(ctx)
	// A gap that stops at an earlier head was left by an interrupted walk
	// from the top: it holds new messages, not old history, so it is filled
	// now rather than with the backfill. The gap to the start of the
	// history, if any, is always the last.
	c.history = false
	for err == nil && len(c.st.Gaps) > 0 && c.st.Gaps[0].Stop != "" {
		err = c.fillGap(ctx)
	}
	switch {
	case err == nil:
		c.st.Gone = false
		c.st.LastSuccessAt = now
		c.st.LastError = ""
		if c.head != nil {
			e.heads.note(c.st.ConversationID, *c.head)
		}
		if c.upstream == 0 {
			c.st.IdleRuns++
		} else {
			c.st.IdleRuns = 0
		}
		c.st.NextDueAt = now.Add(e.pollDelay(c.st.IdleRuns))
		return c.st, c.saveState(ctx)
	case cekat.IsNotFound(err) && ctx.Err() == nil:
		c.st.Gone = true
		c.st.LastError = "conversation not found upstream (HTTP 404)"
		c.st.NextDueAt = now.Add(e.opts.GoneRetry)
		r.progress.Gone.Add(1)
		r.noteError(c.st.ConversationID, errors.New(c.st.LastError))
		return c.st, c.saveState(ctx)
	}
	return c.st, c.failed(ctx, err)
}

// fillGaps works on a conversation's gaps, newest first, until they are
// filled or the deadline passes; what is left waits for the next run.
func (e *Engine) fillGaps(ctx context.Context, r *run, st sink.State, deadline time.Time) (sink.State, error) {
	c := &convSync{e: e, r: r, st: st, version: st.Version, deadline: deadline}
	ctx = budget.WithPriority(ctx, budget.PriorityBackfill)
	var err error
	for err == nil && len(c.st.Gaps) > 0 {
		if c.st.Gaps[0].Stop == "" && !c.r.spend() {
			break // the history's first page too is paid from the allowance
		}
		err = c.fillGap(ctx)
	}
	if err == nil || errors.Is(err, errPaused) {
		return c.st, nil
	}
	return c.st, c.failed(ctx, err)
}

// failed records a failure in the state, unless nothing can be saved or
// the run is stopping: then the state saved after the last group stands.
func (c *convSync) failed(ctx context.Context, err error) error {
	if stopsRun(err) || ctx.Err() != nil {
		return err
	}
	c.st.LastError = truncateError(err.Error())
	if serr := c.saveState(ctx); serr != nil {
		return serr
	}
	return err
}

// errPaused ends a walk that reached its page limit or deadline; the
// state already records where to go on.
var errPaused = errors.New("walk paused")

func (c *convSync) walkTop(ctx context.Context) error {
	stop := c.st.HeadMessageID
	first := true
	conv := c.st.ConversationID
	reach := 0 // below the newest page, the stretch above the head is new ground
	if c.r.looksUpAll(conv) {
		reach = math.MaxInt
	}
	err := c.walk(ctx, "", stop, nil, reach, c.st.HeadSentAt, func(p *cekat.Page, own []cekat.Message, cursor string, done bool) {
		switch {
		case first:
			first = false
			if n := len(own); n > 0 {
				c.st.HeadMessageID = own[n-1].ID
				c.st.HeadSentAt = own[n-1].Timestamp
				c.head = &own[n-1]
			}
			if !done {
				if stop == "" {
					// A walk to the start of the history covers any older one
					// (possible only if no page ever gave a decodable message).
					n := len(c.st.Gaps)
					c.st.Gaps = slices.DeleteFunc(c.st.Gaps, func(g sink.Gap) bool { return g.Stop == "" })
					if len(c.st.Gaps) < n {
						c.r.lookUpAll(conv)
					}
				}
				c.st.Gaps = append([]sink.Gap{{Before: cursor, Stop: stop}}, c.st.Gaps...)
			}
		case done:
			c.st.Gaps = c.st.Gaps[1:]
		default:
			c.st.Gaps[0].Before = cursor
		}
		if done && (stop == "" || !p.Paginated) {
			c.finishBackfill(p)
		}
	}, func() bool {
		// Below the newest page, a first sync is backfill.
		return stop == ""
	})
	if errors.Is(err, errPaused) {
		return nil
	}
	return err
}

func (c *convSync) fillGap(ctx context.Context) error {
	g := c.st.Gaps[0]
	c.history = g.Stop == ""
	previous, reach := c.lookupFrom(g)
	return c.walk(ctx, g.Before, g.Stop, previous, reach, time.Time{}, func(p *cekat.Page, _ []cekat.Message, cursor string, done bool) {
		if !done {
			c.st.Gaps[0].Before = cursor
			return
		}
		c.st.Gaps = c.st.Gaps[1:]
		if g.Stop == "" || !p.Paginated {
			c.finishBackfill(p)
		}
	}, func() bool {
		// Under a daily cap the history's pages are paid from the run's
		// allowance: the listing of later runs' new messages is kept.
		return (!c.deadline.IsZero() && !c.e.opts.Now().Before(c.deadline)) || (c.history && !c.r.spend())
	})
}

// maxListPage is the most records a list page holds (the engine asks for
// at most 100).
const maxListPage = 100

// lookupFrom says how a walk of gap g looks up archived ids (see convSync):
// for how many records from its cursor, and which ids its first page may
// show again without paying for them.
func (c *convSync) lookupFrom(g sink.Gap) (previous map[string]bool, reach int) {
	conv := c.st.ConversationID
	end, ours := c.r.walkEnded(conv)
	ours = ours && end.before == g.Before
	switch {
	case c.r.looksUpAll(conv) || g.Stop != "":
		reach = math.MaxInt
	case ours:
		reach = 0
	default:
		reach = maxListPage
	}
	if ours {
		previous = end.ids
	}
	return previous, reach
}

// finishBackfill records that the start of the history was reached. An
// answer without pagination held the whole history, so no gap is left.
func (c *convSync) finishBackfill(p *cekat.Page) {
	c.st.BackfillComplete = true
	if !p.Paginated {
		c.st.Gaps = nil
	}
}

// stepFunc moves the state after messages of a page were archived: cursor
// is where listing goes on (the page's before cursor once the page is done,
// else the oldest message archived so far), done says the walk reached its
// end. own is the page's messages of this conversation, oldest first.
type stepFunc func(p *cekat.Page, own []cekat.Message, cursor string, done bool)

// walk pages back from before ("" for the newest page) until it meets the
// message stop, or the start of the history when stop is empty. Each group
// of archived messages is queued, then step updates the state, which is
// queued behind them.
//
// previous holds ids the first page may show again that are archived
// already. Pages starting within reach records of before are looked up in
// the archive, and so is each page after one whose lookup found archived
// rows, and every page from the first with a message not sent after head
// (zero: none); the others are taken as holding none (see convSync).
//
// pause is asked before each further page; when it says so, the walk ends
// with errPaused.
func (c *convSync) walk(ctx context.Context, before, stop string, previous map[string]bool, reach int, head time.Time,
	step stepFunc, pause func() bool) error {
	conv := c.st.ConversationID
	cursor := before
	// Cursors asked for in this walk: one seen again is a cycle, of any
	// length, that would page forever.
	asked := map[string]bool{cursor: true}
	top := before == ""
	listed := 0     // records of the pages before this one
	found := false  // the last lookup found archived rows not written by this walk
	passed := false // a page reached back to the head's time
	for pages := 1; ; pages++ {
		c.e.listCalls.Add(1)
		page, err := c.e.api.ListMessages(ctx, conv, c.e.opts.PageSize, cursor)
		if err != nil {
			return err
		}
		own, err := c.quarantineForeign(ctx, page)
		if err != nil {
			return err
		}
		fresh, bad, reached := splitAtStop(page, own, stop)
		if err := c.quarantine(ctx, cekat.EndpointList, bad); err != nil {
			return err
		}
		done := reached || !page.Paginated || !page.HasMore
		// Until the page is done, its cursor is not a page's end.
		c.r.endWalk(conv, walkEnd{})
		passed = passed || (!head.IsZero() && slices.ContainsFunc(fresh, func(m cekat.Message) bool { return !m.Timestamp.After(head) }))
		var archived map[string]sink.ArchivedMessage
		switch {
		case top && pages == 1:
			// The newest page shows the statuses of its messages (flat shape):
			// they refresh the archive's for free.
			if archived, err = c.refreshFromList(ctx, own); err != nil {
				return err
			}
			found = foundArchived(fresh, previous, archived)
		case listed < reach || found || passed:
			if archived, err = c.lookupArchived(ctx, fresh, previous); err != nil {
				return err
			}
			found = foundArchived(fresh, previous, archived)
		default:
			archived = map[string]sink.ArchivedMessage{}
		}
		listed += len(page.Messages) + len(page.Bad)
		err = c.archivePage(ctx, fresh, previous, archived, func(oldest string) error {
			step(page, own, oldest, false)
			return c.saveState(ctx)
		})
		if err != nil {
			return err
		}
		if !done {
			switch {
			case page.Before == "":
				return fmt.Errorf("list %s: the answer says there is more but gives no before cursor", conv)
			case asked[page.Before]:
				return fmt.Errorf("list %s: cursor cycle: before=%q was already asked for in this walk (%d pages); the API pages in a circle",
					conv, page.Before, pages)
			}
		}
		step(page, own, page.Before, done)
		if err := c.saveState(ctx); err != nil {
			return err
		}
		if done {
			return nil
		}
		// Whether before is exclusive is undocumented: the cursor message
		// may come again on the next page, and its row may still be in the
		// writer's buffer where Archived cannot see it.
		previous = make(map[string]bool, len(own))
		for _, m := range own {
			previous[m.ID] = true
		}
		c.r.endWalk(conv, walkEnd{before: page.Before, ids: edgeIDs(own, page.Before)})
		if pause() {
			return errPaused
		}
		cursor = page.Before
		asked[cursor] = true
	}
}

// edgeIDs returns the ids of a page that its next page may show again: the
// cursor (the oldest message's id) and any message sent at the same time as
// the oldest, should a server page by time. A paused walk keeps only these
// until it resumes, not the whole page: a first sync pauses every
// conversation after its newest page, and 800 whole pages of ids were a
// third of the live heap.
func edgeIDs(own []cekat.Message, before string) map[string]bool {
	ids := map[string]bool{before: true}
	var oldest time.Time
	for _, m := range own {
		if oldest.IsZero() || m.Timestamp.Before(oldest) {
			oldest = m.Timestamp
		}
	}
	for _, m := range own {
		if m.Timestamp.Equal(oldest) {
			ids[m.ID] = true
		}
	}
	return ids
}

// lookupArchived asks the archive which of msgs, other than those in
// previous, are archived. A run killed after its rows were stored but before
// its state was leaves rows the state does not know of: they are not paid
// for twice.
func (c *convSync) lookupArchived(ctx context.Context, msgs []cekat.Message, previous map[string]bool) (map[string]sink.ArchivedMessage, error) {
	var ids []string
	for _, m := range msgs {
		if !previous[m.ID] {
			ids = append(ids, m.ID)
		}
	}
	if len(ids) == 0 {
		return map[string]sink.ArchivedMessage{}, nil
	}
	archived, err := c.e.store.Archived(ctx, c.st.ConversationID, ids)
	if err != nil {
		return nil, storeErr(fmt.Errorf("look up archived messages: %w", err))
	}
	return archived, nil
}

// foundArchived says whether archived holds any of msgs not in previous.
func foundArchived(msgs []cekat.Message, previous map[string]bool, archived map[string]sink.ArchivedMessage) bool {
	for _, m := range msgs {
		if _, ok := archived[m.ID]; ok && !previous[m.ID] {
			return true
		}
	}
	return false
}

// quarantineForeign returns the page's messages that belong to the
// conversation asked for; the others are quarantined, not filed under the
// wrong conversation.
func (c *convSync) quarantineForeign(ctx context.Context, p *cekat.Page) ([]cekat.Message, error) {
	conv := c.st.ConversationID
	if !slices.ContainsFunc(p.Messages, func(m cekat.Message) bool { return m.ConversationID != "" && m.ConversationID != conv }) {
		return p.Messages, nil // the usual page: no copy
	}
	var foreign []*cekat.DecodeError
	own := make([]cekat.Message, 0, len(p.Messages))
	for _, m := range p.Messages {
		if m.ConversationID != "" && m.ConversationID != conv {
			foreign = append(foreign, &cekat.DecodeError{ID: m.ID, Raw: m.Raw,
				Err: fmt.Errorf("listed under conversation %q but belongs to %q", conv, m.ConversationID)})
			continue
		}
		own = append(own, m)
	}
	return own, c.quarantine(ctx, cekat.EndpointList, foreign)
}

func (c *convSync) quarantine(ctx context.Context, endpoint string, bad []*cekat.DecodeError) error {
	if len(bad) == 0 {
		return nil
	}
	conv := c.st.ConversationID
	now := c.e.opts.Now().UTC()
	rows := make([]sink.QuarantineRow, 0, len(bad))
	for _, b := range bad {
		rows = append(rows, sink.QuarantineRow{ReceivedAt: now, RunID: c.r.id, Endpoint: endpoint,
			ConversationID: conv, MessageID: b.ID, Error: b.Error(), Raw: string(b.Raw)})
	}
	return c.r.addQuarantine(ctx, c.e, conv, rows)
}

// splitAtStop returns the messages and bad records of the page newer than
// the message stop, and whether stop was in the page. own is the page's
// messages of this conversation; pages are oldest first.
func splitAtStop(p *cekat.Page, own []cekat.Message, stop string) ([]cekat.Message, []*cekat.DecodeError, bool) {
	if stop == "" {
		return own, p.Bad, false
	}
	k := slices.IndexFunc(own, func(m cekat.Message) bool { return m.ID == stop })
	if k < 0 {
		return own, p.Bad, false
	}
	// Position of the stop message in the answer, counting bad records.
	pos := slices.IndexFunc(p.Messages, func(m cekat.Message) bool { return m.ID == stop })
	for _, b := range p.Bad {
		if b.Index > pos {
			break
		}
		pos++
	}
	var bad []*cekat.DecodeError
	for _, b := range p.Bad {
		if b.Index > pos {
			bad = append(bad, b)
		}
	}
	return own[k+1:], bad, true
}

// groupSize is how many enriched messages are written together: small
// enough that a stop loses little, large enough that states stay few.
const groupSize = 10

// archivePage archives msgs (oldest first) newest first: those not archived
// yet are enriched, and written in groups as they complete; after each
// group, commit is called with the oldest message of the unbroken run from
// the newest archived so far. archived tells which of msgs are archived.
//
// When it fails or the run stops, what completed is still written (rows
// beyond the unbroken run too: the next run finds them archived and does not
// pay again), and the error is returned as it came.
func (c *convSync) archivePage(ctx context.Context, msgs []cekat.Message, previous map[string]bool,
	archived map[string]sink.ArchivedMessage, commit func(oldest string) error) error {
	if len(msgs) == 0 {
		return nil
	}
	conv := c.st.ConversationID
	// Activity is what arrived upstream, even if a killed run archived it.
	c.upstream += int64(len(msgs))
	now := c.e.opts.Now().UTC()
	order := make([]cekat.Message, 0, len(msgs)) // newest first
	pending := make([]bool, len(msgs))           // true: to enrich
	seen := make(map[string]bool, len(msgs))
	var todo []int
	var requeue []sink.StatusCheck
	for i := len(msgs) - 1; i >= 0; i-- {
		m := msgs[i]
		k := len(order)
		order = append(order, m)
		switch a, isArchived := archived[m.ID]; {
		case previous[m.ID] || seen[m.ID]:
		case isArchived:
			// Left by a killed run, maybe before its schedule entry was
			// stored: put it back on the schedule, due now.
			switch {
			case !a.Enriched && c.r.capped():
				requeue = append(requeue, sink.StatusCheck{ConversationID: conv, MessageID: m.ID, SentAt: m.Timestamp,
					Until: now.Add(backlogFor), CheckedAt: m.Timestamp, NextCheckAt: now, Open: true,
					Kind: c.enrichKind(m, now), Version: uint64(now.UnixNano())})
			case c.e.opts.RecheckWindow > 0 && (!a.Enriched || !finalStatus(a.Status)):
				requeue = append(requeue, sink.StatusCheck{ConversationID: conv, MessageID: m.ID, SentAt: m.Timestamp,
					Until: m.Timestamp.Add(c.e.opts.RecheckWindow), CheckedAt: m.Timestamp, NextCheckAt: now, Open: true,
					Version: uint64(now.UnixNano())})
			}
		default:
			pending[k] = true
			todo = append(todo, k)
		}
		seen[m.ID] = true
	}
	c.r.progress.Found.Add(int64(len(todo)))
	if len(requeue) > 0 {
		if err := c.e.store.AddChecks(ctx, requeue...); err != nil {
			return storeErr(err)
		}
	}

	w := &pageWriter{c: c, order: order, pending: pending, commit: commit}
	// Under a daily cap, what the run cannot enrich now is archived from
	// its list item at once and waits on the backlog.
	inline := todo[:0]
	for _, k := range todo {
		if _, ok := c.r.fetched[order[k].ID]; ok || c.enrichNow(order[k]) {
			inline = append(inline, k)
			continue
		}
		row, chk := c.waitingRow(order[k])
		if err := w.done(ctx, k, row, nil, chk); err != nil {
			return err
		}
	}
	err := c.e.enrichEach(ctx, c.r, conv, order, inline, w.done)
	// What completed is written even when the walk stops here.
	if werr := w.flush(ctx); werr != nil && (err == nil || !stopsRun(err)) {
		return werr
	}
	return err
}

// pageWriter writes a page's enriched messages in groups, in the order of
// the walk (newest first), and moves the walk's cursor behind them.
type pageWriter struct {
	c       *convSync
	order   []cekat.Message // newest first
	pending []bool          // not yet enriched
	commit  func(oldest string) error
	rows    []sink.MessageRow
	quar    []sink.QuarantineRow
	checks  []sink.StatusCheck
	next    int // first index of order not in the unbroken run from the newest
	written int // how much of that run the cursor already covers
}

// done takes one enriched message, by its index in order.
func (w *pageWriter) done(ctx context.Context, k int, row sink.MessageRow, q *sink.QuarantineRow, chk *sink.StatusCheck) error {
	w.pending[k] = false
	w.rows = append(w.rows, row)
	if q != nil {
		w.quar = append(w.quar, *q)
	}
	if chk != nil {
		w.checks = append(w.checks, *chk)
	}
	if len(w.rows) >= groupSize {
		return w.flush(ctx)
	}
	return nil
}

// flush queues the finished rows, then their schedule entries, then moves
// the cursor when the unbroken run grew. A whole page done is the caller's
// step, with the page's own cursor. Writes go on when the run is stopping:
// what was paid for is kept.
func (w *pageWriter) flush(ctx context.Context) error {
	ctx = context.WithoutCancel(ctx)
	c := w.c
	if len(w.rows) > 0 {
		if len(w.quar) > 0 {
			if err := c.r.addQuarantine(ctx, c.e, c.st.ConversationID, w.quar); err != nil {
				return err
			}
		}
		if err := c.e.store.AddMessages(ctx, w.rows...); err != nil {
			return storeErr(err)
		}
		if len(w.checks) > 0 {
			if err := c.e.store.AddChecks(ctx, w.checks...); err != nil {
				return storeErr(err)
			}
		}
		c.fresh += int64(len(w.rows))
		count(&c.r.progress.NewMessages, c.e.opts.Metrics.archived, int64(len(w.rows)))
		// The archive copied them: the group's slices are reused.
		w.rows, w.quar, w.checks = w.rows[:0], w.quar[:0], w.checks[:0]
	}
	for w.next < len(w.order) && !w.pending[w.next] {
		w.next++
	}
	if w.next > w.written && w.next < len(w.order) {
		w.written = w.next
		return w.commit(w.order[w.next-1].ID)
	}
	return nil
}

// enrichEach fetches the detail of order[k] for each k in todo, newest
// first, with the run's bounded detail concurrency, and hands each result to
// done as it completes. An answer that arrives after the walk was told to
// stop is still handed over: it was paid for.
func (e *Engine) enrichEach(ctx context.Context, r *run, conv string, order []cekat.Message, todo []int,
	done func(ctx context.Context, k int, row sink.MessageRow, q *sink.QuarantineRow, chk *sink.StatusCheck) error) error {
	if len(todo) == 0 {
		return nil
	}
	// New messages are listed first, then enriched; backfill stays backfill.
	if p, _ := budget.PriorityFrom(ctx); p == budget.PriorityNew {
		ctx = budget.WithPriority(ctx, budget.PriorityEnrich)
	}
	type result struct {
		k   int
		d   *cekat.Message
		err error
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// A call in flight ends early only when the run is told to stop: when a
	// failing archive ends the walk, its answer is still paid for, and the
	// archive's spool takes it.
	calls, endCalls := context.WithCancel(context.WithoutCancel(ctx))
	defer endCalls()
	defer context.AfterFunc(r.stopped, endCalls)()
	results := make(chan result)
	var stopErr error
	take := func(res result) {
		row, q, chk, err := e.enrichedRow(ctx, r, conv, order[res.k], res.d, res.err)
		if err == nil {
			err = done(ctx, res.k, row, q, chk)
		}
		if err != nil && stopErr == nil {
			stopErr = err
			cancel() // no new calls; failures after a stop are dropped
		}
	}
	// Details fetched just before the run are used as they are.
	rest := todo[:0:0]
	for _, k := range todo {
		if d, ok := r.fetched[order[k].ID]; ok && stopErr == nil {
			take(result{k: k, d: &d})
			continue
		}
		rest = append(rest, k)
	}
	todo = rest
	next, inflight := 0, 0
	for (stopErr == nil && next < len(todo)) || inflight > 0 {
		if stopErr == nil && next < len(todo) {
			k := todo[next]
			select {
			case r.calls.work <- func() {
				d, err := e.api.GetMessage(calls, order[k].ID)
				if err != nil {
					results <- result{k: k, err: err}
					return
				}
				results <- result{k: k, d: &d}
			}:
				next++
				inflight++
			case res := <-results:
				inflight--
				take(res)
			case <-ctx.Done():
				stopErr = ctx.Err()
			}
			continue
		}
		res := <-results
		inflight--
		take(res)
	}
	return stopErr
}

// enrichedRow turns a detail answer (or its failure) into the message's row,
// its quarantine record and its schedule entry.
func (e *Engine) enrichedRow(ctx context.Context, r *run, conv string, m cekat.Message, d *cekat.Message, err error) (sink.MessageRow, *sink.QuarantineRow, *sink.StatusCheck, error) {
	now := e.opts.Now().UTC()
	row := rowFrom(conv, m, d, now)
	var q *sink.QuarantineRow
	transient := false
	switch {
	case err == nil:
		count(&r.progress.Enriched, e.opts.Metrics.enriched, 1)
	case ctx.Err() != nil || r.stopped.Err() != nil || stopsRun(err):
		// A failure while the run stops is left to the next run, not
		// archived unenriched: the stop can reach the call (through
		// r.stopped's AfterFunc) before it reaches ctx, and the transport
		// does not always say context.Canceled when it cuts a call. A call
		// not sent because the run's row could not record it (the archive
		// is away) stops the run too.
		return row, nil, nil, err
	case cekat.KindOf(err) == cekat.KindPermanent:
		row.EnrichError = truncateError(err.Error())
		count(&r.progress.EnrichFailed, e.opts.Metrics.enrichFailed, 1)
		var de *cekat.DecodeError
		if errors.As(err, &de) {
			q = &sink.QuarantineRow{ReceivedAt: now, RunID: r.id, Endpoint: cekat.EndpointDetail,
				ConversationID: conv, MessageID: m.ID, Error: de.Error(), Raw: string(de.Raw)}
		}
	default:
		transient = true
		row.EnrichError = truncateError(transientPrefix + err.Error())
		count(&r.progress.EnrichFailed, e.opts.Metrics.enrichFailed, 1)
		r.noteError(conv, fmt.Errorf("detail of %s failed; archived without it, to be enriched later: %w", m.ID, err))
	}
	entry := sink.StatusCheck{ConversationID: conv, MessageID: m.ID, SentAt: row.SentAt}
	if transient {
		entry.Until = now.Add(enrichRetryFor)
	}
	var chk *sink.StatusCheck
	if entry = e.schedule(entry, row.Status, transient, now); entry.Open {
		chk = &entry
	}
	return row, q, chk, nil
}

// transientPrefix starts the enrich_error of a message whose detail failed
// for a reason that may pass: it is enriched again later.
const transientPrefix = "transient: "

// rowFrom builds a message row from the list item and, when it was
// fetched, the detail answer, whose non-empty fields win.
func rowFrom(conv string, list cekat.Message, detail *cekat.Message, fetched time.Time) sink.MessageRow {
	m := list
	row := sink.MessageRow{
		ConversationID: conv, MessageID: list.ID, Direction: m.Direction, Type: m.Type, Status: m.Status,
		Text: m.Text, MediaURL: m.MediaURL, Caption: m.Caption, Filename: m.Filename,
		SenderName: m.SenderName, SenderPhone: m.SenderPhone, SenderID: m.SenderID, SenderType: m.SenderType,
		RecipientPhone: m.RecipientPhone, ReplyTo: m.ReplyTo, IsTemplate: m.IsTemplate,
		SentAt: m.Timestamp, DeliveredAt: m.DeliveredAt, ReadAt: m.ReadAt, UpdatedAt: m.UpdatedAt,
		Raw: string(list.Raw), FetchedAt: fetched, Version: uint64(fetched.UnixNano()),
	}
	var warnings []string
	warnings = append(warnings, list.Warnings...)
	if detail != nil {
		applyDetail(&row, *detail)
		warnings = append(warnings, detail.Warnings...)
	}
	row.SenderRole = sink.SenderRole(row.Direction, row.SenderType)
	if len(warnings) > 0 {
		row.EnrichError = "warning: " + strings.Join(warnings, "; ")
	}
	return row
}

// applyDetail lays a detail answer over a row: its non-empty fields win.
func applyDetail(row *sink.MessageRow, d cekat.Message) {
	pick := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	pickTime := func(dst **time.Time, v *time.Time) {
		if v != nil {
			*dst = v
		}
	}
	pick(&row.Direction, d.Direction)
	if d.Type != "unknown" {
		pick(&row.Type, d.Type)
	}
	pick(&row.Status, d.Status)
	pick(&row.Text, d.Text)
	pick(&row.MediaURL, d.MediaURL)
	pick(&row.Caption, d.Caption)
	pick(&row.Filename, d.Filename)
	pick(&row.SenderName, d.SenderName)
	pick(&row.SenderPhone, d.SenderPhone)
	pick(&row.SenderID, d.SenderID)
	pick(&row.SenderType, d.SenderType)
	pick(&row.RecipientPhone, d.RecipientPhone)
	pick(&row.ReplyTo, d.ReplyTo)
	row.IsTemplate = row.IsTemplate || d.IsTemplate
	pickTime(&row.DeliveredAt, d.DeliveredAt)
	pickTime(&row.ReadAt, d.ReadAt)
	pickTime(&row.UpdatedAt, d.UpdatedAt)
	row.Enriched = true
	row.EnrichError = ""
	row.StatusSource = "" // the API's answer: confirmed
	row.DetailRaw = string(d.Raw)
}

// saveState queues a copy of the state behind the rows queued so far.
func (c *convSync) saveState(ctx context.Context) error {
	now := c.e.opts.Now().UTC()
	c.version = max(c.version+1, uint64(now.UnixNano()))
	c.st.Version, c.st.UpdatedAt = c.version, now
	st := c.st
	st.Gaps = slices.Clone(c.st.Gaps)
	if err := c.e.store.AddState(context.WithoutCancel(ctx), st); err != nil {
		return storeErr(err)
	}
	return nil
}

// addQuarantine queues records not quarantined before and counts them.
func (r *run) addQuarantine(ctx context.Context, e *Engine, conv string, rows []sink.QuarantineRow) error {
	n, err := e.store.AddQuarantine(context.WithoutCancel(ctx), rows...)
	if err != nil {
		return storeErr(err)
	}
	count(&r.progress.Quarantined, e.opts.Metrics.quarantined, int64(n))
	if n > 0 {
		r.log.Warn("undecodable or foreign records quarantined", zap.String("conversation_id", conv), zap.Int("records", n),
			zap.String("first_error", rows[0].Error))
	}
	return nil
}

func truncateError(s string) string {
	const max = 2000
	if len(s) > max {
		return s[:max] + "..."
	}
	return s
}
