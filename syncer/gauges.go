package syncer

import "github.com/cekat-archiver/cekat-archiver/sink"

// Lagging says whether a tracked conversation is behind: never synced (a
// zero state), its history not complete, or its last sync failed. A purged
// conversation is done with, and a gone one is counted apart.
func Lagging(st sink.State) bool {
	return st.PurgedAt.IsZero() && !st.Gone && (!st.BackfillComplete || len(st.Gaps) > 0 || st.LastError != "")
}

// setStates sets the gauges of the tracked conversations from their states;
// state says false for a conversation never synced.
func (m *Metrics) setStates(ids []string, state func(id string) (sink.State, bool)) {
	var lagging, gone int
	for _, id := range ids {
		st, ok := state(id)
		if !ok {
			st = sink.State{ConversationID: id}
		}
		if Lagging(st) {
			lagging++
		}
		if st.Gone && st.PurgedAt.IsZero() {
			gone++
		}
	}
	m.conversations.WithLabelValues("tracked").Set(float64(len(ids)))
	m.conversations.WithLabelValues("lagging").Set(float64(lagging))
	m.conversations.WithLabelValues("gone").Set(float64(gone))
}

// historyComplete: the whole history of the conversation is archived.
func historyComplete(st sink.State) bool { return st.BackfillComplete && len(st.Gaps) == 0 }

// countHistory sets Tracked and HistoryComplete from the states at the
// start of a run.
func (p *Progress) countHistory(ids []string, states map[string]sink.State) {
	var tracked, complete int64
	for _, id := range ids {
		st := states[id]
		if st.Gone || !st.PurgedAt.IsZero() {
			continue
		}
		tracked++
		if historyComplete(st) {
			complete++
		}
	}
	p.Tracked.Store(tracked)
	p.HistoryComplete.Store(complete)
}

// noteHistory counts a conversation whose history this run completed.
func (p *Progress) noteHistory(before, after sink.State) {
	if !historyComplete(before) && historyComplete(after) && !after.Gone {
		p.HistoryComplete.Add(1)
	}
}
