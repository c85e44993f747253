package syncer

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cekat-archiver/cekat-archiver/sink"
	"github.com/cekat-archiver/cekat-archiver/syncer/budget"
	"github.com/cekat-archiver/cekat-archiver/syncer/cekat"
)

// Statuses are kept current by a schedule per message, not per run: a
// message whose status can still change and was last fetched at age c is
// fetched again at age 2c + 1 minute, until the re-check window ends. So a status that changed upstream
// when the message was a old is archived by the first run after the
// message is 2a + 1 minute old, and a message costs at most about
// log2(window / 1 minute) re-checks however often runs start. The newest
// page of a polled conversation shows its messages' statuses in the flat
// shape: those refresh the schedule for free, and only a change seen there
// costs a detail call (for delivered_at and read_at); an unchanged one is
// rescheduled as if fetched.

// enrichRetryFor is how long a message whose detail failed for a transient
// reason stays on the schedule to be enriched.
const enrichRetryFor = 7 * 24 * time.Hour

// maxDueChecks bounds the schedule entries one run takes on.
const maxDueChecks = 20000

// finalStatus says whether nothing can follow a status. Unknown statuses
// are not final.
func finalStatus(s string) bool {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "read", "failed":
		return true
	}
	return false
}

// schedule returns a message's schedule entry after its status was fetched
// at now. pending marks a message still to be enriched after a transient
// failure: it is retried with a backoff until its Until.
func (e *Engine) schedule(c sink.StatusCheck, status string, pending bool, now time.Time) sink.StatusCheck {
	c.CheckedAt = now
	c.Version = max(c.Version+1, uint64(now.UnixNano()))
	window := e.opts.RecheckWindow
	if window > 0 {
		c.Until = later(c.Until, c.SentAt.Add(window))
	}
	if pending {
		c.NextCheckAt = now.Add(min(time.Minute<<min(c.Checks, 9), 6*time.Hour))
		c.Open = now.Before(c.Until)
		return c
	}
	end := c.SentAt.Add(window)
	if window <= 0 || finalStatus(status) || !now.Before(end) {
		c.Open, c.NextCheckAt = false, now
		return c
	}
	c.NextCheckAt = nextCheck(c.SentAt, now, end, e.opts.RecheckFloor)
	c.Open = true
	return c
}

