package syncer

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/cekat-archiver/cekat-archiver/sink"
	"github.com/cekat-archiver/cekat-archiver/syncer/budget"
	"github.com/cekat-archiver/cekat-archiver/syncer/cekat"
)

// convSync is the sync of one conversation within a run.
//
// The list endpoint pages from the newest message back. A conversation's
// state is a head (the newest message a walk from the top archived) and a
// list of gaps (walks left unfinished, each a cursor and the message it
// must reach). A run first walks from the top down to the head, then fills
// the gaps, newest first. Before the first page of a walk from the top is
// saved, the stretch below it becomes a gap, so a walk killed several
// pages deep leaves a gap the next run fills, never a hole. The first sync
// is the gap that reaches the start of the history.
type convSync struct {
	e        *Engine
	r        *run
	st       sink.State
	version  uint64
	fresh    int64     // messages archived by this run
	upstream int64     // messages found above the stop, archived before or not
	deadline time.Time // backfill pauses when it passes
}

// syncTop archives a conversation's new messages: it walks from the top
// down to the head. A conversation never synced gets only its newest page
// here; the rest of its history becomes the gap the backfill phase fills.
func (e *Engine) syncTop(ctx context.Context, r *run, st sink.State) (sink.State, error) {
	now := e.opts.Now().UTC()
	st.LastAttemptAt = now
	c := &convSync{e: e, r: r, st: st}
	ctx = budget.WithPriority(ctx, budget.PriorityNew)
	err := c.walkTop(ctx)
	// A gap that stops at an earlier head was left by an interrupted walk
	// from the top: it holds new messages, not old history, so it is filled
	// now rather than with the backfill. The gap to the start of the
	// history, if any, is always the last.
	for err == nil && len(c.st.Gaps) > 0 && c.st.Gaps[0].Stop != "" {
		err = c.fillGap(ctx)
	}
	switch {
	case err == nil:
		c.st.Gone = false
		c.st.LastSuccessAt = now
		c.st.LastError = ""
		if c.upstream == 0 {
			c.st.IdleRuns++
		} else {
			c.st.IdleRuns = 0
		}
		c.st.NextDueAt = now.Add(e.pollDelay(c.st.IdleRuns))
		return c.st, c.saveState(ctx)
	case cekat.IsNotFound(err):
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
	c := &convSync{e: e, r: r, st: st, deadline: deadline}
	ctx = budget.WithPriority(ctx, budget.PriorityBackfill)
	var err error
	for err == nil && len(c.st.Gaps) > 0 {
		err = c.fillGap(ctx)
	}
	if err == nil || errors.Is(err, errPaused) {
		return c.st, nil
	}
	return c.st, c.failed(ctx, err)
}

// failed records a failure in the state, unless nothing can be saved or
// the run is stopping: then the state saved after the last page stands.
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
	err := c.walk(ctx, "", stop, func(p *cekat.Page, done bool) {
		switch {
		case first:
			first = false
			if n := len(p.Messages); n > 0 {
				c.st.HeadMessageID = p.Messages[n-1].ID
				c.st.HeadSentAt = p.Messages[n-1].Timestamp
			}
			if !done {
				if stop == "" {
					// A walk to the start of the history covers any older one
					// (possible only if no page ever gave a decodable message).
					c.st.Gaps = slices.DeleteFunc(c.st.Gaps, func(g sink.Gap) bool { return g.Stop == "" })
				}
				c.st.Gaps = append([]sink.Gap{{Before: p.Before, Stop: stop}}, c.st.Gaps...)
			}
		case done:
			c.st.Gaps = c.st.Gaps[1:]
		default:
			c.st.Gaps[0].Before = p.Before
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
	return c.walk(ctx, g.Before, g.Stop, func(p *cekat.Page, done bool) {
		if !done {
			c.st.Gaps[0].Before = p.Before
			return
		}
		c.st.Gaps = c.st.Gaps[1:]
		if g.Stop == "" || !p.Paginated {
			c.finishBackfill(p)
		}
	}, func() bool {
		return !c.deadline.IsZero() && !c.e.opts.Now().Before(c.deadline)
	})
}

// finishBackfill records that the start of the history was reached. An
// answer without pagination held the whole history, so no gap is left.
func (c *convSync) finishBackfill(p *cekat.Page) {
	c.st.BackfillComplete = true
	if !p.Paginated {
		c.st.Gaps = nil
	}
}

// walk pages back from before ("" for the newest page) until it meets the
// message stop, or the start of the history when stop is empty. After each
// page's rows are queued, step updates the state, which is then queued
// behind those rows.
//
// pause is asked before each further page; when it says so, the walk ends
// with errPaused.
func (c *convSync) walk(ctx context.Context, before, stop string, step func(p *cekat.Page, done bool), pause func() bool) error {
	conv := c.st.ConversationID
	cursor := before
	var previous map[string]bool
	for {
		page, err := c.e.api.ListMessages(ctx, conv, c.e.opts.PageSize, cursor)
		if err != nil {
			return err
		}
		fresh, bad, reached := splitAtStop(page, stop)
		if err := c.archive(ctx, fresh, bad, previous); err != nil {
			return err
		}
		done := reached || !page.Paginated || !page.HasMore
		if !done && (page.Before == "" || page.Before == cursor) {
			return fmt.Errorf("list %s: the before cursor did not advance past %q", conv, cursor)
		}
		step(page, done)
		if err := c.saveState(ctx); err != nil {
			return err
		}
		if done {
			return nil
		}
		if pause() {
			return errPaused
		}
		cursor = page.Before
		// Whether before is exclusive is undocumented: the cursor message
		// may come again on the next page, and its row may still be in the
		// writer's buffer where ArchivedIDs cannot see it.
		previous = make(map[string]bool, len(page.Messages))
		for _, m := range page.Messages {
			previous[m.ID] = true
		}
	}
}

// splitAtStop returns the page's messages and bad records newer than the
// message stop, and whether stop was in the page. Pages are oldest first.
func splitAtStop(p *cekat.Page, stop string) ([]cekat.Message, []*cekat.DecodeError, bool) {
	if stop == "" {
		return p.Messages, p.Bad, false
	}
	k := slices.IndexFunc(p.Messages, func(m cekat.Message) bool { return m.ID == stop })
	if k < 0 {
		return p.Messages, p.Bad, false
	}
	// Position of the stop message in the answer, counting bad records.
	pos := k
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
	return p.Messages[k+1:], bad, true
}

// archive enriches the messages not yet archived and queues their rows and
// the page's bad records.
func (c *convSync) archive(ctx context.Context, msgs []cekat.Message, bad []*cekat.DecodeError, previous map[string]bool) error {
	conv := c.st.ConversationID
	now := c.e.opts.Now().UTC()
	if len(bad) > 0 {
		rows := make([]sink.QuarantineRow, 0, len(bad))
		for _, b := range bad {
			rows = append(rows, sink.QuarantineRow{ReceivedAt: now, RunID: c.r.id, Endpoint: cekat.EndpointList,
				ConversationID: conv, MessageID: b.ID, Error: b.Error(), Raw: string(b.Raw)})
		}
		n, err := c.e.store.AddQuarantine(ctx, rows...)
		if err != nil {
			return storeErr(err)
		}
		count(&c.r.progress.Quarantined, c.e.opts.Metrics.quarantined, int64(n))
		if n > 0 {
			c.r.log.Warn("undecodable records quarantined", zap.String("conversation_id", conv), zap.Int("records", n),
				zap.String("first_error", bad[0].Error()))
		}
	}

	// Activity is what arrived upstream, even if a killed run archived it.
	c.upstream += int64(len(msgs))
	seen := make(map[string]bool, len(msgs))
	candidates := make([]string, 0, len(msgs))
	for _, m := range msgs {
		if !previous[m.ID] && !seen[m.ID] {
			seen[m.ID] = true
			candidates = append(candidates, m.ID)
		}
	}
	if len(candidates) == 0 {
		return nil
	}
	// A run killed after its rows were stored but before its state was
	// leaves rows the state does not know of: do not pay for them twice.
	archived, err := c.e.store.ArchivedIDs(ctx, conv, candidates)
	if err != nil {
		return storeErr(fmt.Errorf("look up archived ids: %w", err))
	}
	var todo []cekat.Message
	for _, m := range msgs {
		if seen[m.ID] && !archived[m.ID] {
			todo = append(todo, m)
			delete(seen, m.ID) // a duplicate id in the page is taken once
		}
	}
	if len(todo) == 0 {
		return nil
	}
	rows, quarantined, err := c.e.enrich(ctx, c.r, conv, todo)
	if err != nil {
		return err
	}
	if len(quarantined) > 0 {
		n, err := c.e.store.AddQuarantine(ctx, quarantined...)
		if err != nil {
			return storeErr(err)
		}
		count(&c.r.progress.Quarantined, c.e.opts.Metrics.quarantined, int64(n))
		if n > 0 {
			c.r.log.Warn("undecodable detail answers quarantined; messages archived without enrichment",
				zap.String("conversation_id", conv), zap.Int("records", n))
		}
	}
	if err := c.e.store.AddMessages(ctx, rows...); err != nil {
		return storeErr(err)
	}
	c.fresh += int64(len(rows))
	count(&c.r.progress.NewMessages, c.e.opts.Metrics.archived, int64(len(rows)))
	return nil
}

// enrich fetches the detail of each message with bounded concurrency. A
// permanent failure (404, an undecodable answer) archives the message
// without enrichment and says why; any other failure fails the page.
func (e *Engine) enrich(ctx context.Context, r *run, conv string, msgs []cekat.Message) ([]sink.MessageRow, []sink.QuarantineRow, error) {
	// New messages are listed first, then enriched; backfill stays backfill.
	if p, _ := budget.PriorityFrom(ctx); p == budget.PriorityNew {
		ctx = budget.WithPriority(ctx, budget.PriorityEnrich)
	}
	details := make([]*cekat.Message, len(msgs))
	failures := make([]error, len(msgs))
	g, gctx := errgroup.WithContext(ctx)
	for i, m := range msgs {
		select {
		case e.detail <- struct{}{}:
		case <-gctx.Done():
			return nil, nil, g.Wait()
		}
		g.Go(func() error {
			defer func() { <-e.detail }()
			d, err := e.api.GetMessage(gctx, m.ID)
			switch {
			case err == nil:
				details[i] = &d
			case cekat.KindOf(err) == cekat.KindPermanent:
				failures[i] = err
			default:
				return fmt.Errorf("detail of %s: %w", m.ID, err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, nil, err
	}
	now := e.opts.Now().UTC()
	rows := make([]sink.MessageRow, 0, len(msgs))
	var quarantined []sink.QuarantineRow
	for i, m := range msgs {
		row := rowFrom(conv, m, details[i], now)
		if err := failures[i]; err != nil {
			row.EnrichError = truncateError(err.Error())
			count(&r.progress.EnrichFailed, e.opts.Metrics.enrichFailed, 1)
			var de *cekat.DecodeError
			if errors.As(err, &de) {
				quarantined = append(quarantined, sink.QuarantineRow{ReceivedAt: now, RunID: r.id, Endpoint: cekat.EndpointDetail,
					ConversationID: conv, MessageID: m.ID, Error: de.Error(), Raw: string(de.Raw)})
			}
		} else {
			count(&r.progress.Enriched, e.opts.Metrics.enriched, 1)
		}
		rows = append(rows, row)
	}
	return rows, quarantined, nil
}

// rowFrom builds a message row from the list item and, when it was
// fetched, the detail answer, whose non-empty fields win.
func rowFrom(conv string, list cekat.Message, detail *cekat.Message, fetched time.Time) sink.MessageRow {
	m := list
	if detail != nil {
		m = merge(list, *detail)
	}
	row := sink.MessageRow{
		ConversationID: conv, MessageID: list.ID, Direction: m.Direction, Type: m.Type, Status: m.Status,
		Text: m.Text, MediaURL: m.MediaURL, Caption: m.Caption, Filename: m.Filename,
		SenderName: m.SenderName, SenderPhone: m.SenderPhone, SenderID: m.SenderID, SenderType: m.SenderType,
		RecipientPhone: m.RecipientPhone, ReplyTo: m.ReplyTo, IsTemplate: m.IsTemplate,
		SentAt: m.Timestamp, DeliveredAt: m.DeliveredAt, ReadAt: m.ReadAt, UpdatedAt: m.UpdatedAt,
		Raw: string(list.Raw), FetchedAt: fetched, Version: uint64(fetched.UnixNano()),
	}
	if detail != nil {
		row.Enriched = true
		row.DetailRaw = string(detail.Raw)
	}
	if len(m.Warnings) > 0 {
		row.EnrichError = "warning: " + strings.Join(m.Warnings, "; ")
	}
	return row
}

func merge(base, over cekat.Message) cekat.Message {
	pick := func(a, b string) string {
		if b != "" {
			return b
		}
		return a
	}
	pickTime := func(a, b *time.Time) *time.Time {
		if b != nil {
			return b
		}
		return a
	}
	m := base
	m.Direction = pick(base.Direction, over.Direction)
	m.Type = pick(base.Type, over.Type)
	if over.Type == "unknown" {
		m.Type = base.Type
	}
	m.Status = pick(base.Status, over.Status)
	m.Text = pick(base.Text, over.Text)
	m.MediaURL = pick(base.MediaURL, over.MediaURL)
	m.Caption = pick(base.Caption, over.Caption)
	m.Filename = pick(base.Filename, over.Filename)
	m.SenderName = pick(base.SenderName, over.SenderName)
	m.SenderPhone = pick(base.SenderPhone, over.SenderPhone)
	m.SenderID = pick(base.SenderID, over.SenderID)
	m.SenderType = pick(base.SenderType, over.SenderType)
	m.RecipientPhone = pick(base.RecipientPhone, over.RecipientPhone)
	m.ReplyTo = pick(base.ReplyTo, over.ReplyTo)
	m.IsTemplate = base.IsTemplate || over.IsTemplate
	m.DeliveredAt = pickTime(base.DeliveredAt, over.DeliveredAt)
	m.ReadAt = pickTime(base.ReadAt, over.ReadAt)
	m.UpdatedAt = pickTime(base.UpdatedAt, over.UpdatedAt)
	m.Warnings = append(slices.Clip(base.Warnings), over.Warnings...)
	return m
}

// saveState queues a copy of the state behind the rows queued so far.
func (c *convSync) saveState(ctx context.Context) error {
	now := c.e.opts.Now().UTC()
	c.version = max(c.version+1, uint64(now.UnixNano()))
	st := c.st
	st.Gaps = slices.Clone(c.st.Gaps)
	st.UpdatedAt = now
	st.Version = c.version
	if err := c.e.store.AddState(ctx, st); err != nil {
		return storeErr(err)
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
