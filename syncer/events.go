package syncer

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/cekat-archiver/cekat-archiver/sink"
	"github.com/cekat-archiver/cekat-archiver/syncer/budget"
	"github.com/cekat-archiver/cekat-archiver/syncer/cekat"
	"github.com/cekat-archiver/cekat-archiver/syncer/webhook"
)

// EventStore is what acting on webhook events needs of the archive.
type EventStore interface {
	PendingWebhookEvents(ctx context.Context, since time.Time, limit int) ([]sink.WebhookEvent, error)
	SaveWebhookEvents(ctx context.Context, events ...sink.WebhookEvent) error
	TrackConversations(ctx context.Context, source string, ids ...string) error
	// MessageConversations returns, of the message ids, those whose
	// conversation is known (archived, or resolved for an earlier event),
	// with it.
	MessageConversations(ctx context.Context, ids []string) (map[string]string, error)
}

// eventsLookBack bounds how old a stored event may be and still be acted
// on: older ones are left to the cron runs.
const eventsLookBack = 7 * 24 * time.Hour

// maxEventsPerRun bounds the events one run takes on.
const maxEventsPerRun = 5000

// EventsSummary says what a run made of webhook events.
type EventsSummary struct {
	Events  int // acted on
	Ignored int // known to need nothing, or unknown
	// Waiting counts the events left pending because, under a daily cap,
	// the runs that list conversations for events are spaced out
	// (Options.EventBatch) or the day keeps its rest for the scheduled runs.
	Waiting int
	Sync    Summary
}

