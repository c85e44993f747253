package purge

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/cekat-archiver/cekat-archiver/sink"
	"github.com/cekat-archiver/cekat-archiver/syncer/budget"
	"github.com/cekat-archiver/cekat-archiver/syncer/cekat"
)

// EraseArchive is what erasure needs of the archive, besides Archive.
type EraseArchive interface {
	Archive
	// ConversationTables lists the tables holding rows of conversations.
	ConversationTables(ctx context.Context) ([]string, error)
	// ConversationRows counts rows per conversation and table.
	ConversationRows(ctx context.Context, tables, ids []string) (map[string]map[string]uint64, error)
	// DeleteConversationRows removes the rows and waits until it is done.
	DeleteConversationRows(ctx context.Context, tables, ids []string) error
	ConversationsByPhone(ctx context.Context, phone string) ([]string, error)
}

// EraseRequest names what to erase.
type EraseRequest struct {
	ConversationIDs []string
	// Phones find the conversations whose archived rows name these numbers.
	Phones []string
	// Yes erases; without it Erase only says what it would erase.
	Yes              bool
	Operator, Reason string
}

// Erased is what erasure did, or would do, to one conversation.
type Erased struct {
	ConversationID string
	ByPhone        bool              // found through a phone number
	Rows           map[string]uint64 // archive rows by table, before
	Archived       uint64
	NewestSentAt   time.Time
	// Upstream: "deleted", "already gone" or "" (not checked, or failed).
	Upstream string
	Erased   bool  // every archive row removed, verified
	Err      error // why it was not erased
}

// EraseResult is the outcome of Erase.
type EraseResult struct {
	RunID         string
	Done          bool // Yes was given
	Conversations []Erased
	Err           error // what stopped the whole erasure
}

