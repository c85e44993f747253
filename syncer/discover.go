package syncer

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/cekat-archiver/cekat-archiver/sink"
	"github.com/cekat-archiver/cekat-archiver/syncer/budget"
	"github.com/cekat-archiver/cekat-archiver/syncer/cekat"
)

// ConversationLister is what discovery needs of the API: the New Open
// API's conversation list.
type ConversationLister interface {
	ListConversations(ctx context.Context, f cekat.ConversationFilter, cursor *cekat.ConversationCursor) (*cekat.ConversationPage, error)
}

// Discovery finds the workspace's conversations by themselves, and tells
// which of them changed: a conversation the list shows with the same
// last-message time as before its last complete walk has nothing new and
// is not polled. An idle run then costs the list's pages, not one call per
// conversation.
type Discovery struct {
	API ConversationLister
	// Filters; empty means any. Platforms are compared without case.
	InboxIDs      []string
	Platforms     []string
	StageStatuses []string
	// Interval is the least time between two listings (0: every run). A
	// run between listings polls as if discovery were off.
	Interval time.Duration
	PageSize int // per list page (100)
}

// matches says whether the filters take a conversation.
func (d *Discovery) matches(inbox, platform, stage string) bool {
	in := func(list []string, v string, fold bool) bool {
		if len(list) == 0 || v == "" {
			return true
		}
		return slices.ContainsFunc(list, func(s string) bool { return s == v || (fold && strings.EqualFold(s, v)) })
	}
	return in(d.InboxIDs, inbox, false) && in(d.Platforms, platform, true) && in(d.StageStatuses, stage, false)
}

// listing is what one run learnt from the conversation list.
type listing struct {
	mu      sync.Mutex
	items   map[string]cekat.Conversation // listed and taken by the filters
	rows    map[string]sink.ConversationRow
	changed map[string]bool // rows to write
	now     time.Time
}

// discover pages the conversation list when it is due, records what it
// says and returns it; nil when discovery is off or not due this run.
func (e *Engine) discover(ctx context.Context, r *run) (*listing, error) {
	d := e.opts.Discovery
	if d == nil || d.API == nil {
		return nil, nil
	}
	now := e.opts.Now().UTC()
	if last := e.lastListing.Load(); last != nil && d.Interval > 0 && now.Sub(*last) < d.Interval {
		return nil, nil
	}
	rows, err := e.store.Conversations(ctx)
	if err != nil {
		return nil, storeErr(fmt.Errorf("read conversations: %w", err))
	}
	l := &listing{items: map[string]cekat.Conversation{}, rows: rows, changed: map[string]bool{}, now: now}
	f := cekat.ConversationFilter{Limit: d.PageSize}
	if f.Limit <= 0 {
		f.Limit = 100
	}
	// One value of a filter goes to the API; several are applied here,
	// which costs one walk instead of one per value.
	if len(d.InboxIDs) == 1 {
		f.InboxID = d.InboxIDs[0]
	}
	if len(d.StageStatuses) == 1 {
		f.StageStatus = d.StageStatuses[0]
	}
	ctx = budget.WithPriority(ctx, budget.PriorityNew)
	var cursor *cekat.ConversationCursor
	asked := map[cekat.ConversationCursor]bool{}
	for pages := 1; ; pages++ {
		e.listCalls.Add(1)
		page, err := d.API.ListConversations(ctx, f, cursor)
		if err != nil {
			return nil, fmt.Errorf("list conversations (page %d): %w", pages, err)
		}
		if len(page.Bad) > 0 {
			q := make([]sink.QuarantineRow, 0, len(page.Bad))
			for _, b := range page.Bad {
				q = append(q, sink.QuarantineRow{ReceivedAt: now, RunID: r.id, Endpoint: cekat.EndpointConversations,
					MessageID: b.ID, Error: b.Error(), Raw: string(b.Raw)})
			}
			if err := r.addQuarantine(ctx, e, "", q); err != nil {
				return nil, err
			}
		}
		for _, c := range page.Conversations {
			// Every shard pages the whole list (it has no other way to find
			// its conversations), but records and tracks only its own: the
			// row of a conversation says what its shard's walk archived.
			if d.matches(c.InboxID, c.PlatformType, c.StageStatus) && e.opts.Shard.Owns(c.ID) {
				l.items[c.ID] = c
				l.note(c)
			}
		}
		if page.Next == nil {
			break
		}
		if asked[*page.Next] {
			return nil, fmt.Errorf("list conversations: cursor cycle: %+v was already asked for (%d pages)", *page.Next, pages)
		}
		asked[*page.Next] = true
		cursor = page.Next
	}
	e.lastListing.Store(&now)
	return l, nil
}