// ApplyEvents acts on the webhook events not acted on yet. Events are
// hints: a new message makes its conversation sync now, a status change
// makes its message due for a re-check now, a new conversation is
// tracked; what is archived still comes from the API. An event that names
// no conversation costs a detail call to find it (under a daily cap only
// while the day has room beyond the runs' listing; else the next run's
// listing finds the message). The events are marked
// done only after the sync they asked for ran, so a crash loses none.
func (e *Engine) ApplyEvents(ctx context.Context, store EventStore) (EventsSummary, error) {
	var out EventsSummary
	now := e.opts.Now().UTC()
	events, err := store.PendingWebhookEvents(ctx, now.Add(-eventsLookBack), maxEventsPerRun)
	if err != nil {
		return out, storeErr(err)
	}
	if len(events) == 0 {
		return out, nil
	}
	ctx = budget.WithPriority(ctx, budget.PriorityNew)
	// The detail calls that find an event's conversation are the requests
	// of the run the events ask for, recorded in its row as they are made.
	acct := e.newAccount(sink.RunWebhook)
	ctx = withAccount(ctx, acct)
	fetched, changed, told := map[string]cekat.Message{}, map[string]bool{}, map[string]StatusTold{}
	// A message whose conversation is known costs no detail call: the
	// archive has it, or an earlier event (one delivered again, or one a
	// crash or a concurrent run left pending) resolved it.
	known, err := e.knownConversations(ctx, store, events)
	if err != nil {
		return out, err
	}
	if events, err = e.ownEvents(ctx, store, events, fetched, known, now); err != nil || len(events) == 0 {
		e.closeAccount(ctx, acct, err, false)
		return out, err
	}
	var convs, tracked []string
	var checks []sink.StatusCheck
	done := make([]sink.WebhookEvent, 0, len(events))
	var resolved []sink.WebhookEvent
	lookups := e.eventLookups()
	wait := e.eventsWait(now)
	for _, ev := range events {
		n := len(convs)
		outcome, err := e.applyEvent(ctx, &ev, &convs, &tracked, &checks, fetched, known, now, lookups)
		if err == nil && len(convs) > n && wait != "" {
			// Left pending for a later run of events; what else it told
			// (a conversation to track) waits with it.
			convs, tracked = convs[:n], slices.DeleteFunc(tracked, func(c string) bool { return c == ev.ConversationID })
			out.Waiting++
			if fetched[ev.MessageID].ConversationID == ev.ConversationID && ev.MessageID != "" {
				r := ev // resolved through a detail call: not paid for again
				r.Version = max(ev.Version+1, uint64(now.UnixNano()))
				resolved = append(resolved, r)
			}
			continue
		}
		if err == nil && ev.MessageID != "" && (ev.Event == "message.delivered" || ev.Event == "message.read") {
			at := ev.ReceivedAt
			if p, perr := webhook.Parse([]byte(ev.Raw)); perr == nil && !p.Time.IsZero() {
				at = p.Time
			}
			if old, ok := told[ev.MessageID]; !ok || old.Event != "message.read" {
				told[ev.MessageID] = StatusTold{Event: ev.Event, At: at}
			}
		}
		if err != nil {
			if ctx.Err() != nil || stopsRun(err) {
				break // the rest stays pending
			}
			outcome = "not acted on: " + truncateError(err.Error())
		}
		if outcome == "ignored" {
			out.Ignored++
		} else {
			out.Events++
		}
		if ev.ConversationID != "" && fetched[ev.MessageID].ConversationID == ev.ConversationID {
			// Resolved through a detail call: kept on the pending event at
			// once, so that a run after a crash does not pay for it again.
			r := ev
			r.Version = max(ev.Version+1, uint64(now.UnixNano()))
			resolved = append(resolved, r)
		}
		ev.Processed, ev.Outcome, ev.Version = true, outcome, max(ev.Version+2, uint64(now.UnixNano())+1)
		done = append(done, ev)
	}
	if err := store.SaveWebhookEvents(context.WithoutCancel(ctx), resolved...); err != nil {
		e.closeAccount(ctx, acct, err, false)
		return out, storeErr(err)
	}
	if len(checks) > 0 {
		err := e.store.AddChecks(ctx, checks...)
		if err == nil {
			// The run's query of due checks must see them.
			err = e.store.Flush(ctx)
		}
		if err != nil {
			e.closeAccount(ctx, acct, err, false)
			return out, storeErr(err)
		}
	}
	slices.Sort(convs)
	convs = slices.Compact(convs)
	if len(convs) > 0 {
		e.eventListed(now)
	}
	if out.Waiting > 0 {
		e.log.Debug("webhook events asking for conversations to be listed wait", zap.Int("events", out.Waiting),
			zap.String("why", wait))
	}
	for _, c := range checks {
		changed[c.MessageID] = true
	}
	out.Sync = e.SyncWith(ctx, SyncOptions{Only: convs, Triggered: true, Fetched: fetched, Changed: changed,
		Told: told, account: acct})
	if err := out.Sync.Failure(); err != nil || out.Sync.Stopped {
		// Left pending: the next run acts on them again.
		return out, err
	}
	if err := e.trackConfirmed(ctx, store, tracked, done); err != nil {
		return out, err
	}
	if err := store.SaveWebhookEvents(context.WithoutCancel(ctx), done...); err != nil {
		return out, storeErr(err)
	}
	e.log.Info("webhook events acted on", zap.Int("events", out.Events), zap.Int("ignored", out.Ignored),
		zap.Int("conversations_synced", len(convs)), zap.Int("statuses_due", len(checks)))
	return out, nil
}

// trackConfirmed tracks the conversations that conversation.created events
// named, once the sync they asked for confirmed them upstream: a signed
// event with an id the API does not know (404) would otherwise be tracked,
// and listed by every run, for ever. The sync's list call is the
// confirmation, so it costs no call of its own.
func (e *Engine) trackConfirmed(ctx context.Context, store EventStore, ids []string, done []sink.WebhookEvent) error {
	if len(ids) == 0 {
		return nil
	}
	states, err := e.store.LoadStates(ctx)
	if err != nil {
		return storeErr(err)
	}
	var confirmed []string
	gone := map[string]bool{}
	for _, id := range ids {
		if st, ok := states[id]; ok && st.Gone {
			gone[id] = true
			continue
		}
		confirmed = append(confirmed, id)
	}
	for i := range done {
		if done[i].Event == "conversation.created" && gone[done[i].ConversationID] {
			done[i].Outcome = "not acted on: conversation " + done[i].ConversationID + " unknown upstream (HTTP 404), not tracked"
		}
	}
	if len(gone) > 0 {
		e.log.Warn("conversation.created events named conversations unknown upstream; not tracked", zap.Int("conversations", len(gone)))
	}
	if err := store.TrackConversations(ctx, "webhook", confirmed...); err != nil {
		return storeErr(err)
	}
	return nil
}

