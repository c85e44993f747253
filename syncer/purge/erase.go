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
	// ConversationMessages maps the message ids the conversations' rows
	// name to their conversation.
	ConversationMessages(ctx context.Context, tables, ids []string) (map[string]string, error)
	// ConversationRows counts the scope's rows per conversation and table.
	ConversationRows(ctx context.Context, scope sink.EraseScope) (map[string]map[string]uint64, error)
	// DeleteConversationRows removes the scope's rows and waits until it is
	// done; a table without any gets no mutation.
	DeleteConversationRows(ctx context.Context, scope sink.EraseScope) error
	ConversationsByPhone(ctx context.Context, phone string) (sink.PhoneMatch, error)
	// PhoneRows counts the rows still naming the phone number, per table.
	PhoneRows(ctx context.Context, phone string) (map[string]uint64, error)
	// AuditRows returns the audit rows of a conversation.
	AuditRows(ctx context.Context, conversationID string) ([]sink.AuditRow, error)
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
	ByPhone       bool // phone numbers were asked for
	Conversations []Erased
	// Unlinked are the rows naming a phone number asked for that name no
	// conversation (webhook events never resolved), by table; erased with
	// the conversations.
	Unlinked map[string]uint64
	// PhoneRowsLeft are the rows still naming a phone number asked for
	// after the erasure, by table: none when it is verified.
	PhoneRowsLeft map[string]uint64
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
	if len(e.PhoneRowsLeft) > 0 {
		return fmt.Errorf("rows still name the phone number: %s", describeRows(e.PhoneRowsLeft))
	}
	return nil
}

// errNoSuchConversation is a conversation id with no row in the archive
// that the API does not know either: most likely a typo.
var errNoSuchConversation = errors.New("no such conversation: no row in any archive table and unknown upstream (a typo?); nothing erased")

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
	res := EraseResult{RunID: newRunID(), Done: req.Yes, ByPhone: len(req.Phones) > 0}
	log := p.log.With(zap.String("erase_run_id", res.RunID))
	res.Err = p.counted(ctx, sink.RunErase, func(ctx context.Context) error { return p.erase(ctx, archive, req, &res, log) })
	for _, c := range res.Conversations {
		log.Info("erasure", zap.String("conversation_id", c.ConversationID), zap.Bool("erased", c.Erased),
			zap.String("upstream", c.Upstream), zap.Error(c.Err))
	}
	return res
}

func (p *Purger) erase(ctx context.Context, archive EraseArchive, req EraseRequest, res *EraseResult, log *zap.Logger) error {
	ids := dedupe(req.ConversationIDs)
	byPhone := map[string]bool{}
	var unlinked []string // message ids of rows naming a number and no conversation
	for _, phone := range req.Phones {
		found, err := archive.ConversationsByPhone(ctx, phone)
		if err != nil {
			return fmt.Errorf("find conversations by phone number: %w", err)
		}
		if len(found.Conversations) == 0 && len(found.Messages) == 0 {
			// The number itself is not repeated: it is what is being erased.
			return errors.New("no archived row names the phone number given")
		}
		for _, id := range found.Conversations {
			if !byPhone[id] {
				byPhone[id] = true
				ids = dedupe(append(ids, id))
			}
		}
		unlinked = append(unlinked, found.Messages...)
	}
	if len(ids) == 0 && len(unlinked) == 0 {
		return errors.New("nothing to erase: name conversations or phone numbers")
	}
	tables, err := archive.ConversationTables(ctx)
	if err != nil {
		return err
	}
	// The message ids are taken once, before any deletion: verifying
	// needs them after the rows that tie them to a conversation are gone.
	messages, err := archive.ConversationMessages(ctx, tables, ids)
	if err != nil {
		return err
	}
	for _, m := range unlinked {
		if _, ok := messages[m]; !ok {
			messages[m] = ""
		}
	}
	rows, err := archive.ConversationRows(ctx, sink.EraseScope{Tables: tables, Conversations: ids, Messages: messages})
	if err != nil {
		return err
	}
	res.Unlinked = rows[""]
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
	// A conversation without a row may have been erased or purged before
	// (the audit says so); one the audit never saw either is, if unknown
	// upstream too, most likely a typo.
	audited := map[string]bool{}
	for _, c := range res.Conversations {
		if len(c.Rows) == 0 {
			before, err := archive.AuditRows(ctx, c.ConversationID)
			if err != nil {
				return err
			}
			audited[c.ConversationID] = len(before) > 0
		}
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
		case cekat.IsNotFound(err) && len(c.Rows) == 0 && !audited[c.ConversationID]:
			c.Err = errNoSuchConversation
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
	for i := 0; i < len(toDelete) && stop == nil; i += p.opts.BatchSize {
		batch := toDelete[i:min(i+p.opts.BatchSize, len(toDelete))]
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
				// The call is never sent again; an answer it lost is
				// read from upstream: absent now, deleted by it.
				if stop == nil {
					if _, cerr := p.api.ListMessages(pctx, c.ConversationID, 1, ""); cekat.IsNotFound(cerr) {
						c.Upstream = "deleted"
						continue
					}
				}
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

	// Then every archive row, verified. A conversation without any (gone
	// upstream only now, or never archived) needs no deletion: a mutation
	// rewrites every part of its table.
	var localIDs []string
	local := map[string]bool{"": true}
	for i := range res.Conversations {
		if c := &res.Conversations[i]; c.Err == nil && len(c.Rows) > 0 {
			localIDs = append(localIDs, c.ConversationID)
			local[c.ConversationID] = true
		}
	}
	scope := sink.EraseScope{Tables: tables, Conversations: localIDs, Messages: map[string]string{}}
	for m, conv := range messages {
		if local[conv] {
			scope.Messages[m] = conv
		}
	}
	var left map[string]map[string]uint64
	if len(localIDs) > 0 || len(res.Unlinked) > 0 {
		if err := p.flush(ctx); err != nil {
			return err
		}
		for attempt := 1; attempt <= eraseAttempts; attempt++ {
			if err := archive.DeleteConversationRows(ctx, scope); err != nil {
				return err
			}
			if left, err = archive.ConversationRows(ctx, scope); err != nil {
				return err
			}
			if len(left) == 0 {
				break
			}
			log.Warn("rows of erased conversations came back (a sync running elsewhere?); deleting again",
				zap.Int("attempt", attempt), zap.Int("conversations", len(left)))
		}
	}
	if stop == nil {
		for _, phone := range req.Phones {
			rows, err := archive.PhoneRows(ctx, phone)
			if err != nil {
				return err
			}
			for t, n := range rows {
				if res.PhoneRowsLeft == nil {
					res.PhoneRowsLeft = map[string]uint64{}
				}
				res.PhoneRowsLeft[t] += n
			}
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
