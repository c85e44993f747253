package syncer

import (
	"context"
	"slices"

	"go.uber.org/zap"

	"github.com/cekat-archiver/cekat-archiver/sink"
	"github.com/cekat-archiver/cekat-archiver/syncer/cekat"
)

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