// nextCheck is when a status that can still change is fetched again, at
// the latest at the window's end. The freshness rule: at age 2 x (age now)
// + 1 minute, so that a change is archived within about its own age. With
// a floor (webhook events tell each change), the schedule only catches
// what events did not tell: at ages floor and 4 x floor, then at the end.
func nextCheck(sent, now, end time.Time, floor time.Duration) time.Time {
	age := max(now.Sub(sent), 0)
	next := end
	switch {
	case floor <= 0:
		next = sent.Add(2*age + time.Minute)
	case age < floor:
		next = sent.Add(floor)
	case age < 4*floor:
		next = sent.Add(4 * floor)
	}
	if next.After(end) {
		return end
	}
	return next
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// dueSet holds the schedule entries due in a run, by conversation; the
// walks and the re-check phase take from it.
type dueSet struct {
	mu     sync.Mutex
	byConv map[string]map[string]sink.StatusCheck
}

func newDueSet(checks []sink.StatusCheck) *dueSet {
	d := &dueSet{byConv: map[string]map[string]sink.StatusCheck{}}
	for _, c := range checks {
		m := d.byConv[c.ConversationID]
		if m == nil {
			m = map[string]sink.StatusCheck{}
			d.byConv[c.ConversationID] = m
		}
		m[c.MessageID] = c
	}
	return d
}

func (d *dueSet) take(conv, id string) (sink.StatusCheck, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	c, ok := d.byConv[conv][id]
	if ok {
		delete(d.byConv[conv], id)
	}
	return c, ok
}

// all returns the entries, leaving them in place.
func (d *dueSet) all() []sink.StatusCheck {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []sink.StatusCheck
	for _, m := range d.byConv {
		for _, c := range m {
			out = append(out, c)
		}
	}
	return out
}

// rest takes what is left, by conversation, in id order.
func (d *dueSet) rest() (convs []string, checks map[string][]sink.StatusCheck) {
	d.mu.Lock()
	defer d.mu.Unlock()
	checks = map[string][]sink.StatusCheck{}
	for conv, m := range d.byConv {
		if len(m) == 0 {
			continue
		}
		convs = append(convs, conv)
		for _, c := range m {
			checks[conv] = append(checks[conv], c)
		}
		slices.SortFunc(checks[conv], func(a, b sink.StatusCheck) int { return strings.Compare(a.MessageID, b.MessageID) })
	}
	d.byConv = map[string]map[string]sink.StatusCheck{}
	slices.Sort(convs)
	return convs, checks
}

// refreshFromList reads the statuses a list page shows (flat shape) against
// the archive: a message whose status can still change and did not is
// rescheduled as if fetched, without a call; one whose status changed is
// fetched again. It returns what the archive holds of the page's messages.
func (c *convSync) refreshFromList(ctx context.Context, own []cekat.Message) (map[string]sink.ArchivedMessage, error) {
	conv := c.st.ConversationID
	ids := make([]string, len(own))
	for i, m := range own {
		ids[i] = m.ID
	}
	archived := map[string]sink.ArchivedMessage{}
	// The first page of a conversation the archive held nothing of: this
	// run has written nothing of it yet either.
	if _, fresh := c.r.unarchived.LoadAndDelete(conv); !fresh || c.st.HeadMessageID != "" || len(c.st.Gaps) > 0 {
		var err error
		if archived, err = c.e.store.Archived(ctx, conv, ids); err != nil {
			return nil, storeErr(fmt.Errorf("look up archived messages: %w", err))
		}
	}
	listed := map[string]cekat.Message{}
	var checks []sink.StatusCheck
	for _, m := range own {
		if m.Status == "" {
			continue
		}
		c.e.listHasStatus.Store(true)
		a, ok := archived[m.ID]
		if !ok {
			continue
		}
		due, isDue := c.r.due.take(conv, m.ID)
		switch {
		case !a.Enriched && !isDue:
			continue // left without a detail answer: its schedule says when to ask
		case !isDue && !listChanged(a, m) && finalStatus(a.Status):
			continue
		case !isDue:
			due = sink.StatusCheck{ConversationID: conv, MessageID: m.ID, SentAt: m.Timestamp}
		}
		listed[m.ID] = m
		checks = append(checks, due)
	}
	if len(checks) == 0 {
		return archived, nil
	}
	return archived, c.e.recheckConversation(budget.WithPriority(ctx, budget.PriorityRecheck), c.r, conv, checks, listed)
}

// listChanged says whether a list item shows a status other than the one
// archived.
func listChanged(a sink.ArchivedMessage, m cekat.Message) bool {
	return m.Status != a.Status || (m.UpdatedAt != nil && !sameTime(m.UpdatedAt, a.UpdatedAt))
}

// recheck works through the schedule entries no walk of this run took care
// of. In the flat shape a conversation whose due messages are on its newest
// page is listed once first: the page shows their statuses.
func (e *Engine) recheck(ctx context.Context, r *run) error {
	convs, checks := r.due.rest()
	if len(convs) == 0 {
		return nil
	}
	ctx = budget.WithPriority(ctx, budget.PriorityRecheck)
	return e.forEach(ctx, r, convs, func(ctx context.Context, conv string) error {
		due := checks[conv]
		// A list answer pays only for the scheduled checks it may settle;
		// a change an event told of is fetched directly.
		// Nor does it settle an entry waiting for its enrichment: that is
		// fetched whatever the list says. Under a daily cap the list call
		// is the backlog's like a detail call, paid from the run's
		// allowance: what is left is the later runs' listing.
		scheduled := slices.DeleteFunc(slices.Clone(due), func(c sink.StatusCheck) bool {
			return r.changed[c.MessageID] || c.Kind != sink.CheckRecheck
		})
		var listed map[string]cekat.Message
		if e.listHasStatus.Load() && !r.isTopDone(conv) && len(scheduled) > 0 && e.onNewestPage(ctx, conv, scheduled) && r.spend() {
			e.listCalls.Add(1)
			page, err := e.api.ListMessages(ctx, conv, e.opts.PageSize, "")
			if err != nil && (ctx.Err() != nil || stopsRun(err)) {
				return err
			}
			if err == nil {
				listed = make(map[string]cekat.Message, len(page.Messages))
				for _, m := range page.Messages {
					if m.ConversationID == "" || m.ConversationID == conv {
						listed[m.ID] = m
					}
				}
			}
		}
		return e.recheckConversation(ctx, r, conv, due, listed)
	})
}

// onNewestPage says whether the newest of the due messages is on the
// conversation's newest list page: then one list call shows its status, and
// those of the messages around it, for the price of one detail call.
func (e *Engine) onNewestPage(ctx context.Context, conv string, due []sink.StatusCheck) bool {
	var newest time.Time
	for _, c := range due {
		newest = later(newest, c.SentAt)
	}
	n, err := e.store.NewerThan(ctx, conv, newest)
	return err == nil && n < uint64(e.opts.PageSize)
}

// recheckConversation brings the archived statuses of some messages of one
// conversation up to date: those the list answer shows unchanged are only
// rescheduled; the others are fetched again, and a new version is written
// when something changed. What completed is written even when the run
// stops.
func (e *Engine) recheckConversation(ctx context.Context, r *run, conv string, checks []sink.StatusCheck, listed map[string]cekat.Message) error {
	now := e.opts.Now().UTC()
	var (
		mu      sync.Mutex
		rows    []sink.MessageRow
		entries []sink.StatusCheck
	)
	keep := func(row *sink.MessageRow, entry sink.StatusCheck) {
		mu.Lock()
		defer mu.Unlock()
		if row != nil {
			rows = append(rows, *row)
		}
		entries = append(entries, entry)
	}
	// Those the list shows unchanged need only their archived status, from
	// the narrow index; whole rows, whose granules of raw JSON made an idle
	// run's lookups 20 times slower, are read only for messages to fetch.
	if len(listed) > 0 {
		var ids []string
		for _, c := range checks {
			if l, ok := listed[c.MessageID]; ok && l.Status != "" {
				ids = append(ids, c.MessageID)
			}
		}
		archived, err := e.store.Archived(ctx, conv, ids)
		if err != nil {
			return storeErr(fmt.Errorf("read messages to re-check: %w", err))
		}
		checks = slices.DeleteFunc(slices.Clone(checks), func(c sink.StatusCheck) bool {
			a, ok := archived[c.MessageID]
			if !ok || !a.Enriched || listChanged(a, listed[c.MessageID]) {
				return false
			}
			keep(nil, e.schedule(c, a.Status, false, now))
			return true
		})
	}
	ids := make([]string, len(checks))
	for i, c := range checks {
		ids[i] = c.MessageID
	}
	current, err := e.store.CurrentMessages(ctx, conv, ids)
	if err != nil {
		return storeErr(fmt.Errorf("read messages to re-check: %w", err))
	}
	old := make(map[string]sink.MessageRow, len(current))
	for _, row := range current {
		old[row.MessageID] = row
	}
	// The first call that must end the re-checks (the stop, a spent budget)
	// cancels those not yet made.
	gctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		calls   sync.WaitGroup
		callErr error
		failed  sync.Once
	)
	for _, chk := range checks {
		row, ok := old[chk.MessageID]
		if !ok {
			// Not in the archive (never expected): nothing to keep current.
			chk.Open, chk.Version = false, max(chk.Version+1, uint64(now.UnixNano()))
			keep(nil, chk)
			continue
		}
		chk.SentAt = row.SentAt
		apply := func(d cekat.Message, err error) {
			now := e.opts.Now().UTC()
			waited := chk.Kind != sink.CheckRecheck
			switch {
			case waited && err == nil:
				// The backlog's detail call: an enrichment, not a re-check.
				count(&r.progress.Enriched, e.opts.Metrics.enriched, 1)
				chk.Kind = sink.CheckRecheck
			default:
				count(&r.progress.Rechecked, e.opts.Metrics.rechecked, 1)
				chk.Checks++
			}
			switch {
			case err == nil:
				if fresh, changed := recheckedRow(row, d, now); changed {
					keep(&fresh, e.schedule(chk, fresh.Status, false, now))
				} else {
					keep(nil, e.schedule(chk, row.Status, false, now))
				}
			case cekat.IsNotFound(err):
				// Gone upstream: keep the last status seen and stop asking.
				gone := row
				gone.EnrichError = "re-check: message not found upstream (HTTP 404)"
				gone.FetchedAt, gone.Version = now, max(row.Version+1, uint64(now.UnixNano()))
				chk.Open, chk.CheckedAt, chk.Version = false, now, max(chk.Version+1, uint64(now.UnixNano()))
				keep(&gone, chk)
			default:
				r.noteError(conv, fmt.Errorf("re-check of %s: %w", row.MessageID, err))
				keep(nil, e.schedule(chk, row.Status, !row.Enriched, now))
			}
		}
		if d, ok := r.fetched[row.MessageID]; ok {
			apply(d, nil)
			continue
		}
		if !r.spend() {
			// Left due: the backlog waits for the budget. What an event
			// told stands in, provisional, until then.
			if t, ok := r.told[chk.MessageID]; ok {
				if prov, ok := provisionalRow(row, t, e.opts.Now().UTC()); ok {
					keep(&prov, provisionalEntry(chk, e.opts.Now().UTC()))
				}
			}
			continue
		}
		calls.Add(1)
		call := func() {
			defer calls.Done()
			d, err := e.api.GetMessage(gctx, row.MessageID)
			if err != nil && (gctx.Err() != nil || stopsRun(err)) {
				// Left due: the next run asks again.
				failed.Do(func() { callErr = err; cancel() })
				return
			}
			apply(d, err)
		}
		select {
		case r.calls.work <- call:
		case <-gctx.Done():
			calls.Done()
		}
		if gctx.Err() != nil {
			break
		}
	}
	calls.Wait()
	err = callErr
	wctx := context.WithoutCancel(ctx)
	if len(rows) > 0 {
		if werr := e.store.AddMessages(wctx, rows...); werr != nil {
			return storeErr(werr)
		}
		count(&r.progress.Changed, e.opts.Metrics.changed, int64(len(rows)))
	}
	if len(entries) > 0 {
		if werr := e.store.AddChecks(wctx, entries...); werr != nil {
			return storeErr(werr)
		}
	}
	return err
}

// provisionalEntry keeps a message whose status an event told on the
// schedule, due, until a detail call confirms it.
func provisionalEntry(c sink.StatusCheck, now time.Time) sink.StatusCheck {
	c.Open, c.NextCheckAt, c.Kind = true, now, sink.CheckRecheck
	c.Until = later(c.Until, now.Add(enrichRetryFor))
	c.Version = max(c.Version+1, uint64(now.UnixNano()))
	return c
}
