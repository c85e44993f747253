// Package memarchive is an archive in memory for fast tests of the sync
// engine, the retention purge and erasure. It keeps the write-ordering rule
// of the ClickHouse archive: writes wait in a buffer and a flush stores them
// in the order messages, quarantine, schedule entries, conversations,
// states, so a stored state never claims rows that are not stored; a failed
// flush keeps the whole buffer. (The ClickHouse archive keeps its buffer in a
// spool on disk, which the next start stores before any run: a killed
// process loses none of it, so there is nothing here to drop on a crash.)
// syncer/archivetest holds the contract both archives pass.
package memarchive

import (
	"context"
	"errors"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/cekat-archiver/cekat-archiver/sink"
)

// Archive is safe for concurrent use.
type Archive struct {
	mu sync.Mutex
	// stored
	msgs    map[string]sink.MessageRow // conversation/id -> newest version
	quar    map[string]sink.QuarantineRow
	checks  map[string]sink.StatusCheck
	convs   map[string]sink.ConversationRow
	states  map[string]sink.State
	runs    []sink.RunRow
	sweeps  map[string]sink.SweepMark
	tracked []string
	audit   map[auditKey]sink.AuditRow
	rows    map[string]map[string]uint64 // table -> conversation -> rows stored, every version
	// buffered
	bufMsgs   []sink.MessageRow
	bufQuar   []sink.QuarantineRow
	bufChecks []sink.StatusCheck
	bufConvs  []sink.ConversationRow
	bufStates map[string]sink.State

	// failWrites, when set, makes flushes and run saves fail with it.
	failWrites  error
	lookups     int // calls of Archived
	convLookups int // calls of ConversationsArchived
	rowReads    int // ids asked of CurrentMessages
}

// New returns an empty archive.
func New() *Archive {
	return &Archive{msgs: map[string]sink.MessageRow{}, quar: map[string]sink.QuarantineRow{},
		checks: map[string]sink.StatusCheck{}, convs: map[string]sink.ConversationRow{}, states: map[string]sink.State{},
		bufStates: map[string]sink.State{}, sweeps: map[string]sink.SweepMark{}, audit: map[auditKey]sink.AuditRow{}, rows: map[string]map[string]uint64{}}
}

func key(conv, id string) string { return conv + "\x00" + id }

// SetFailWrites makes every flush fail with err until called with nil.
func (a *Archive) SetFailWrites(err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.failWrites = err
}

// Track adds conversation ids to the tracked table.
func (a *Archive) Track(ids ...string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, id := range ids {
		a.countRow(tableTracked, id)
		if !slices.Contains(a.tracked, id) {
			a.tracked = append(a.tracked, id)
		}
	}
}

// TrackedConversations implements syncer.Archive: the tracked ids, sorted.
func (a *Archive) TrackedConversations(context.Context) ([]string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := slices.Clone(a.tracked)
	slices.Sort(out)
	return out, nil
}

// LoadStates implements syncer.Archive.
func (a *Archive) LoadStates(context.Context) (map[string]sink.State, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make(map[string]sink.State, len(a.states))
	for id, st := range a.states {
		st.Gaps = slices.Clone(st.Gaps)
		out[id] = st
	}
	return out, nil
}

// Archived implements syncer.Archive: it sees stored rows only.
func (a *Archive) Archived(_ context.Context, conv string, ids []string) (map[string]sink.ArchivedMessage, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.lookups++
	out := map[string]sink.ArchivedMessage{}
	for _, id := range ids {
		if r, ok := a.msgs[key(conv, id)]; ok {
			out[id] = sink.ArchivedMessage{Status: r.Status, UpdatedAt: r.UpdatedAt, Enriched: r.Enriched}
		}
	}
	return out, nil
}

// ConversationsArchived implements syncer.Archive.
func (a *Archive) ConversationsArchived(_ context.Context, ids []string) (map[string]bool, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.convLookups++
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	out := map[string]bool{}
	for _, r := range a.msgs {
		if want[r.ConversationID] {
			out[r.ConversationID] = true
		}
	}
	return out, nil
}

// CurrentMessages implements syncer.Archive.
func (a *Archive) CurrentMessages(_ context.Context, conv string, ids []string) ([]sink.MessageRow, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.rowReads += len(ids)
	var out []sink.MessageRow
	for _, id := range ids {
		if r, ok := a.msgs[key(conv, id)]; ok {
			out = append(out, r)
		}
	}
	return out, nil
}