// knownConversations looks up the conversations of the messages the
// events name without their conversation.
func (e *Engine) knownConversations(ctx context.Context, store EventStore, events []sink.WebhookEvent) (map[string]string, error) {
	var ids []string
	for _, ev := range events {
		if ev.ConversationID == "" && ev.MessageID != "" {
			ids = append(ids, ev.MessageID)
		}
	}
	if len(ids) == 0 {
		return map[string]string{}, nil
	}
	slices.Sort(ids)
	known, err := store.MessageConversations(ctx, slices.Compact(ids))
	if err != nil {
		return nil, storeErr(err)
	}
	return known, nil
}

// applyEvent acts on one event; the conversation it resolves is set on
// the event, so that its stored row names it (an erasure finds the event
// by it).
func (e *Engine) applyEvent(ctx context.Context, ev *sink.WebhookEvent, convs, tracked *[]string, checks *[]sink.StatusCheck,
	fetched map[string]cekat.Message, known map[string]string, now time.Time, lookups *atomic.Int64) (string, error) {
	conv := ev.ConversationID
	findConv := func() (c string, err error) {
		defer func() {
			if err == nil {
				ev.ConversationID = c
			}
		}()
		if conv != "" {
			return conv, nil
		}
		if ev.MessageID == "" {
			return "", fmt.Errorf("event names neither a conversation nor a message")
		}
		if m, ok := fetched[ev.MessageID]; ok {
			return m.ConversationID, nil
		}
		if c := known[ev.MessageID]; c != "" {
			return c, nil
		}
		if lookups != nil && lookups.Add(-1) < 0 {
			return "", errNoLookup
		}
		// The answer is also the message's detail: the run uses it to
		// enrich or re-check the message instead of asking again.
		m, err := e.api.GetMessage(ctx, ev.MessageID)
		if err != nil {
			return "", fmt.Errorf("find the conversation of message %s: %w", ev.MessageID, err)
		}
		if m.ConversationID == "" {
			return "", fmt.Errorf("the detail of message %s names no conversation", ev.MessageID)
		}
		fetched[ev.MessageID] = m
		return m.ConversationID, nil
	}
	switch ev.Event {
	case "message.received", "message.sent":
		c, err := findConv()
		if errors.Is(err, errNoLookup) {
			return "left to the next run: " + errNoLookup.Error(), nil
		}
		if err != nil {
			return "", err
		}
		*convs = append(*convs, c)
		return "conversation " + c + " synced", nil
	case "message.delivered", "message.read", "message.failed":
		c, err := findConv()
		if errors.Is(err, errNoLookup) {
			return "left to the next run: " + errNoLookup.Error(), nil
		}
		if err != nil {
			return "", err
		}
		if ev.MessageID == "" {
			*convs = append(*convs, c)
			return "conversation " + c + " synced (no message named)", nil
		}
		*checks = append(*checks, sink.StatusCheck{ConversationID: c, MessageID: ev.MessageID, Until: now.Add(time.Hour),
			CheckedAt: now, NextCheckAt: now, Open: true, Version: uint64(now.UnixNano())})
		return "status of " + ev.MessageID + " fetched again", nil
	case "conversation.created":
		if conv == "" {
			return "", fmt.Errorf("event names no conversation")
		}
		*tracked = append(*tracked, conv)
		*convs = append(*convs, conv)
		return "conversation " + conv + " tracked", nil
	}
	return "ignored", nil
}

