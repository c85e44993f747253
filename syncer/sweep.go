package syncer

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/cekat-archiver/cekat-archiver/sink"
	"github.com/cekat-archiver/cekat-archiver/syncer/budget"
	"github.com/cekat-archiver/cekat-archiver/syncer/cekat"
)

// InboxLister is what the inbox sweep needs of the API: the New Open API's
// message list, GET /api/messages.
type InboxLister interface {
	ListInbox(ctx context.Context, f cekat.InboxFilter) (*cekat.InboxPage, error)
}

// InboxSweep makes a run list the new messages of the whole inbox, 100 a
// call, before it lists any conversation: a conversation whose new messages
// the sweep provably holds all of is archived from them without a call of
// its own, and one the sweep shows nothing of needs none. The rules and
// their reasons: docs/design.md, "The inbox sweep".
type InboxSweep struct {
	API InboxLister
	// InboxID narrows the listing to one inbox ("": the workspace).
	InboxID string
	// Margin is how far behind the last sweep's newest message the next
	// one reaches (2m): a message stamped a little before another but
	// listed after it is still met.
	Margin time.Duration
	// MaxPages bounds one sweep (50). A sweep cut short proves less: the
	// conversations it does not cover are listed one by one.
	MaxPages int
}

// The orders a page of the inbox listing can be in, as a set: newest or
// oldest first, by created_at or by updated_at.
type inboxOrders uint8

const (
	newestCreated inboxOrders = 1 << iota
	newestUpdated
	oldestCreated
	oldestUpdated
	newestFirst = newestCreated | newestUpdated
	oldestFirst = oldestCreated | oldestUpdated
)

func (o inboxOrders) String() string {
	switch {
	case o&newestCreated != 0:
		return "newest first by created_at"
	case o&newestUpdated != 0:
		return "newest first by updated_at"
	case o&oldestCreated != 0:
		return "oldest first by created_at"
	case o&oldestUpdated != 0:
		return "oldest first by updated_at"
	}
	return "unordered"
}

// keys are a message's created_at and updated_at (zero when it has none).
func keys(m cekat.Message) [2]time.Time {
	k := [2]time.Time{m.Timestamp}
	if m.UpdatedAt != nil {
		k[1] = *m.UpdatedAt
	}
	return k
}

// sweep is what one listing of the inbox showed.
type sweep struct {
	items map[string][]cekat.Message // per conversation, oldest first
	bad   []*cekat.DecodeError
	// reach: every message created after it was listed (all: every
	// message, whenever created).
	reach time.Time
	all   bool
	mark  time.Time // the newest created_at listed
	order inboxOrders
	// prev is the stored mark; chained: this sweep reached back past it,
	// so the conversations synced since prev.ChainStart lack nothing.
	prev    sink.SweepMark
	hasPrev bool
	chained bool
	pages   int
}

// covers says whether the sweep listed every message of the conversation
// newer than its head.
func (s *sweep) covers(st sink.State) bool {
	switch {
	case s == nil || hasNewMessagesGap(st) || retry(st) || st.Gone:
		return false
	case st.HeadMessageID == "" && (!st.BackfillComplete || len(st.Gaps) > 0):
		return false // never synced: its history is walked
	case s.all || (!st.HeadSentAt.IsZero() && st.HeadSentAt.After(s.reach)):
		return true
	}
	return s.chained && !s.prev.ChainStart.IsZero() && !st.LastSuccessAt.Before(s.prev.ChainStart)
}

// newer returns the sweep's messages of a covered conversation that can be
// newer than its head, as a list page of it: those sent at the head's time
// or later but the head (several messages can share a second; the walk's
// look-up drops those archived).
func (s *sweep) newer(st sink.State) *cekat.Page {
	var own []cekat.Message
	for _, m := range s.items[st.ConversationID] {
		if m.ID != st.HeadMessageID && !m.Timestamp.Before(st.HeadSentAt) {
			own = append(own, m)
		}
	}
	if len(own) == 0 {
		return nil
	}
	return &cekat.Page{Messages: own, Paginated: true, Before: own[0].ID}
}

// sweepScope names what a sweep covers, for its stored mark.
func (e *Engine) sweepScope() string {
	return e.opts.Shard.ID() + "|" + e.opts.Inbox.InboxID
}