// Failure reports whether anything was not erased.
func (e EraseResult) Failure() error {
	if e.Err != nil {
		return e.Err
	}
	var failed []string
	for _, c := range e.Conversations {
		if c.Err != nil {
			failed = append(failed, c.ConversationID)
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("%d of %d conversations not erased", len(failed), len(e.Conversations))
	}
	return nil
}

// eraseAttempts bounds the deletions of one erasure: rows a sync running
// in another process wrote after a deletion are removed by the next one.
const eraseAttempts = 3

// Erase deletes conversations upstream (when still there), then removes
// every row of them from every archive table and verifies with a count
// that none is left, recording an intent before and the outcome after in
// the audit, without any message content. A conversation whose upstream
// delete fails keeps its archive rows: a sync would otherwise archive it
// again. Without req.Yes it only reports what it would erase.
func (p *Purger) Erase(ctx context.Context, archive EraseArchive, req EraseRequest) EraseResult {
	res := EraseResult{RunID: newRunID(), Done: req.Yes}
	log := p.log.With(zap.String("erase_run_id", res.RunID))
	res.Err = p.erase(ctx, archive, req, &res, log)
	for _, c := range res.Conversations {
		log.Info("erasure", zap.String("conversation_id", c.ConversationID), zap.Bool("erased", c.Erased),
			zap.String("upstream", c.Upstream), zap.Error(c.Err))
	}
	return res
}

func (p *Purger) erase(ctx context.Context, archive EraseArchive, req EraseRequest, res *EraseResult, log *zap.Logger) error {
	ids := dedupe(req.ConversationIDs)
	byPhone := map[string]bool{}
	for _, phone := range req.Phones {
		found, err := archive.ConversationsByPhone(ctx, phone)
		if err != nil {
			return fmt.Errorf("find conversations by phone number: %w", err)
		}
		if len(found) == 0 {
			// The number itself is not repeated: it is what is being erased.
			return errors.New("no archived conversation names the phone number given")
		}
		for _, id := range found {
			if !byPhone[id] {
				byPhone[id] = true
				ids = dedupe(append(ids, id))
			}
		}
	}
	if len(ids) == 0 {
		return errors.New("nothing to erase: name conversations or phone numbers")
	}
	tables, err := archive.ConversationTables(ctx)
	if err != nil {
		return err
	}
	rows, err := archive.ConversationRows(ctx, tables, ids)
	if err != nil {
		return err
	}
	sums, err := archive.ConversationSummaries(ctx, ids, time.Time{})
	if err != nil {
		return err
	}
	summary := map[string]sink.ConversationSummary{}
	for _, s := range sums {
		summary[s.ConversationID] = s
	}
	res.Conversations = make([]Erased, len(ids))
	for i, id := range ids {
		res.Conversations[i] = Erased{ConversationID: id, ByPhone: byPhone[id], Rows: rows[id],
			Archived: summary[id].Archived, NewestSentAt: summary[id].NewestSentAt}
	}
	if !req.Yes {
		return nil
	}

	row := func(c *Erased, event, reason, answer string) sink.AuditRow {
		if c.ByPhone {
			reason = "found by phone number; " + reason
		}
		return sink.AuditRow{At: p.opts.Now().UTC(), RunID: res.RunID, Action: sink.AuditErase, Event: event,
			ConversationID: c.ConversationID, ArchivedMessages: c.Archived, NewestSentAt: c.NewestSentAt,
			Reason: reason, APIAnswer: answer, Operator: req.Operator, OperatorReason: req.Reason}
	}
	intents := make([]sink.AuditRow, len(ids))
	for i := range res.Conversations {
		c := &res.Conversations[i]
		intents[i] = row(c, sink.EventIntent, "erase requested: "+describeRows(c.Rows), "")
	}
	if err := p.audit(ctx, intents...); err != nil {
		return err
	}
	earlier, err := archive.UnresolvedIntents(ctx, sink.AuditErase)
	if err != nil {
		return err
	}

	// Upstream first: once it is gone there, no sync can archive it again.
	pctx := budget.WithPriority(ctx, budget.PriorityPurge)
	var stop error
	var toDelete []*Erased
	for i := range res.Conversations {
		c := &res.Conversations[i]
		if stop != nil {
			c.Err = stop
			continue
		}
		_, err := p.api.ListMessages(pctx, c.ConversationID, 1, "")
		switch {
		case cekat.IsNotFound(err):
			c.Upstream = "already gone"
		case err == nil:
			toDelete = append(toDelete, c)
		case refused(err) || isBudget(err) || ctx.Err() != nil:
			stop, c.Err = err, err
		default:
			c.Err = fmt.Errorf("could not ask upstream about it: %w", err)
		}
	}
	for i := 0; i < len(toDelete) && stop == nil; i += 100 {
		batch := toDelete[i:min(i+100, len(toDelete))]
		ids := make([]string, len(batch))
		for k, c := range batch {
			ids[k] = c.ConversationID
		}
		answer, err := p.api.DeleteConversations(pctx, ids)
		if cekat.IsNotFound(err) {
			answer, err = cekat.DeleteResult{}, nil // each id is checked below
		}
		if err != nil {
			if ctx.Err() != nil || refused(err) || isBudget(err) {
				stop = err
			}
			for _, c := range batch {
				c.Err = fmt.Errorf("delete upstream: %w", err)
			}
			continue
		}
		listed := map[string]bool{}
		for _, id := range answer.ConversationIDs {
			listed[id] = true
		}
		for _, c := range batch {
			if listed[c.ConversationID] || (len(answer.ConversationIDs) == 0 && answer.Deleted == len(ids)) {
				c.Upstream = "deleted"
				continue
			}
			if _, err := p.api.ListMessages(pctx, c.ConversationID, 1, ""); cekat.IsNotFound(err) {
				c.Upstream = "already gone"
				continue
			}
			c.Err = fmt.Errorf("the backoffice did not delete it (deleted %d of %d asked)", answer.Deleted, len(ids))
		}
	}
	for _, c := range toDelete {
		if c.Err == nil && c.Upstream == "" && stop != nil {
			c.Err = stop
		}
	}

	// Then every archive row, verified.
	var local []*Erased
	var localIDs []string
	for i := range res.Conversations {
		if c := &res.Conversations[i]; c.Err == nil {
			local = append(local, c)
			localIDs = append(localIDs, c.ConversationID)
		}
	}
	var left map[string]map[string]uint64
	if len(local) > 0 {
		if err := p.flush(ctx); err != nil {
			return err
		}
		for attempt := 1; attempt <= eraseAttempts; attempt++ {
			if err := archive.DeleteConversationRows(ctx, tables, localIDs); err != nil {
				return err
			}
			if left, err = archive.ConversationRows(ctx, tables, localIDs); err != nil {
				return err
			}
			if len(left) == 0 {
				break
			}
			log.Warn("rows of erased conversations came back (a sync running elsewhere?); deleting again",
				zap.Int("attempt", attempt), zap.Int("conversations", len(left)))
		}
	}
	var outcomes []sink.AuditRow
	for i := range res.Conversations {
		c := &res.Conversations[i]
		switch {
		case c.Err != nil:
			outcomes = append(outcomes, row(c, sink.EventFailed, "not erased; its archive rows are kept: "+c.Err.Error(), c.Err.Error()))
		case len(left[c.ConversationID]) > 0:
			c.Err = fmt.Errorf("rows still there after %d deletions: %s", eraseAttempts, describeRows(left[c.ConversationID]))
			outcomes = append(outcomes, row(c, sink.EventFailed, c.Err.Error(), ""))
		default:
			c.Erased = true
			reason := fmt.Sprintf("%s upstream; removed from the archive: %s; verified: no row left in %d tables",
				c.Upstream, describeRows(c.Rows), len(tables))
			outcomes = append(outcomes, row(c, sink.EventErased, reason, ""))
			for _, e := range earlier {
				if e.ConversationID == c.ConversationID && e.RunID != res.RunID {
					// An erasure interrupted earlier is finished by this one.
					done := row(c, sink.EventErased, "finished by erase run "+res.RunID+": "+reason, "")
					done.RunID, done.Operator, done.OperatorReason = e.RunID, e.Operator, e.OperatorReason
					outcomes = append(outcomes, done)
				}
			}
		}
	}
	if err := p.audit(ctx, outcomes...); err != nil {
		return err
	}
	return nil
}

// describeRows lists row counts by table, e.g. "messages 120, sync_state 3".
func describeRows(rows map[string]uint64) string {
	if len(rows) == 0 {
		return "no rows"
	}
	tables := make([]string, 0, len(rows))
	for t := range rows {
		tables = append(tables, t)
	}
	sort.Strings(tables)
	parts := make([]string, len(tables))
	for i, t := range tables {
		parts[i] = fmt.Sprintf("%s %d", t, rows[t])
	}
	return strings.Join(parts, ", ")
}
