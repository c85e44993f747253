package main

import (
	"regexp"
	"strings"
	"testing"

	"github.com/cekat-archiver/cekat-archiver/deploy/deploytest"
)

// promCheckExpressions evaluates every query of the dashboard and every alert rule's
// expression (deploy/grafana, deploy/prometheus) with Prometheus: each must be valid, each
// dashboard query must find series, and so must each series selector of the alert rules,
// but for the series the test does not make (rareSeries).
func promCheckExpressions(t *testing.T, pq *promQuerier) {
	t.Helper()
	// A part of the selector of each series the test does not make, with the reason: a query
	// over them rightly finds nothing.
	rareSeries := map[string]string{
		`code="429"`:                             "the simulator does not throttle in this test",
		`task="purge"`:                           "retention is off",
		`purge_conversations_total`:              "retention is off",
		`result="failure"`:                       "no run fails",
		`window="day"`:                           "no daily cap (api.rate_limit.per_day 0)",
		`result=~"accepted|journaled|duplicate"`: "the only webhook request is unsigned",
		`result="failed"`:                        "the only webhook request is unsigned",
	}
	rare := func(expr string) bool {
		for part := range rareSeries {
			if strings.Contains(expr, part) {
				return true
			}
		}
		return false
	}
	// Grafana's variables: every instance, and a range of several scrapes.
	grafana := strings.NewReplacer(`$instance`, `.+`, `$__rate_interval`, `30s`)
	dash := deploytest.DashboardExprs(t)
	for _, e := range dash {
		q := grafana.Replace(e)
		res, err := pq.query(q)
		switch {
		case err != nil:
			t.Errorf("dashboard: %v", err)
		case len(res) == 0 && !rare(e):
			t.Errorf("dashboard: %s finds no series in what the daemon exports", e)
		}
	}
	alerts := deploytest.AlertExprs(t)
	selector := regexp.MustCompile(`\b(?:cekat_archiver_[a-z0-9_]+|process_[a-z0-9_]+|up)\b(?:\{[^}]*\})?`)
	selectors := 0
	for _, e := range alerts {
		if _, err := pq.query(e); err != nil {
			t.Errorf("alert rule: %v", err)
		}
		for _, sel := range selector.FindAllString(e, -1) {
			selectors++
			res, err := pq.query(`count(` + sel + `)`)
			switch {
			case err != nil:
				t.Errorf("alert rule %s: %v", e, err)
			case len(res) == 0 && !rare(sel):
				t.Errorf("alert rule: %s finds no series in what the daemon exports (in %s)", sel, e)
			}
		}
	}
	if len(dash) < 20 || len(alerts) < 10 || selectors < len(alerts) {
		t.Fatalf("found only %d dashboard queries, %d alert rules, %d selectors", len(dash), len(alerts), selectors)
	}
	t.Logf("%d dashboard queries and %d alert rules (%d series selectors) evaluated", len(dash), len(alerts), selectors)
}
