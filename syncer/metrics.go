package syncer

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

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
			Help: "New messages archived without detail because the detail call failed permanently."}),
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
	}
	reg.MustRegister(m.requests, m.requestDuration, m.archived, m.enriched, m.enrichFailed, m.rechecked, m.changed,
		m.quarantined, m.conversations, m.deferred)
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
