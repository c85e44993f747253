package deploy_test

import (
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/cekat-archiver/cekat-archiver/deploy/deploytest"
	"go.yaml.in/yaml/v3"
)

// Every pod that serves metrics is one scrape target: for each ServiceMonitor and each
// workload it scrapes, exactly one Service is both selected by the monitor and routes to the
// workload's pods on a port the monitor scrapes. Two would scrape each pod twice, and every
// sum() over the pods would count it twice.
func TestOneScrapeTargetPerPod(t *testing.T) {
	type service struct {
		name     string
		labels   map[string]string
		selector map[string]string
		ports    []string
	}
	type monitor struct {
		name     string
		selector map[string]string
		ports    []string
	}
	type pods struct {
		name   string
		labels map[string]string
	}
	var services []service
	var monitors []monitor
	var workloads []pods
	for path, objs := range kubeDocs(t) {
		for _, d := range objs {
			switch d.Kind {
			case "Service":
				var s struct {
					Metadata struct {
						Name   string            `yaml:"name"`
						Labels map[string]string `yaml:"labels"`
					} `yaml:"metadata"`
					Spec struct {
						Selector map[string]string `yaml:"selector"`
						Ports    []struct {
							Name string `yaml:"name"`
						} `yaml:"ports"`
					} `yaml:"spec"`
				}
				d.decode(t, &s)
				svc := service{name: path + ": " + s.Metadata.Name, labels: s.Metadata.Labels, selector: s.Spec.Selector}
				for _, p := range s.Spec.Ports {
					svc.ports = append(svc.ports, p.Name)
				}
				services = append(services, svc)
			case "ServiceMonitor":
				var m struct {
					Spec struct {
						Selector struct {
							MatchLabels      map[string]string `yaml:"matchLabels"`
							MatchExpressions []yaml.Node       `yaml:"matchExpressions"`
						} `yaml:"selector"`
						Endpoints []struct {
							Port string `yaml:"port"`
						} `yaml:"endpoints"`
					} `yaml:"spec"`
				}
				d.decode(t, &m)
				if len(m.Spec.Selector.MatchExpressions) > 0 {
					t.Fatalf("%s: matchExpressions are not modelled by this test", path)
				}
				mon := monitor{name: path, selector: m.Spec.Selector.MatchLabels}
				for _, e := range m.Spec.Endpoints {
					mon.ports = append(mon.ports, e.Port)
				}
				monitors = append(monitors, mon)
			case "Deployment", "StatefulSet":
				var w workload
				d.decode(t, &w)
				serves := false
				for _, c := range w.Spec.Template.Spec.Containers {
					serves = serves || len(c.Ports) > 0
				}
				if serves {
					workloads = append(workloads, pods{name: path, labels: w.Spec.Template.Metadata.Labels})
				}
			}
		}
	}
	if len(monitors) == 0 || len(workloads) != 2 {
		t.Fatalf("monitors %v, workloads serving metrics %v: want a ServiceMonitor, the Deployment and the StatefulSet", monitors, workloads)
	}
	// subset reports whether every label of sel is in labels (an empty selector selects nothing
	// here: a Service without one routes to no pod).
	subset := func(sel, labels map[string]string) bool {
		for k, v := range sel {
			if labels[k] != v {
				return false
			}
		}
		return len(sel) > 0
	}
	for _, m := range monitors {
		for _, w := range workloads {
			var through []string
			for _, s := range services {
				scraped := slices.ContainsFunc(s.ports, func(p string) bool { return slices.Contains(m.ports, p) })
				if subset(m.selector, s.labels) && subset(s.selector, w.labels) && scraped {
					through = append(through, s.name)
				}
			}
			if len(through) != 1 {
				t.Errorf("%s scrapes the pods of %s through %d Services %v, want exactly one", m.name, w.name, len(through), through)
			}
		}
	}
}

// aggregation is one aggregation of a PromQL expression: its operator, its by/without clause
// and its argument.
type aggregation struct {
	op, clause, grouping, arg string
}

var aggregationStart = regexp.MustCompile(`\b(sum|max|min|avg|count|group|stddev|stdvar|topk|bottomk|quantile|count_values)\s*(?:(by|without)\s*\(([^)]*)\)\s*)?\(`)
var trailingClause = regexp.MustCompile(`^\s*(by|without)\s*\(([^)]*)\)`)

// aggregations finds the aggregations of expr, nested ones too.
func aggregations(t *testing.T, expr string) []aggregation {
	t.Helper()
	var out []aggregation
	for _, m := range aggregationStart.FindAllStringSubmatchIndex(expr, -1) {
		open := m[1] - 1
		depth, end := 0, -1
		for i := open; i < len(expr) && end < 0; i++ {
			switch expr[i] {
			case '(':
				depth++
			case ')':
				depth--
				if depth == 0 {
					end = i
				}
			}
		}
		if end < 0 {
			t.Fatalf("unbalanced parentheses in %s", expr)
		}
		a := aggregation{op: expr[m[2]:m[3]], arg: expr[open+1 : end]}
		if m[4] >= 0 {
			a.clause, a.grouping = expr[m[4]:m[5]], expr[m[6]:m[7]]
		} else if c := trailingClause.FindStringSubmatch(expr[end+1:]); c != nil {
			a.clause, a.grouping = c[1], c[2]
		}
		out = append(out, a)
	}
	return out
}

// Each shard exports the counts of its own conversations, with no label that tells the shards
// apart but the target's (instance, pod): across targets, only a sum says something of the
// workspace; max() is one shard's count. So an aggregation over the archiver's series that
// keeps no instance apart is a sum, but for timestamps and info series (where max and min
// are the newest and the oldest) and for counts of series.
func TestExpressionsSumShards(t *testing.T) {
	perTarget := func(a aggregation) bool {
		return a.clause == "by" && slices.ContainsFunc(strings.Split(a.grouping, ","), func(l string) bool {
			return strings.TrimSpace(l) == "instance"
		})
	}
	shardSeries := regexp.MustCompile(`\bcekat_archiver_[a-z0-9_]+\b`)
	dash, alerts := deploytest.DashboardExprs(t), deploytest.AlertExprs(t)
	if len(dash) < 20 || len(alerts) < 8 {
		t.Fatalf("found %d dashboard and %d alert expressions", len(dash), len(alerts))
	}
	for _, e := range slices.Concat(dash, alerts) {
		for _, a := range aggregations(t, e) {
			if a.op == "sum" || a.op == "count" || perTarget(a) {
				continue
			}
			for _, name := range shardSeries.FindAllString(a.arg, -1) {
				if !strings.HasSuffix(name, "_timestamp_seconds") && !strings.HasSuffix(name, "_info") {
					t.Errorf("%s(...) over %s, across the shards, in %q: sum them", a.op, name, e)
				}
			}
		}
	}
}
