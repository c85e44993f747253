package syncer

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

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
	preset   *cekat.Page    // the newest page, from the inbox sweep: not listed again
}

// list returns a page of the conversation: the preset one for the newest
// page, if any, else the API's.
func (c *convSync) list(ctx context.Context, cursor string) (*cekat.Page, error) {
	if p := c.preset; p != nil && cursor == "" {
		c.preset = nil
		return p, nil
	}
	c.e.listCalls.Add(1)
	return c.e.api.ListMessages(ctx, c.st.ConversationID, c.e.opts.PageSize, cursor)
}

// syncTop archives a conversation's new messages: it walks from the top
// down to the head. A conversation never synced gets only its newest page
// here; the rest of its history becomes the gap the backfill phase fills.
func (e *Engine) syncTop(ctx context.Context, r *run, st sink.State) (sink.State, error) {
	now := e.opts.Now().UTC()
	st.LastAttemptAt = now
	c := &convSync{e: e, r: r, st: st, version: st.Version, preset: r.swept[st.ConversationID]}
	ctx = budget.WithPriority(ctx, budget.PriorityNew)
	// A conversation never synced has only history above its stop (one
	// synced while it had no message, and swept, has new messages).
	c.history = st.HeadMessageID == "" && c.preset == nil
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
		page, err := c.list(ctx, cursor)
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
