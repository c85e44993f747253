package purge

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Outcomes of a conversation in a run, as metric labels (the audit's events).
const (
	outcomeDeleted     = "deleted"
	outcomeGone        = "gone"
	outcomeWouldDelete = "would_delete"
	outcomeFailed      = "failed"
)

// Reasons a conversation past retention is not deleted: the metric label of
// cekat_archiver_purge_skipped_total, and the first word of the audit's
// reason.
const (
	SkipBackfill       = "backfill_incomplete" // history not fetched back to the first message
	SkipGaps           = "gaps"                // stretches of history still to fetch
	SkipUnenriched     = "unenriched"          // messages without detail for a reason that may pass
	SkipNoState        = "no_state"            // messages archived but no sync state
	SkipNewMessages    = "new_messages"        // upstream has messages the archive lacks: synced instead
	SkipUnconfirmed    = "unconfirmed"         // an earlier delete of it awaits confirmation
	SkipPrecheckFailed = "precheck_failed"     // its newest page could not be fetched
	SkipBudget         = "budget"              // the API budget is spent, or the server throttles for long
	SkipTooRecent      = "too_recent"          // named, but not past retention
	SkipNotArchived    = "not_archived"        // named, but nothing of it is archived
)

var skipReasons = []string{SkipBackfill, SkipGaps, SkipUnenriched, SkipNoState, SkipNewMessages, SkipUnconfirmed,
	SkipPrecheckFailed, SkipBudget, SkipTooRecent, SkipNotArchived}

// Metrics are the purge's Prometheus metrics.
type Metrics struct {
	conversations *prometheus.CounterVec
	skipped       *prometheus.CounterVec
	deferred      prometheus.Gauge
	lastSuccess   prometheus.Gauge
}

// NewMetrics creates the purge's metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	const ns, sub = "cekat_archiver", "purge"
	m := &Metrics{
		conversations: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "conversations_total",
			Help: "Conversations past retention by outcome: deleted upstream, gone (already absent upstream), would_delete (dry run), failed (the delete call failed or did not remove it)."},
			[]string{"outcome"}),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "skipped_total",
			Help: "Conversations past retention not deleted, by reason (backfill_incomplete, gaps, unenriched, new_messages, ...)."},
			[]string{"reason"}),
		deferred: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "conversations_deferred",
			Help: "Conversations ready to be deleted that the last run left for a later one (retention.max_per_run, the API budget, a stop)."}),
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "last_success_timestamp_seconds",
			Help: "Unix time of the end of the last purge that deleted for real (not a dry run) and in which nothing failed; 0 until one has."}),
	}
	for _, o := range []string{outcomeDeleted, outcomeGone, outcomeWouldDelete, outcomeFailed} {
		m.conversations.WithLabelValues(o)
	}
	for _, r := range skipReasons {
		m.skipped.WithLabelValues(r)
	}
	if reg != nil {
		reg.MustRegister(m.conversations, m.skipped, m.deferred, m.lastSuccess)
	}
	return m
}

func (m *Metrics) observe(s Summary) {
	add := func(c prometheus.Counter, n int) {
		if n > 0 {
			c.Add(float64(n))
		}
	}
	add(m.conversations.WithLabelValues(outcomeDeleted), s.Deleted)
	add(m.conversations.WithLabelValues(outcomeGone), s.Gone)
	add(m.conversations.WithLabelValues(outcomeWouldDelete), s.WouldDelete)
	add(m.conversations.WithLabelValues(outcomeFailed), s.Failed)
	for reason, n := range s.SkippedBy {
		add(m.skipped.WithLabelValues(reason), n)
	}
	m.deferred.Set(float64(s.LeftForLater))
	if !s.DryRun && s.Failure() == nil && !s.Stopped {
		m.lastSuccess.Set(float64(s.Finished.UnixNano()) / float64(time.Second))
	}
}