// NewerThan implements syncer.Archive.
func (a *Archive) NewerThan(_ context.Context, conv string, t time.Time) (uint64, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	var n uint64
	for _, r := range a.msgs {
		if r.ConversationID == conv && r.SentAt.Truncate(time.Second).After(t.Truncate(time.Second)) {
			n++
		}
	}
	return n, nil
}

// DueChecks implements syncer.Archive.
func (a *Archive) DueChecks(_ context.Context, now time.Time, limit int) ([]sink.StatusCheck, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []sink.StatusCheck
	for _, c := range a.checks {
		if c.Open && !c.Until.Before(now.Truncate(time.Second)) && !c.NextCheckAt.After(now) {
			out = append(out, c)
		}
	}
	// The order of the ClickHouse archive's query: by sink.CheckRank, then
	// re-checks the most overdue first and enrichment the newest first.
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if ra, rb := sink.CheckRank(a.Kind), sink.CheckRank(b.Kind); ra != rb {
			return ra < rb
		}
		ta, tb := a.NextCheckAt.Unix(), b.NextCheckAt.Unix()
		if a.Kind != sink.CheckRecheck {
			ta, tb = -a.SentAt.Unix(), -b.SentAt.Unix()
		}
		if ta != tb {
			return ta < tb
		}
		return key(a.ConversationID, a.MessageID) < key(b.ConversationID, b.MessageID)
	})
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// Backlog implements syncer.Archive.
func (a *Archive) Backlog(_ context.Context, now time.Time) (map[uint8]uint64, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := map[uint8]uint64{}
	for _, c := range a.checks {
		if c.Open && !c.Until.Before(now.Truncate(time.Second)) && !c.NextCheckAt.After(now) {
			out[c.Kind]++
		}
	}
	return out, nil
}

// AddMessages implements syncer.Archive.
func (a *Archive) AddMessages(_ context.Context, rows ...sink.MessageRow) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.bufMsgs = append(a.bufMsgs, rows...)
	return nil
}

// AddQuarantine implements syncer.Archive.
func (a *Archive) AddQuarantine(_ context.Context, rows ...sink.QuarantineRow) (int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for _, r := range rows {
		k := quarantineKey(r)
		if _, ok := a.quar[k]; ok || slices.ContainsFunc(a.bufQuar, func(q sink.QuarantineRow) bool {
			return quarantineKey(q) == k
		}) {
			continue
		}
		a.bufQuar = append(a.bufQuar, r)
		n++
	}
	return n, nil
}

// quarantineKey identifies a record as the ClickHouse archive does: by its
// id when it has one, else by its content.
func quarantineKey(r sink.QuarantineRow) string {
	if r.MessageID != "" {
		return r.ConversationID + "\x00" + r.Endpoint + "\x00id:" + r.MessageID
	}
	return r.ConversationID + "\x00" + r.Endpoint + "\x00" + r.Raw
}

// AddChecks implements syncer.Archive.
func (a *Archive) AddChecks(_ context.Context, checks ...sink.StatusCheck) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.bufChecks = append(a.bufChecks, checks...)
	return nil
}

// Conversations implements syncer.Archive.
func (a *Archive) Conversations(context.Context) (map[string]sink.ConversationRow, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make(map[string]sink.ConversationRow, len(a.convs))
	for id, c := range a.convs {
		out[id] = c
	}
	return out, nil
}

// AddConversations implements syncer.Archive.
func (a *Archive) AddConversations(_ context.Context, rows ...sink.ConversationRow) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.bufConvs = append(a.bufConvs, rows...)
	return nil
}

// AddState implements syncer.Archive.
func (a *Archive) AddState(_ context.Context, st sink.State) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if old, ok := a.bufStates[st.ConversationID]; !ok || st.Version >= old.Version {
		st.Gaps = slices.Clone(st.Gaps)
		a.bufStates[st.ConversationID] = st
	}
	return nil
}

