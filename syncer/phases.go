package syncer

import (
	"context"

	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"
)

// sync plans the run, runs its phases and says what was left for later.
func (e *Engine) sync(ctx context.Context, r *run, opts SyncOptions, sum *Summary, log *zap.Logger) error {
	p, err := e.plan(ctx, r, opts, sum, log)
	if err != nil || p == nil {
		return err
	}
	err = e.phases(ctx, r, p, sum)
	e.leftForLater(p, r, sum)
	if outOfBudget(err) {
		// Doing what fits is the plan when the budget is short, not a failure.
		sum.StoppedBy = err.Error()
		log.Warn("run stopped early: the API budget is spent; the rest is left for later",
			zap.Int("left_for_later", sum.LeftForLater), zap.Error(err))
		return nil
	}
	if err != nil {
		return err
	}
	return ctx.Err()
}

// phases runs new messages of every due conversation first, then re-checks,
// then backfill of older history until the run's backfill time is up: the
// order in which a short API budget is best spent. Each phase runs when the
// one before ended without error.
func (e *Engine) phases(ctx context.Context, r *run, p *plan, sum *Summary) error {
	err := e.newMessages(ctx, r, p)
	// Under a daily cap the re-checks are part of the backlog served after
	// the listing; without one they come before the backfill.
	if err == nil && (!r.capped() || p.opts.Triggered) {
		r.progress.setPhase("re-checks")
		err = e.recheck(ctx, r)
	}
	if err == nil {
		err = e.backfill(ctx, r, p)
	}
	// The backlog is the scheduled runs' to serve; a run for a webhook
	// event only enriches what it lists, while the allowance lasts.
	if err == nil && r.capped() && !p.opts.Triggered {
		r.progress.setPhase("enrichment")
		err = e.drain(ctx, r)
	}
	if (err == nil || outOfBudget(err)) && !p.opts.Triggered {
		if berr := e.countBacklog(ctx, r, sum); berr != nil && err == nil {
			err = berr
		}
	}
	return err
}

// newMessages walks every due conversation from the top down to what the
// archive holds, then writes what the conversation list said.
func (e *Engine) newMessages(ctx context.Context, r *run, p *plan) error {
	r.progress.setPhase("new messages")
	err := e.forEach(ctx, r, p.due, func(ctx context.Context, id string) error {
		r.attempt(id)
		before := p.states.get(id)
		st, err := e.syncTop(ctx, r, before)
		r.progress.noteHistory(before, st)
		p.states.keep(st)
		r.progress.Done.Add(1)
		if err == nil && !st.Gone {
			r.topDone(id)
			p.listing.synced(id)
		}
		return err
	})
	if werr := p.listing.write(ctx, e); werr != nil && err == nil {
		err = werr
	}
	// Where the sweep got to is kept once everything it showed is stored.
	if err == nil && p.sweep != nil && p.full {
		err = e.saveSweep(ctx, r, p.sweep)
	}
	// A first sync's newest pages are history, not the listing a later
	// run repeats.
	if err == nil && p.full && len(p.unsynced) == 0 {
		// What listing new messages cost, the conversation list included,
		// for the budget's reserve of later runs.
		e.noteListing(e.listCalls.Load() - p.listBefore)
	}
	return err
}

// backfill fills the gaps of every conversation with history left to
// fetch, due or not, until the run's backfill time is up.
func (e *Engine) backfill(ctx context.Context, r *run, p *plan) error {
	var backlog []string
	for _, id := range p.ids {
		st, _ := p.states.current(id)
		if len(st.Gaps) > 0 && !st.Gone {
			backlog = append(backlog, id)
			p.states.keep(st)
		}
	}
	r.progress.setPhase("backfill")
	r.progress.Backlog.Store(int64(len(backlog)))
	deadline := e.opts.Now().Add(e.opts.BackfillMaxDuration)
	return e.forEach(ctx, r, backlog, func(ctx context.Context, id string) error {
		r.attempt(id)
		before := p.states.get(id)
		st, err := e.fillGaps(ctx, r, before, deadline)
		r.progress.noteHistory(before, st)
		r.progress.BackfillDone.Add(1)
		p.states.keep(st)
		return err
	})
}

// leftForLater counts in sum the conversations whose new messages were not
// fetched and those with history still to fetch, and sets the gauges of
// the workspace after a full run.
func (e *Engine) leftForLater(p *plan, r *run, sum *Summary) {
	isDue := make(map[string]bool, len(p.due))
	for _, id := range p.due {
		isDue[id] = true
	}
	for _, id := range p.ids {
		st, _ := p.states.current(id)
		if !st.Gone && ((isDue[id] && !r.isTopDone(id)) || len(st.Gaps) > 0) {
			sum.LeftForLater++
		}
	}
	if p.full {
		e.opts.Metrics.deferred.Set(float64(sum.LeftForLater))
		e.opts.Metrics.setStates(p.ids, p.states.current)
	}
}

// forEach runs fn for each conversation, a bounded number at once. A
// conversation's failure is recorded and the others go on; a failure of the
// archive, a spent API budget or a stopped run ends the phase.
func (e *Engine) forEach(ctx context.Context, r *run, ids []string, fn func(ctx context.Context, id string) error) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(e.opts.Concurrency)
	for _, id := range ids {
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error {
			err := fn(gctx, id)
			if err == nil {
				return nil
			}
			// A sibling that stopped the run cancels gctx: what that cut
			// short did not fail.
			if stopsRun(err) || gctx.Err() != nil {
				return err
			}
			r.fail(id, err)
			// One line a conversation only at debug: when the API is down
			// every conversation fails alike, and the run says so once.
			r.log.Debug("conversation sync failed", zap.String("conversation_id", id), zap.Error(err))
			return nil
		})
	}
	return g.Wait()
}
