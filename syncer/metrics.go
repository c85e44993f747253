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
	conversations   *stateGauges
	deferred        prometheus.Gauge
	checksDue       prometheus.Gauge
	waiting         prometheus.Counter
	backlog         *prometheus.GaugeVec
	drainedBy       prometheus.Gauge
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
			Help: "Messages enriched with their detail: as they were archived, or later from the enrichment backlog."}),
		enrichFailed: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "messages_enrich_failed_total",
			Help: "New messages archived without detail because the detail call failed (permanently, or for a reason that may pass: those are enriched later)."}),
		rechecked: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "messages_rechecked_total",
			Help: "Archived messages whose status was fetched again."}),
		changed: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "messages_status_changed_total",
			Help: "Re-checks that found a new status and wrote a new version."}),
		quarantined: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "records_quarantined_total",
			Help: "Records that could not be decoded, kept in the quarantine table."}),
		// Separate gauges, not one with a state label: due, lagging and gone
		// are overlapping subsets of tracked, and a sum over them would mean
		// nothing.
		// Full runs (scheduled, over every tracked conversation) set them
		// from the stored states; runs for webhook events leave them.
		conversations: newStateGauges(ns, map[string]string{
			"tracked": "Conversations tracked, as of the last full (scheduled) run.",
			"due":     "Tracked conversations due to be synced at the start of the last full (scheduled) run.",
			"lagging": "Tracked conversations never synced, whose history is not complete yet, or whose last sync failed, from the stored states at the start and at the end of the last full (scheduled) run.",
			"gone":    "Tracked conversations the API answered 404 for, from the stored states at the start and at the end of the last full (scheduled) run.",
		}),
		deferred: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "conversations_deferred",
			Help: "Conversations the last full (scheduled) run left for later: new messages not fetched (the API budget ran out) or older history still to fetch."}),
		checksDue: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "status_checks_due",
			Help: "Messages whose status was due to be fetched again at the start of the last full (scheduled) run (counted up to 20,000)."}),
		waiting: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "messages_waiting_total",
			Help: "Messages archived from their list item only, their detail call queued because the day's API budget had no room for it then."}),
		backlog: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "enrichment_backlog",
			Help: "Detail calls waiting at the end of the last full (scheduled) run, by kind: new (new messages archived from the list), recheck (statuses due again), history (history archived from the list)."},
			[]string{"kind"}),
		drainedBy: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "enrichment_backlog_drained_timestamp_seconds",
			Help: "When the enrichment backlog of new messages and history will be served at the configured daily budget (Unix time), as estimated at the end of the last full (scheduled) run."}),
	}
	reg.MustRegister(m.requests, m.requestDuration, m.archived, m.enriched, m.enrichFailed, m.rechecked, m.changed,
		m.quarantined, m.conversations, m.deferred, m.checksDue, m.waiting, m.backlog, m.drainedBy)
	return m
}

// stateGauges are the gauges cekat_archiver_conversations_<state>, one per
// state, set through WithLabelValues(state) as a GaugeVec would be.
type stateGauges struct{ gauges map[string]prometheus.Gauge }

func newStateGauges(ns string, help map[string]string) *stateGauges {
	s := &stateGauges{gauges: map[string]prometheus.Gauge{}}
	for state, h := range help {
		s.gauges[state] = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "conversations_" + state, Help: h})
	}
	return s
}

// WithLabelValues returns the gauge of a state; an unknown state gets a
// gauge that is not exported.
func (s *stateGauges) WithLabelValues(state string) prometheus.Gauge {
	if g, ok := s.gauges[state]; ok {
		return g
	}
	return prometheus.NewGauge(prometheus.GaugeOpts{Name: "unexported"})
}

func (s *stateGauges) Describe(ch chan<- *prometheus.Desc) {
	for _, g := range s.gauges {
		g.Describe(ch)
	}
}

func (s *stateGauges) Collect(ch chan<- prometheus.Metric) {
	for _, g := range s.gauges {
		g.Collect(ch)
	}
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
	remaining := &remainingCollector{m: m, desc: prometheus.NewDesc(ns+"_api_budget_remaining",
		"Requests the client-side budget still allows in the window: minute, or day (exported only with a daily cap).",
		[]string{"window"}, nil)}
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
	reg.MustRegister(m.waits, m.waited, remaining, refused)
	return m
}

// remainingCollector exports what the budget allows, and nothing for a
// window without a limit (no -1 standing for "none").
type remainingCollector struct {
	m    *BudgetMetrics
	desc *prometheus.Desc
}

func (c *remainingCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *remainingCollector) Collect(ch chan<- prometheus.Metric) {
	l := c.m.limiter.Load()
	if l == nil {
		return
	}
	minute, day := l.Remaining()
	ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(minute), "minute")
	if day >= 0 {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(day), "day")
	}
}

// OnWait counts one granted wait; set it as budget.Options.OnWait.
func (m *BudgetMetrics) OnWait(p budget.Priority, waited time.Duration) {
	m.waits.WithLabelValues(p.String()).Inc()
	m.waited.WithLabelValues(p.String()).Add(waited.Seconds())
}

// Watch makes the remaining-budget gauges read l.
func (m *BudgetMetrics) Watch(l *budget.Limiter) { m.limiter.Store(l) }
