package syncer

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/cekat-archiver/cekat-archiver/sink"
	"github.com/cekat-archiver/cekat-archiver/syncer/cekat"
)

// plan is what a run covers, decided before it fetches any message.
type plan struct {
	opts SyncOptions
	// ids: the tracked (and discovered) conversations of this shard.
	ids []string
	// due: those whose new messages the run fetches.
	due []string
	// listing: the conversation list read for this run; nil when not read.
	listing *listing
	// sweep: the inbox listed for this run; nil when not listed.
	sweep *sweep
	// full: a run over every tracked conversation, which alone sets the
	// workspace's gauges: a run for a webhook event sees a few of them.
	full bool
	// unsynced: due conversations without a state.
	unsynced []string
	// listBefore: the list calls made before the run.
	listBefore int64
	// now: when the run planned, after the states were loaded.
	now    time.Time
	states *runStates
}

// runStates holds the conversations' states as the run began and as its
// walks left them; the walks of a phase run at once.
type runStates struct {
	mu     sync.Mutex
	begun  map[string]sink.State // as loaded when the run began
	latest map[string]sink.State // as the run's walks left them
}

func (s *runStates) get(id string) sink.State {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.latest[id]
}

func (s *runStates) keep(st sink.State) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.latest[st.ConversationID] = st
}

// current returns the state as the run left it, else as it began.
func (s *runStates) current(id string) (sink.State, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st, ok := s.latest[id]; ok {
		return st, true
	}
	st, ok := s.begun[id]
	return st, ok
}

// plan decides which conversations the run walks and which statuses it
// re-checks. A nil plan and no error: the run stopped before it began (the
// API budget is spent; sum says so).
func (e *Engine) plan(ctx context.Context, r *run, opts SyncOptions, sum *Summary, log *zap.Logger) (*plan, error) {
	// What an earlier run of this process paid for but could not write
	// waits in the spool; the reads below decide what to fetch, so it is
	// written first, or nothing is fetched.
	if err := e.store.Flush(ctx); err != nil {
		return nil, storeErr(fmt.Errorf("write what an earlier run left: %w", err))
	}
	p := &plan{opts: opts, listBefore: e.listCalls.Load(), full: len(opts.Only) == 0 && !opts.Triggered}
	ok, err := e.planConversations(ctx, r, p, sum, log)
	if err != nil || !ok {
		return nil, err
	}
	states, err := e.store.LoadStates(ctx)
	if err != nil {
		return nil, storeErr(fmt.Errorf("load sync state: %w", err))
	}
	p.now = e.opts.Now()
	if p.sweep, err = e.sweepFor(ctx, r, opts, p.ids, states); err != nil {
		if outOfBudget(err) {
			sum.StoppedBy = err.Error()
			log.Warn("run stopped before it began: the API budget is spent", zap.Error(err))
			return nil, nil
		}
		return nil, err
	}
	if len(opts.Only) == 0 || opts.Triggered {
		if err := e.planChecks(ctx, r, p); err != nil {
			return nil, err
		}
	}
	p.due = e.dueConversations(p, r.swept, states, sum)
	if p.full {
		e.opts.Metrics.conversations.WithLabelValues("due").Set(float64(len(p.due)))
		e.opts.Metrics.setStates(p.ids, func(id string) (sink.State, bool) { st, ok := states[id]; return st, ok })
	}
	sum.Conversations = len(p.due)
	r.progress.Conversations.Store(int64(len(p.due)))
	r.progress.countHistory(p.ids, states)
	e.planAllowance(r, len(p.due), opts.Triggered)
	if r.capped() && opts.Triggered {
		// Under a daily cap a run for webhook events fetches the statuses
		// the events name; the rest of the schedule is the backlog's.
		r.due = newDueSet(slices.DeleteFunc(r.due.all(), func(c sink.StatusCheck) bool { return !r.changed[c.MessageID] }))
	}
	log.Info("sync run started", zap.Int("tracked", len(p.ids)), zap.Int("due", len(p.due)), zap.Int("not_due", sum.NotDue))

	p.states = &runStates{begun: states, latest: make(map[string]sink.State, len(p.due))}
	for _, id := range p.due {
		st, ok := states[id]
		if !ok {
			st = sink.State{ConversationID: id}
			p.unsynced = append(p.unsynced, id)
		}
		p.states.latest[id] = st
	}
	if err := e.markUnarchived(ctx, r, p.unsynced); err != nil {
		return nil, err
	}
	return p, nil
}