// sweepInbox lists the inbox from its newest end until enough says the
// sweep reaches far enough (it is asked after each page), the stored mark
// minus the margin is passed, or the list ends. It returns nil when the
// sweep is off, the deployment has no such endpoint, or its order cannot
// be told: the run then lists conversation by conversation.
func (e *Engine) sweepInbox(ctx context.Context, r *run, enough func(*sweep) bool) (*sweep, error) {
	in := e.opts.Inbox
	if in == nil || in.API == nil || e.inboxOff.Load() {
		return nil, nil
	}
	s := &sweep{items: map[string][]cekat.Message{}}
	var err error
	if s.prev, s.hasPrev, err = e.store.LoadSweep(ctx, e.sweepScope()); err != nil {
		return nil, storeErr(fmt.Errorf("load the inbox sweep's mark: %w", err))
	}
	margin, maxPages := in.Margin, in.MaxPages
	if margin <= 0 {
		margin = 2 * time.Minute
	}
	if maxPages <= 0 {
		maxPages = 50
	}
	ctx = budget.WithPriority(ctx, budget.PriorityNew)
	seen := map[string]bool{}
	var collected []cekat.Message // in the order of place, newest first
	s.order = newestFirst | oldestFirst
	edge := [2]time.Time{} // the oldest keys of the last page read
	read := func(page int) (*cekat.InboxPage, error) {
		e.listCalls.Add(1)
		s.pages++
		return in.API.ListInbox(ctx, cekat.InboxFilter{InboxID: in.InboxID, Limit: maxListPage, Page: page})
	}
	// take checks a page against the orders still possible, from the page
	// before it (edge) and within it, and keeps its new messages.
	take := func(p *cekat.InboxPage, newestFirstPage bool) {
		s.bad = append(s.bad, p.Bad...)
		msgs := p.Messages
		var fresh []cekat.Message
		for _, m := range msgs {
			if !seen[m.ID] {
				fresh = append(fresh, m)
			}
		}
		for i, m := range msgs {
			k := keys(m)
			for j, bit := range [2]inboxOrders{newestCreated, newestUpdated} {
				obit := bit << 2 // the oldest-first order of the same key
				if k[j].IsZero() {
					s.order &^= bit | obit
					continue
				}
				if i > 0 {
					prev := keys(msgs[i-1])[j]
					if k[j].After(prev) {
						s.order &^= bit
					}
					if prev.After(k[j]) {
						s.order &^= obit
					}
				}
				// A message not listed before must not be newer than the
				// oldest of the page read before it (a shifted page
				// repeats messages, which are skipped).
				if !seen[m.ID] && !edge[j].IsZero() && k[j].After(edge[j]) {
					s.order &^= bit | obit
				}
			}
		}
		for _, m := range fresh {
			seen[m.ID] = true
			if m.Timestamp.After(s.mark) {
				s.mark = m.Timestamp
			}
		}
		if !newestFirstPage {
			slices.Reverse(fresh)
		}
		collected = append(collected, fresh...)
		if len(msgs) > 0 {
			var lo [2]time.Time
			for j := range lo {
				for _, m := range msgs {
					if k := keys(m)[j]; lo[j].IsZero() || k.Before(lo[j]) {
						lo[j] = k
					}
				}
			}
			edge = lo
		}
	}
	// reachOf: a message not listed was created no later than the oldest
	// key of the last page, under any order still possible (updated_at is
	// never before created_at).
	reachOf := func() time.Time {
		var t time.Time
		for j, bit := range [2]inboxOrders{newestCreated, newestUpdated} {
			if s.order&(bit|bit<<2) != 0 && edge[j].After(t) {
				t = edge[j]
			}
		}
		return t
	}
	far := func() bool {
		s.reach = reachOf()
		s.chained = s.hasPrev && (s.all || s.reach.Before(s.prev.Mark.Add(-margin)))
		return s.all || s.chained || (enough != nil && enough(s)) || s.pages >= maxPages
	}

	first, err := read(1)
	if err != nil {
		if cekat.IsUnsupported(err) {
			e.inboxOff.Store(true)
			r.log.Warn("the API has no inbox listing (GET /api/messages); conversations are listed one by one from now on", zap.Error(err))
			return nil, nil
		}
		if stopsRun(err) || ctx.Err() != nil {
			return nil, err
		}
		r.noteError("(inbox listing)", err)
		r.log.Warn("listing the inbox failed; this run lists conversations one by one", zap.Error(err))
		return nil, nil
	}
	take(first, true)
	last := first.TotalPages
	if len(first.Messages)+len(first.Bad) < maxListPage || (last > 0 && last <= 1) {
		s.all = true
	}
	switch dir := s.order; {
	case s.all:
	case dir&newestFirst != 0 && dir&oldestFirst == 0:
		s.order &= newestFirst
		total := first.TotalItems
		for page := 2; !far(); page++ {
			p, err := read(page)
			if err != nil {
				return nil, e.sweepFailed(r, err)
			}
			if p.TotalItems > 0 && p.TotalItems < total {
				// Messages deleted meanwhile shift the later pages up:
				// one may have been skipped. This run lists conversation by conversation.
				r.log.Info("the inbox shrank while it was listed; this run lists conversations one by one",
					zap.Int("before", total), zap.Int("now", p.TotalItems))
				return nil, nil
			}
			total = max(total, p.TotalItems)
			take(p, true)
			if len(p.Messages)+len(p.Bad) < maxListPage || (p.TotalPages > 0 && page >= p.TotalPages) {
				s.all = true
			}
		}
	case dir&oldestFirst != 0 && dir&newestFirst == 0 && last > 1:
		// Page 1 holds the oldest messages: the new ones are on the last
		// pages, read backwards. Messages that arrive meanwhile only add
		// to the end, for the next sweep (they are newer than the mark).
		s.order &= oldestFirst
		collected, edge = nil, [2]time.Time{}
		clear(seen)
		s.mark = time.Time{}
		for page := last; ; page-- {
			if page == 1 {
				take(first, false)
				s.all = true
				break
			}
			p, err := read(page)
			if err != nil {
				return nil, e.sweepFailed(r, err)
			}
			take(p, false)
			if far() {
				break
			}
		}
	}
	switch {
	case s.all:
	case s.order == 0:
		e.inboxOff.Store(true)
		r.log.Warn("the inbox listing (GET /api/messages) is in no order of time this archiver can rely on; "+
			"conversations are listed one by one from now on", zap.Int("pages", s.pages))
		return nil, nil
	case s.order&newestFirst != 0 && s.order&oldestFirst != 0:
		// Every message of the page at the same time: no order to tell.
		return nil, nil
	}
	far()
	for _, m := range collected {
		s.items[m.ConversationID] = append(s.items[m.ConversationID], m)
	}
	for _, ms := range s.items {
		slices.Reverse(ms) // oldest first; ties stay in the API's order
		slices.SortStableFunc(ms, func(a, b cekat.Message) int { return a.Timestamp.Compare(b.Timestamp) })
	}
	return s, nil
}

