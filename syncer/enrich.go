package syncer

import (
	"context"
	"errors"
	"fmt"

	"github.com/cekat-archiver/cekat-archiver/sink"
	"github.com/cekat-archiver/cekat-archiver/syncer/budget"
	"github.com/cekat-archiver/cekat-archiver/syncer/cekat"
)

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
