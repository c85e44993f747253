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