// sweepFor sweeps the inbox for a run that may use it: a scheduled run
// over every conversation reads on to the stored mark (one page when there
// is none yet); a run for webhook events reads until the conversations it
// names are covered.
func (e *Engine) sweepFor(ctx context.Context, r *run, opts SyncOptions, ids []string, states map[string]sink.State) (*sweep, error) {
	if opts.All || len(ids) == 0 || (len(opts.Only) > 0 && !opts.Triggered) {
		return nil, nil
	}
	enough := func(s *sweep) bool { return !s.hasPrev }
	if opts.Triggered {
		enough = func(s *sweep) bool {
			for _, id := range ids {
				st, ok := states[id]
				if ok && st.HeadMessageID != "" && !hasNewMessagesGap(st) && !retry(st) && !s.covers(st) {
					return false
				}
			}
			return true
		}
	}
	s, err := e.sweepInbox(ctx, r, enough)
	if err != nil {
		return nil, err
	}
	return s, e.quarantineSweep(ctx, r, s)
}

// sweepFailed reports a sweep that broke off: the run goes on conversation
// by conversation, unless the failure stops it.
func (e *Engine) sweepFailed(r *run, err error) error {
	if stopsRun(err) || r.stopped.Err() != nil {
		return err
	}
	r.noteError("(inbox listing)", err)
	r.log.Warn("listing the inbox failed; this run lists conversations one by one", zap.Error(err))
	return nil
}

// quarantineSweep keeps the sweep's undecodable items, under the
// conversation they name when it can be read.
func (e *Engine) quarantineSweep(ctx context.Context, r *run, s *sweep) error {
	if s == nil || len(s.bad) == 0 {
		return nil
	}
	now := e.opts.Now().UTC()
	rows := make([]sink.QuarantineRow, 0, len(s.bad))
	for _, b := range s.bad {
		var v struct {
			ConversationID json.RawMessage `json:"conversation_id"`
		}
		_ = json.Unmarshal(b.Raw, &v)
		var conv string
		_ = json.Unmarshal(v.ConversationID, &conv)
		rows = append(rows, sink.QuarantineRow{ReceivedAt: now, RunID: r.id, Endpoint: cekat.EndpointInbox,
			ConversationID: conv, MessageID: b.ID, Error: b.Error(), Raw: string(b.Raw)})
	}
	return r.addQuarantine(ctx, e, "(inbox listing)", rows)
}

// saveSweep stores where a scheduled run's sweep got to, once what the run
// archived from it is stored.
func (e *Engine) saveSweep(ctx context.Context, r *run, s *sweep) error {
	if err := e.store.Flush(ctx); err != nil {
		return storeErr(err)
	}
	m := sink.SweepMark{Scope: e.sweepScope(), Mark: s.mark, ChainStart: r.started, Order: s.order.String(),
		UpdatedAt: e.opts.Now().UTC()}
	if s.hasPrev {
		m.Version = s.prev.Version + 1
		if s.prev.Mark.After(m.Mark) {
			m.Mark = s.prev.Mark
		}
		if s.chained {
			m.ChainStart = s.prev.ChainStart
		}
	}
	m.Version = max(m.Version, uint64(m.UpdatedAt.UnixNano()))
	if err := e.store.SaveSweep(ctx, m); err != nil {
		return storeErr(fmt.Errorf("save the inbox sweep's mark: %w", err))
	}
	return nil
}