// planConversations sets the run's conversations: those named, or the
// tracked and discovered ones; of this shard only. It says false when the
// API budget is spent before the conversation list could be read.
func (e *Engine) planConversations(ctx context.Context, r *run, p *plan, sum *Summary, log *zap.Logger) (bool, error) {
	only := p.opts.Only
	ids := only
	if len(ids) == 0 && !p.opts.Triggered {
		var err error
		if ids, err = e.tracked(ctx); err != nil {
			return false, err
		}
	}
	if p.full {
		l, err := e.discoverOrWarn(ctx, r)
		if err != nil {
			if outOfBudget(err) {
				// A spent day is not a failure: the run says so and stops.
				sum.StoppedBy = err.Error()
				log.Warn("run stopped before it began: the API budget is spent", zap.Error(err))
				return false, nil
			}
			return false, err
		}
		found, err := e.discovered(ctx, l)
		if err != nil {
			return false, err
		}
		ids = trackedUnion(ids, found)
		if l != nil {
			sum.Listed = len(l.items)
		}
		p.listing = l
	}
	// Another shard's conversations are its own to sync, even when named:
	// two shards never walk one conversation.
	if own := e.opts.Shard.Filter(ids); len(own) < len(ids) {
		if len(only) > 0 {
			log.Info("conversations named for this run belong to other shards and are left to them",
				zap.Int("named", len(ids)), zap.Int("own", len(own)))
		}
		ids = own
	}
	p.ids = ids
	return true, nil
}

// planChecks loads the status checks due now of this shard's messages.
func (e *Engine) planChecks(ctx context.Context, r *run, p *plan) error {
	checks, err := e.store.DueChecks(ctx, p.now.UTC(), maxDueChecks)
	if err != nil {
		return storeErr(fmt.Errorf("load due status checks: %w", err))
	}
	// The schedule is shared by the shards; each re-checks the
	// messages of its own conversations.
	checks = slices.DeleteFunc(checks, func(c sink.StatusCheck) bool { return !e.opts.Shard.Owns(c.ConversationID) })
	r.due = newDueSet(checks)
	if p.full {
		e.opts.Metrics.checksDue.Set(float64(len(checks)))
	}
	return nil
}

// dueConversations returns the conversations of p.ids whose new messages
// the run fetches, and counts the others in sum.
// A conversation the inbox sweep covers is due when the sweep showed new
// messages of it, which swept keeps as the first page of its walk.
func (e *Engine) dueConversations(p *plan, swept map[string]*cekat.Page, states map[string]sink.State, sum *Summary) []string {
	now, only, all := p.now, p.opts.Only, p.opts.All
	var due []string
	for _, id := range p.ids {
		st, ok := states[id]
		if ok && !st.PurgedAt.IsZero() {
			// Deleted upstream by the retention purge: never polled again,
			// neither lagging nor gone; its archive is the record.
			continue
		}
		// The inbox sweep decides for the conversations it covers: their
		// new messages are those it listed.
		if p.sweep.covers(st) {
			if page := p.sweep.newer(st); page != nil {
				swept[id] = page
				due = append(due, id)
			} else {
				sum.Unchanged++
			}
			continue
		}
		if p.sweep != nil && len(p.sweep.items[id]) > 0 {
			due = append(due, id) // new messages, but maybe not all of them
			continue
		}
		// What the conversation list says decides, where it says it: a
		// conversation with nothing new since its last walk is not polled.
		if known, same := p.listing.unchanged(id, &e.heads); known && !all {
			if same && ok && !hasNewMessagesGap(st) && !retry(st) {
				sum.Unchanged++
				continue
			}
			due = append(due, id)
			continue
		}
		// Conversations named explicitly are synced even if not due. A
		// conversation due within dueSlack counts as due, so that one
		// polled "every run" is not missed by a run that starts early.
		if ok && len(only) == 0 && !all && !retry(st) && st.NextDueAt.After(now.Add(dueSlack)) {
			sum.NotDue++
			continue
		}
		due = append(due, id)
	}
	return due
}

// markUnarchived marks the conversations never synced of which the archive
// holds no message. A conversation never synced may still have rows (its
// state lost with a spool that was not synced to disk), so the archive is
// asked, once for all of them.
func (e *Engine) markUnarchived(ctx context.Context, r *run, unsynced []string) error {
	if len(unsynced) == 0 {
		return nil
	}
	held, err := e.store.ConversationsArchived(ctx, unsynced)
	if err != nil {
		return storeErr(err)
	}
	for _, id := range unsynced {
		if !held[id] {
			r.unarchived.Store(id, true)
		}
	}
	return nil
}