// note records what the list says of a conversation, when it says
// something new.
func (l *listing) note(c cekat.Conversation) {
	old, ok := l.rows[c.ID]
	if ok && old.Raw == string(c.Raw) {
		return
	}
	row := sink.ConversationRow{ConversationID: c.ID, InboxID: c.InboxID, InboxName: c.InboxName, ContactID: c.ContactID,
		ContactName: c.ContactName, ContactPhone: c.ContactPhone, PlatformType: c.PlatformType, StageStatus: c.StageStatus,
		HandledByID: c.HandledByID, HandledByName: c.HandledByName, Labels: c.Labels, LastMessageAt: c.LastMessageAt,
		CreatedAt: c.CreatedAt, ResolvedAt: c.ResolvedAt, Raw: string(c.Raw), ListedAt: l.now, Activity: activity(c),
		SyncedActivity: old.SyncedActivity, Version: max(old.Version+1, uint64(l.now.UnixNano()))}
	l.rows[c.ID] = row
	l.changed[c.ID] = true
}

// activity is the list's word for a conversation's newest message: when
// it was created, as the list said it (so no agreement of precision or zone
// with the message list is needed), and a hash of its text, since several
// messages can share a time stamp. A conversation listed with no last
// message has "none"; one whose answer does not say has "" and is polled as
// usual.
func activity(c cekat.Conversation) string {
	switch {
	case c.LastMessageAt != nil:
		h := fnv.New64a()
		h.Write([]byte(c.LastMessage))
		return c.LastMessageAt.UTC().Format(time.RFC3339Nano) + "#" + strconv.FormatUint(h.Sum64(), 36)
	case c.LastMessageKnown:
		return "none"
	}
	return ""
}

// unchanged says whether the list shows nothing new in a conversation
// since its last complete walk from the top: the activity listed before
// that walk, or the newest message the walk found (a walk between
// listings, for a webhook event).
func (l *listing) unchanged(id string, h *heads) (known, same bool) {
	if l == nil {
		return false, false
	}
	c, ok := l.items[id]
	if !ok || activity(c) == "" {
		return false, false
	}
	if l.rows[id].SyncedActivity == activity(c) {
		return true, true
	}
	if h.shownBy(c) {
		l.synced(id)
		return true, true
	}
	return true, false
}

// synced records that a walk from the top completed after the listing: the
// activity it showed is archived.
func (l *listing) synced(id string) {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	c, ok := l.items[id]
	if !ok {
		return
	}
	row := l.rows[id]
	if a := activity(c); row.SyncedActivity != a {
		row.SyncedActivity = a
		row.Version = max(row.Version+1, uint64(l.now.UnixNano()))
		l.rows[id] = row
		l.changed[id] = true
	}
}

// write queues the rows that changed, behind the messages of the walks.
func (l *listing) write(ctx context.Context, e *Engine) error {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.changed) == 0 {
		return nil
	}
	rows := make([]sink.ConversationRow, 0, len(l.changed))
	for id := range l.changed {
		rows = append(rows, l.rows[id])
	}
	l.changed = map[string]bool{}
	if err := e.store.AddConversations(context.WithoutCancel(ctx), rows...); err != nil {
		return storeErr(err)
	}
	return nil
}

// discovered returns the ids of conversations the list showed, now or in
// an earlier run, that the filters take.
func (e *Engine) discovered(ctx context.Context, l *listing) ([]string, error) {
	d := e.opts.Discovery
	if d == nil || d.API == nil {
		return nil, nil
	}
	var rows map[string]sink.ConversationRow
	if l != nil {
		rows = l.rows
	} else {
		var err error
		if rows, err = e.store.Conversations(ctx); err != nil {
			return nil, storeErr(fmt.Errorf("read conversations: %w", err))
		}
	}
	var ids []string
	for id, row := range rows {
		if d.matches(row.InboxID, row.PlatformType, row.StageStatus) {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids, nil
}

// discoverOrWarn runs discover; a failing list is reported and the run
// polls as if discovery were off.
func (e *Engine) discoverOrWarn(ctx context.Context, r *run) (*listing, error) {
	l, err := e.discover(ctx, r)
	if err == nil {
		return l, nil
	}
	if ctx.Err() != nil || stopsRun(err) || errors.As(err, new(errStore)) {
		return nil, err
	}
	r.noteError("(conversation list)", err)
	r.log.Warn("listing conversations failed; this run polls every due conversation", zap.Error(err))
	return nil, nil
}

// hasNewMessagesGap says whether an interrupted walk from the top left new
// messages to fetch: a gap that stops at an earlier head.
func hasNewMessagesGap(st sink.State) bool {
	return slices.ContainsFunc(st.Gaps, func(g sink.Gap) bool { return g.Stop != "" })
}
