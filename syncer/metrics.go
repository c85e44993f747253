package syncer

import (
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cekat-archiver/cekat-archiver/syncer/budget"
	"github.com/cekat-archiver/cekat-archiver/syncer/cekat"
)

// Metrics are the engine's Prometheus metrics. Labels take only small
// fixed sets of values: endpoints, status codes, conversation states.
type Metrics struct {
	requests        *prometheus.CounterVec
	requestDuration *prometheus.HistogramVec
	archived        prometheus.Counter
	enriched        prometheus.Counter
	enrichFailed    prometheus.Counter
	rechecked       prometheus.Counter
	changed         prometheus.Counter
	quarantined     prometheus.Counter
	conversations   *prometheus.GaugeVec
	deferred        prometheus.Gauge
	checksDue       prometheus.Gauge
}

// NewMetrics creates the engine's metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	const ns = "cekat_archiver"
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "api_requests_total",
			Help: "HTTP requests to the Cekat API by endpoint and status code (0: no answer)."}, []string{"endpoint", "code"}),
		requestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Name: "api_request_duration_seconds",
			Help: "Duration of HTTP requests to the Cekat API.", Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}},
			[]string{"endpoint"}),
		archived: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "messages_archived_total",
			Help: "New messages archived."}),
		enriched: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "messages_enriched_total",
			Help: "New messages archived with their detail."}),
		enrichFailed: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "messages_enrich_failed_total",
			Help: "New messages archived without detail because the detail call failed (permanently, or for a reason that may pass: those are enriched later)."}),
		rechecked: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "messages_rechecked_total",
			Help: "Archived messages whose status was fetched again."}),
		changed: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "messages_status_changed_total",
			Help: "Re-checks that found a new status and wrote a new version."}),
		quarantined: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "records_quarantined_total",
			Help: "Records that could not be decoded, kept in the quarantine table."}),
		conversations: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "conversations",
			Help: "Conversations at the start of the last run by state; the states overlap (due, lagging and gone are subsets of tracked): tracked, due, lagging (history not complete or last sync failed), gone."},
			[]string{"state"}),
		deferred: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "conversations_deferred",
			Help: "Conversations the last run left for later because the API budget ran out."}),
		checksDue: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "status_checks_due",
			Help: "Messages whose status was due to be fetched again at the start of the last run."}),
	}
	reg.MustRegister(m.requests, m.requestDuration, m.archived, m.enriched, m.enrichFailed, m.rechecked, m.changed,
		m.quarantined, m.conversations, m.deferred, m.checksDue)
	return m
}

// ObserveRequest counts one HTTP attempt; wire it to the client's OnRequest.
func (m *Metrics) ObserveRequest(info cekat.RequestInfo) {
	if m == nil {
		return
	}
	m.requests.WithLabelValues(info.Endpoint, strconv.Itoa(info.Status)).Inc()
	m.requestDuration.WithLabelValues(info.Endpoint).Observe(info.Duration.Seconds())
}

func inc(c prometheus.Counter, n int64) {
	if c != nil && n > 0 {
		c.Add(float64(n))
	}
}

// BudgetMetrics expose the shared API budget: how long calls waited for it
// and how much of it is left.
type BudgetMetrics struct {
	waits   *prometheus.CounterVec
	waited  *prometheus.CounterVec
	limiter atomic.Pointer[budget.Limiter]
}

// NewBudgetMetrics registers the budget's metrics with reg; call Watch
// with the limiter once it exists, and wire OnWait into its options.
func NewBudgetMetrics(reg prometheus.Registerer) *BudgetMetrics {
	const ns = "cekat_archiver"
	m := &BudgetMetrics{
		waits: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "api_budget_waits_total",
			Help: "API calls granted by the client-side rate limiter, by priority."}, []string{"priority"}),
		waited: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "api_budget_wait_seconds_total",
			Help: "Time API calls spent waiting for the rate limiter (throttled waits), by priority."}, []string{"priority"}),
	}
	remaining := func(window string) prometheus.GaugeFunc {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Name: "api_budget_remaining",
			Help:        "Requests the client-side budget still allows in the window (minute, or day; -1: no daily cap).",
			ConstLabels: prometheus.Labels{"window": window}}, func() float64 {
			l := m.limiter.Load()
			if l == nil {
				return 0
			}
			minute, day := l.Remaining()
			if window == "minute" {
				return float64(minute)
			}
			return float64(day)
		})
	}
	refused := prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: ns, Name: "api_budget_refused_total",
		Help: "API calls refused because the daily budget was spent (left for a later run)."}, func() float64 {
		l := m.limiter.Load()
		if l == nil {
			return 0
		}
		var n int64
		for _, r := range l.Stats().Refused {
			n += r
		}
		return float64(n)
	})
	for _, p := range budget.Priorities {
		m.waits.WithLabelValues(p.String())
		m.waited.WithLabelValues(p.String())
	}
	reg.MustRegister(m.waits, m.waited, remaining("minute"), remaining("day"), refused)
	return m
}

// OnWait counts one granted wait; set it as budget.Options.OnWait.
func (m *BudgetMetrics) OnWait(p budget.Priority, waited time.Duration) {
	m.waits.WithLabelValues(p.String()).Inc()
	m.waited.WithLabelValues(p.String()).Add(waited.Seconds())
}

// Watch makes the remaining-budget gauges read l.
func (m *BudgetMetrics) Watch(l *budget.Limiter) { m.limiter.Store(l) }