// Flush implements syncer.Archive.
func (a *Archive) Flush(context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	// As the sink's: nothing queued, nothing to write (and nothing to fail).
	if len(a.bufMsgs)+len(a.bufQuar)+len(a.bufChecks)+len(a.bufConvs)+len(a.bufStates) == 0 {
		return nil
	}
	if a.failWrites != nil {
		return a.failWrites
	}
	for _, r := range a.bufMsgs {
		a.countRow(tableMessages, r.ConversationID)
		k := key(r.ConversationID, r.MessageID)
		if old, ok := a.msgs[k]; !ok || r.Version >= old.Version {
			a.msgs[k] = r
		}
	}
	for _, q := range a.bufQuar {
		a.countRow(tableQuarantine, q.ConversationID)
		a.quar[quarantineKey(q)] = q
	}
	for _, c := range a.bufChecks {
		a.countRow(tableChecks, c.ConversationID)
		k := key(c.ConversationID, c.MessageID)
		old, ok := a.checks[k]
		if ok && old.Until.After(c.Until) {
			c.Until = old.Until // never moves earlier, whichever version wins
		}
		if !ok || c.Version >= old.Version {
			a.checks[k] = c
		} else if c.Until.After(old.Until) {
			old.Until = c.Until
			a.checks[k] = old
		}
	}
	for _, c := range a.bufConvs {
		a.countRow(tableConversations, c.ConversationID)
		if old, ok := a.convs[c.ConversationID]; !ok || c.Version >= old.Version {
			a.convs[c.ConversationID] = c
		}
	}
	for id, st := range a.bufStates {
		a.countRow(tableStates, id)
		if old, ok := a.states[id]; !ok || st.Version >= old.Version {
			a.states[id] = st
		}
	}
	a.bufMsgs, a.bufQuar, a.bufChecks, a.bufConvs, a.bufStates = nil, nil, nil, nil, map[string]sink.State{}
	return nil
}

// LoadSweep implements syncer.Archive.
func (a *Archive) LoadSweep(_ context.Context, scope string) (sink.SweepMark, bool, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	m, ok := a.sweeps[scope]
	return m, ok, nil
}

// SaveSweep implements syncer.Archive: stored at once, the highest version
// of a scope kept.
func (a *Archive) SaveSweep(_ context.Context, m sink.SweepMark) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.failWrites != nil {
		return a.failWrites
	}
	if old, ok := a.sweeps[m.Scope]; !ok || m.Version >= old.Version {
		a.sweeps[m.Scope] = m
	}
	return nil
}

// SaveRun implements syncer.Archive.
func (a *Archive) SaveRun(_ context.Context, r sink.RunRow) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.failWrites != nil {
		return a.failWrites
	}
	// One row per run, its highest version, as sync_runs FINAL reads.
	for i, old := range a.runs {
		if old.RunID == r.RunID {
			if r.Version >= old.Version {
				a.runs[i] = r
			}
			return nil
		}
	}
	a.runs = append(a.runs, r)
	return nil
}

// Lookups returns how many times Archived was called.
func (a *Archive) Lookups() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.lookups
}

// ConversationLookups returns how many times ConversationsArchived was called.
func (a *Archive) ConversationLookups() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.convLookups
}

// RowReads returns how many whole rows CurrentMessages was asked for.
func (a *Archive) RowReads() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.rowReads
}

// Messages returns the newest version of every stored message, by
// conversation and id.
func (a *Archive) Messages() []sink.MessageRow {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]sink.MessageRow, 0, len(a.msgs))
	for _, r := range a.msgs {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool {
		return key(out[i].ConversationID, out[i].MessageID) < key(out[j].ConversationID, out[j].MessageID)
	})
	return out
}

// Quarantine returns the stored quarantine records.
func (a *Archive) Quarantine() []sink.QuarantineRow {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]sink.QuarantineRow, 0, len(a.quar))
	for _, q := range a.quar {
		out = append(out, q)
	}
	sort.Slice(out, func(i, j int) bool { return strings.Compare(out[i].MessageID, out[j].MessageID) < 0 })
	return out
}

// Checks returns the stored schedule entry of every message that has one.
func (a *Archive) Checks() map[string]sink.StatusCheck {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make(map[string]sink.StatusCheck, len(a.checks))
	for _, c := range a.checks {
		out[c.ConversationID+"/"+c.MessageID] = c
	}
	return out
}

// Runs returns the stored run rows.
func (a *Archive) Runs() []sink.RunRow {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.runs)
}

// ErrDown is a convenient failure for SetFailWrites.
var ErrDown = errors.New("memarchive: archive down")
