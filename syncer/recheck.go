package syncer

import (
	"context"
	"fmt"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/cekat-archiver/cekat-archiver/sink"
	"github.com/cekat-archiver/cekat-archiver/syncer/cekat"
)

// recheckChunk bounds the rows a re-check holds at once.
const recheckChunk = 500

// recheck fetches again the outbound messages whose status can still
// change (not yet read or failed, sent within the window) and writes a new
// version of those whose status or times changed. Messages archived by this
// run were fetched moments ago and are left for the next.
func (e *Engine) recheck(ctx context.Context, r *run, log *zap.Logger) error {
	if e.opts.RecheckWindow <= 0 {
		return nil
	}
	// Rows this run queued must be visible to the query's fetched_at cut.
	if err := e.store.Flush(ctx); err != nil {
		return storeErr(err)
	}
	since := e.opts.Now().UTC().Add(-e.opts.RecheckWindow)
	var afterConv, afterMsg string
	for {
		rows, err := e.store.Recheckable(ctx, since, r.started, afterConv, afterMsg, recheckChunk)
		if err != nil {
			return storeErr(fmt.Errorf("find messages to re-check: %w", err))
		}
		if len(rows) == 0 {
			return nil
		}
		if err := e.recheckRows(ctx, r, rows); err != nil {
			return err
		}
		last := rows[len(rows)-1]
		afterConv, afterMsg = last.ConversationID, last.MessageID
		if len(rows) < recheckChunk {
			return nil
		}
	}
}

func (e *Engine) recheckRows(ctx context.Context, r *run, rows []sink.MessageRow) error {
	updated := make([]*sink.MessageRow, len(rows))
	g, gctx := errgroup.WithContext(ctx)
	for i, old := range rows {
		select {
		case e.detail <- struct{}{}:
		case <-gctx.Done():
			return g.Wait()
		}
		g.Go(func() error {
			defer func() { <-e.detail }()
			d, err := e.api.GetMessage(gctx, old.MessageID)
			count(&r.progress.Rechecked, e.opts.Metrics.rechecked, 1)
			now := e.opts.Now().UTC()
			switch {
			case err == nil:
				if row, changed := recheckedRow(old, d, now); changed {
					updated[i] = &row
				}
			case cekat.IsNotFound(err):
				// Gone upstream: keep the last status seen and stop asking.
				row := old
				row.Enriched = false
				row.EnrichError = "re-check: message not found upstream (HTTP 404)"
				row.FetchedAt, row.Version = now, uint64(now.UnixNano())
				updated[i] = &row
			case cekat.KindOf(err) == cekat.KindPermanent:
				r.noteError(old.ConversationID, fmt.Errorf("re-check of %s: %w", old.MessageID, err))
			default:
				return fmt.Errorf("re-check of %s: %w", old.MessageID, err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	var out []sink.MessageRow
	for _, u := range updated {
		if u != nil {
			out = append(out, *u)
		}
	}
	if len(out) == 0 {
		return nil
	}
	if err := e.store.AddMessages(ctx, out...); err != nil {
		return storeErr(err)
	}
	count(&r.progress.Changed, e.opts.Metrics.changed, int64(len(out)))
	return nil
}

// recheckedRow applies a fresh detail answer to an archived row and says
// whether anything an analyst would see changed.
func recheckedRow(old sink.MessageRow, d cekat.Message, now time.Time) (sink.MessageRow, bool) {
	row := old
	if d.Status != "" {
		row.Status = d.Status
	}
	if d.DeliveredAt != nil {
		row.DeliveredAt = d.DeliveredAt
	}
	if d.ReadAt != nil {
		row.ReadAt = d.ReadAt
	}
	if d.UpdatedAt != nil {
		row.UpdatedAt = d.UpdatedAt
	}
	changed := row.Status != old.Status || !sameTime(row.DeliveredAt, old.DeliveredAt) ||
		!sameTime(row.ReadAt, old.ReadAt) || !sameTime(row.UpdatedAt, old.UpdatedAt)
	if !changed {
		return old, false
	}
	row.Enriched = true
	row.DetailRaw = string(d.Raw)
	row.FetchedAt, row.Version = now, uint64(now.UnixNano())
	return row, true
}

// sameTime compares at the archive's precision (whole seconds).
func sameTime(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Unix() == b.Unix()
}