// ownEvents returns the events of this shard's conversations. The shards
// share the stored events; each acts on its own and leaves the others
// pending for their shards. An event that names only a message is its
// message's shard's to resolve: that shard pays the detail call that finds
// the conversation (kept in fetched for its run, as applyEvent does) and,
// when the conversation is another shard's, stores the event again naming
// it, still pending, for that shard, whose run then pays for the detail
// again: a shard never writes another's conversation.
func (e *Engine) ownEvents(ctx context.Context, store EventStore, events []sink.WebhookEvent, fetched map[string]cekat.Message,
	known map[string]string, now time.Time) ([]sink.WebhookEvent, error) {
	sh := e.opts.Shard
	if !sh.Sharded() {
		return events, nil
	}
	own := events[:0:0]
	var save []sink.WebhookEvent // handed over, or settled here
	settle := func(ev sink.WebhookEvent) {
		ev.Version = max(ev.Version+1, uint64(now.UnixNano()))
		save = append(save, ev)
	}
events:
	for _, ev := range events {
		switch {
		case ev.ConversationID != "":
			if sh.Owns(ev.ConversationID) {
				own = append(own, ev)
			}
			continue
		case ev.MessageID == "":
			// Names neither: this shard's to mark as not acted on by the
			// same rule, applied to the event's id.
			if sh.Owns(ev.EventID) {
				own = append(own, ev)
			}
			continue
		case known[ev.MessageID] != "":
			if sh.Owns(known[ev.MessageID]) {
				own = append(own, ev)
			}
			continue
		case !sh.Owns(ev.MessageID):
			continue
		}
		m, err := e.api.GetMessage(ctx, ev.MessageID)
		switch {
		case err != nil && (ctx.Err() != nil || stopsRun(err)):
			break events // the rest stays pending
		case err != nil:
			ev.Processed = true
			ev.Outcome = "not acted on: " + truncateError(fmt.Sprintf("find the conversation of message %s: %v", ev.MessageID, err))
			settle(ev)
		case m.ConversationID == "":
			ev.Processed = true
			ev.Outcome = "not acted on: the detail of message " + ev.MessageID + " names no conversation"
			settle(ev)
		case sh.Owns(m.ConversationID):
			fetched[ev.MessageID] = m
			own = append(own, ev)
		default:
			ev.ConversationID = m.ConversationID
			settle(ev)
		}
	}
	if err := store.SaveWebhookEvents(context.WithoutCancel(ctx), save...); err != nil {
		return nil, storeErr(err)
	}
	return own, nil
}

// eventsWait says why, under a daily cap, the events that ask for
// conversations to be listed wait now ("": they do not): the last run that
// listed for events was less than EventBatch ago, or the day has no room
// for one beyond what the scheduled runs' listing keeps. A run for events
// then costs at most one listing a batch, paid from the enrichment's part.
func (e *Engine) eventsWait(now time.Time) string {
	if e.opts.Budget == nil || e.opts.EventBatch < 0 {
		return ""
	}
	est := int(e.listingPerRun.Load())
	free, _ := e.opts.Budget.Spare(est)
	switch {
	case free < 0:
		return "" // no daily cap
	case est <= 0:
		return "no scheduled run has measured the listing the day must keep yet"
	case free < eventListingCost:
		return "the day's budget keeps what is left for the scheduled runs' listing"
	}
	if last := e.lastEventListing.Load(); last != nil && now.Sub(*last) < e.opts.EventBatch {
		return "a run listed for events less than " + e.opts.EventBatch.String() + " ago"
	}
	return ""
}

// eventListingCost is what a run for events is expected to list: a page
// or two of the inbox, or as many conversations.
const eventListingCost = 2

func (e *Engine) eventListed(now time.Time) { e.lastEventListing.Store(&now) }
