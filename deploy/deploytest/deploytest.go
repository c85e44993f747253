// Package deploytest reads the deploy kit's monitoring files for tests: the
// Grafana dashboard's queries and the Prometheus alert rules, wherever the
// test runs from.
package deploytest

import (
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"go.yaml.in/yaml/v3"
)

// Dir is the deploy kit's directory.
func Dir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(file))
}

// Dashboard and Alerts are the files' paths below Dir.
const (
	Dashboard = "grafana/cekat-archiver.json"
	Alerts    = "prometheus/alerts.yaml"
)

// DashboardExprs returns every query of the dashboard: each "expr" string,
// at any depth.
func DashboardExprs(t testing.TB) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(Dir(), Dashboard))
	if err != nil {
		t.Fatal(err)
	}
	var dash any
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatalf("%s: %v", Dashboard, err)
	}
	var out []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if e, ok := v["expr"].(string); ok {
				out = append(out, e)
			}
			for _, x := range v {
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(dash)
	return out
}

// AlertRule is what the tests read of an alert rule.
type AlertRule struct {
	Alert string `yaml:"alert"`
	Expr  string `yaml:"expr"`
}

// AlertRules returns the rules of every group of the alert rules, in order.
func AlertRules(t testing.TB) []AlertRule {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(Dir(), Alerts))
	if err != nil {
		t.Fatal(err)
	}
	var rules struct {
		Groups []struct {
			Rules []AlertRule `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(data, &rules); err != nil {
		t.Fatalf("%s: %v", Alerts, err)
	}
	var out []AlertRule
	for _, g := range rules.Groups {
		out = append(out, g.Rules...)
	}
	return out
}

// AlertExprs returns every alert rule's expression.
func AlertExprs(t testing.TB) []string {
	t.Helper()
	var out []string
	for _, r := range AlertRules(t) {
		out = append(out, r.Expr)
	}
	return out
}
