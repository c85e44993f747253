// Package deploy_test checks the deploy kit with what runs here: every YAML and JSON file
// parses, the Kubernetes pods are locked down, their users and the systemd unit's read their
// files as laid out for them (as root, with setpriv), each pod is one scrape target, the
// dashboard and the alert rules name only metrics the archiver exports and sum the shards,
// promtool checks and tests the alert rules, systemd-analyze verifies the unit, hadolint lints
// the Dockerfile, and the demo's configuration and median query hold (the query with
// ClickHouse). A tool that is not installed skips its test (`deploy/prometheus/prometheus.sh
// install` installs promtool); building the image needs a Docker daemon and
// CEKAT_ARCHIVER_TEST_DOCKER=1.
package deploy_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.yaml.in/yaml/v3"

	"github.com/cekat-archiver/cekat-archiver/config"
	"github.com/cekat-archiver/cekat-archiver/deploy/deploytest"
	"github.com/cekat-archiver/cekat-archiver/sink"
	"github.com/cekat-archiver/cekat-archiver/syncer"
	"github.com/cekat-archiver/cekat-archiver/syncer/daemon"
	"github.com/cekat-archiver/cekat-archiver/syncer/purge"
	"github.com/cekat-archiver/cekat-archiver/syncer/shard"
	"github.com/cekat-archiver/cekat-archiver/syncer/webhook"
)

// files returns the files under deploy/ whose names end in one of exts.
func files(t *testing.T, exts ...string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && slices.Contains(exts, filepath.Ext(path)) {
			out = append(out, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestFilesParse(t *testing.T) {
	yamls := files(t, ".yaml", ".yml")
	if len(yamls) < 10 {
		t.Fatalf("found only %v", yamls)
	}
	for _, path := range yamls {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(data))
		for {
			var doc any
			if err := dec.Decode(&doc); err != nil {
				if !errors.Is(err, io.EOF) {
					t.Errorf("%s: %v", path, err)
				}
				break
			}
		}
	}
	for _, path := range files(t, ".json") {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var v any
		if err := json.Unmarshal(data, &v); err != nil {
			t.Errorf("%s: %v", path, err)
		}
	}
}

// podSpec is what TestKubernetesPods reads of a pod template.
type podSpec struct {
	EnableServiceLinks *bool `yaml:"enableServiceLinks"`
	SecurityContext    struct {
		RunAsNonRoot bool `yaml:"runAsNonRoot"`
	} `yaml:"securityContext"`
	Containers []struct {
		Name string `yaml:"name"`
		Env  []struct {
			Name      string `yaml:"name"`
			Value     string `yaml:"value"`
			ValueFrom struct {
				FieldRef struct {
					FieldPath string `yaml:"fieldPath"`
				} `yaml:"fieldRef"`
			} `yaml:"valueFrom"`
		} `yaml:"env"`
		SecurityContext struct {
			AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
			ReadOnlyRootFilesystem   bool  `yaml:"readOnlyRootFilesystem"`
		} `yaml:"securityContext"`
		VolumeMounts []struct {
			MountPath string `yaml:"mountPath"`
		} `yaml:"volumeMounts"`
	} `yaml:"containers"`
}

// kubeObject is what the tests read of a Kubernetes manifest.
type kubeObject struct {
	Kind     string            `yaml:"kind"`
	Data     map[string]string `yaml:"data"`
	Metadata struct {
		Name string `yaml:"name"`
	} `yaml:"metadata"`
	Spec struct {
		Replicas *int `yaml:"replicas"`
		Template struct {
			Spec podSpec `yaml:"spec"`
		} `yaml:"template"`
		JobTemplate struct {
			Spec struct {
				Template struct {
					Spec podSpec `yaml:"spec"`
				} `yaml:"template"`
			} `yaml:"spec"`
		} `yaml:"jobTemplate"`
	} `yaml:"spec"`
}

// kubeObjects reads every document of every manifest in deploy/kubernetes.
func kubeObjects(t *testing.T) map[string][]kubeObject {
	t.Helper()
	out := map[string][]kubeObject{}
	for path, docs := range kubeDocs(t) {
		for _, d := range docs {
			var o kubeObject
			d.decode(t, &o)
			out[path] = append(out[path], o)
		}
	}
	return out
}

// The daemon, the CronJob and the sharded daemons run locked down, without service links (a
// service named like a key would set CEKAT_ARCHIVER_* variables), and read secrets from
// files only.
func TestKubernetesPods(t *testing.T) {
	var config map[string]string
	pods := map[string]podSpec{}
	for path, objs := range kubeObjects(t) {
		for _, m := range objs {
			switch m.Kind {
			case "ConfigMap":
				config = m.Data
			case "Deployment", "StatefulSet":
				pods[path] = m.Spec.Template.Spec
			case "CronJob":
				pods[path] = m.Spec.JobTemplate.Spec.Template.Spec
			}
		}
	}
	if len(pods) != 3 {
		t.Fatalf("pods in %v, want the Deployment, the CronJob and the StatefulSet", pods)
	}
	for path, p := range pods {
		if p.EnableServiceLinks == nil || *p.EnableServiceLinks {
			t.Errorf("%s: enableServiceLinks is not false", path)
		}
		if !p.SecurityContext.RunAsNonRoot {
			t.Errorf("%s: not runAsNonRoot", path)
		}
		for _, c := range p.Containers {
			sc := c.SecurityContext
			if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || !sc.ReadOnlyRootFilesystem {
				t.Errorf("%s: container %s may escalate or write its root file system", path, c.Name)
			}
			for _, e := range c.Env {
				if secretLike(e.Name) {
					t.Errorf("%s: secret %s given as a value; give it as a file (%s_FILE)", path, e.Name, e.Name)
				}
			}
			if len(c.VolumeMounts) == 0 {
				t.Errorf("%s: container %s mounts no secrets", path, c.Name)
			}
		}
	}
	for name := range config {
		if secretLike(name) {
			t.Errorf("configmap.yaml holds the secret %s; give it as a file (%s_FILE)", name, name)
		}
	}
}

// The StatefulSet's pods are its shards: each pod's name gives a valid shard.index of
// its ordinal, and shard.count is the number of replicas.
func TestKubernetesShards(t *testing.T) {
	var sets []kubeObject
	for _, objs := range kubeObjects(t) {
		for _, o := range objs {
			if o.Kind == "StatefulSet" {
				sets = append(sets, o)
			}
		}
	}
	if len(sets) != 1 || sets[0].Spec.Replicas == nil {
		t.Fatalf("want one StatefulSet with replicas, got %+v", sets)
	}
	set := sets[0]
	env := map[string]string{}
	for _, c := range set.Spec.Template.Spec.Containers {
		for _, e := range c.Env {
			env[e.Name] = e.Value
			if e.ValueFrom.FieldRef.FieldPath != "" {
				env[e.Name] = "fieldRef:" + e.ValueFrom.FieldRef.FieldPath
			}
		}
	}
	if got := env["CEKAT_ARCHIVER_SHARD_INDEX"]; got != "fieldRef:metadata.name" {
		t.Errorf("CEKAT_ARCHIVER_SHARD_INDEX is %q, want the pod's name (fieldRef metadata.name)", got)
	}
	replicas := *set.Spec.Replicas
	for i := range replicas + 1 {
		// A StatefulSet names its pods NAME-ORDINAL.
		pod := set.Metadata.Name + "-" + strconv.Itoa(i)
		cfg, err := config.Load("", func(key string) (string, bool) {
			v, ok := map[string]string{"CEKAT_ARCHIVER_API_BASE_URL": "https://api.example", "CEKAT_ARCHIVER_API_KEY": "k",
				"CEKAT_ARCHIVER_SHARD_INDEX": pod, "CEKAT_ARCHIVER_SHARD_COUNT": env["CEKAT_ARCHIVER_SHARD_COUNT"]}[key]
			return v, ok
		})
		switch {
		case i == replicas && err == nil:
			t.Errorf("pod %s, beyond replicas %d, is accepted as a shard of %s", pod, replicas, env["CEKAT_ARCHIVER_SHARD_COUNT"])
		case i < replicas && err != nil:
			t.Errorf("pod %s: %v", pod, err)
		case i < replicas && (cfg.Shard.Ordinal() != i || cfg.Shard.Count != replicas):
			t.Errorf("pod %s is shard %d of %d, want %d of %d (replicas)", pod, cfg.Shard.Ordinal(), cfg.Shard.Count, i, replicas)
		}
	}
}

func secretLike(name string) bool {
	if strings.HasSuffix(name, "_FILE") {
		return false
	}
	for _, s := range []string{"PASSWORD", "_KEY", "TOKEN", "SECRET"} {
		if strings.Contains(name, s) {
			return true
		}
	}
	return false
}

// exported lists the metric names the archiver's packages register, with the series
// names of histograms.
func exported(t *testing.T) map[string]bool {
	t.Helper()
	reg := &recorder{}
	syncer.NewMetrics(reg)
	syncer.NewBudgetMetrics(reg)
	purge.NewMetrics(reg)
	reg.MustRegister(shard.Info(shard.Shard{}))
	if _, err := webhook.New(webhook.Options{Secret: []byte("s"), Store: noStore{}, Registerer: reg}); err != nil {
		t.Fatal(err)
	}
	// The daemon takes a registry of its own (it serves it): register what it made there.
	dreg := prometheus.NewRegistry()
	schedule, err := config.ParseSchedule("*/5 * * * *", time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	job := daemon.Job{Name: "sync", Schedule: schedule, Run: func(context.Context) error { return nil }}
	if _, err := daemon.New([]daemon.Job{job}, daemon.Options{Registry: dreg}); err != nil {
		t.Fatal(err)
	}
	reg.MustRegister(daemonCollectors(t, dreg)...)
	a, err := sink.OpenArchive(context.Background(), nil, sink.ArchiveOptions{Registerer: reg, BatchInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{
		// cmd/cekat-archiver registers these itself (the main package cannot be imported).
		"cekat_archiver_build_info": true, "process_start_time_seconds": true, "process_resident_memory_bytes": true, "up": true,
		// The daemon makes these series only when a run ends.
		"cekat_archiver_last_success_timestamp_seconds": true, "cekat_archiver_run_duration_seconds_bucket": true,
	}
	fqName := regexp.MustCompile(`fqName: "([^"]+)"`)
	for _, c := range reg.collectors {
		ch := make(chan *prometheus.Desc, 100)
		c.Describe(ch)
		close(ch)
		for d := range ch {
			m := fqName.FindStringSubmatch(d.String())
			if m == nil {
				t.Fatalf("no name in %s", d)
			}
			names[m[1]] = true
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				names[m[1]+suffix] = true
			}
		}
	}
	return names
}

// noStore is a webhook store that is never called: the receiver is made for its metrics.
type noStore struct{}

func (noStore) SaveWebhookEvents(context.Context, ...sink.WebhookEvent) error { return nil }

func (noStore) SeenWebhookEvents(context.Context, ...string) (map[string]bool, error) {
	return nil, nil
}

// daemonCollectors stand for the metrics a registry holds (a registry gathers, but does
// not describe, what it holds): one gauge of each name.
func daemonCollectors(t *testing.T, reg *prometheus.Registry) []prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []prometheus.Collector
	for _, mf := range mfs {
		out = append(out, prometheus.NewGauge(prometheus.GaugeOpts{Name: mf.GetName(), Help: "from the daemon"}))
	}
	return out
}

// recorder is a Registerer that keeps what is registered.
type recorder struct{ collectors []prometheus.Collector }

func (r *recorder) Register(c prometheus.Collector) error {
	r.collectors = append(r.collectors, c)
	return nil
}

func (r *recorder) MustRegister(cs ...prometheus.Collector) {
	r.collectors = append(r.collectors, cs...)
}

func (r *recorder) Unregister(prometheus.Collector) bool { return true }

// The dashboard and the alert rules name only metrics that exist: a metric renamed in the
// code must be renamed there too.
func TestMetricNamesExist(t *testing.T) {
	names := exported(t)
	if !names["cekat_archiver_conversations_lagging"] || !names["cekat_archiver_runs_total"] {
		t.Fatalf("the registry misses known metrics: %v", names)
	}
	exprs := append(deploytest.DashboardExprs(t), deploytest.AlertExprs(t)...)
	if len(exprs) < 20 {
		t.Fatalf("only %d expressions found", len(exprs))
	}
	metric := regexp.MustCompile(`\b(cekat_archiver_[a-z0-9_]+|process_[a-z_]+)\b`)
	for _, e := range exprs {
		for _, m := range metric.FindAllString(e, -1) {
			if !names[m] {
				t.Errorf("%q names %s, which the archiver does not export", e, m)
			}
		}
	}
}

// promtool is the promtool binary: beside CEKAT_ARCHIVER_TEST_PROMETHEUS, or on PATH.
func promtool(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("CEKAT_ARCHIVER_TEST_PROMETHEUS"); p != "" {
		if tool := filepath.Join(filepath.Dir(p), "promtool"); isExecutable(tool) {
			return tool
		}
	}
	tool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool is not installed (deploy/prometheus/prometheus.sh install)")
	}
	return tool
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode()&0o111 != 0
}

func TestAlertRules(t *testing.T) {
	tool := promtool(t)
	for _, args := range [][]string{{"check", "rules", "prometheus/alerts.yaml"}, {"test", "rules", "prometheus/alerts_test.yaml"},
		{"check", "config", "compose/prometheus.yml"}} {
		out, err := exec.Command(tool, args...).CombinedOutput()
		if err != nil && !(args[1] == "config" && bytes.Contains(out, []byte("rule_files"))) {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

func TestSystemdUnit(t *testing.T) {
	tool, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed")
	}
	unit, err := os.ReadFile("systemd/cekat-archiver.service")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"NoNewPrivileges=yes", "ProtectSystem=strict", "DynamicUser=yes", "Restart=on-failure", "LoadCredential="} {
		if !bytes.Contains(unit, []byte("\n"+want)) {
			t.Errorf("the unit lacks %s", want)
		}
	}
	// verify wants the binary of ExecStart to exist: point it at one that does.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "cekat-archiver.service")
	if err := os.WriteFile(path, bytes.ReplaceAll(unit, []byte("/usr/local/bin/cekat-archiver"), []byte(self)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(tool, "verify", path).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

func TestDockerfile(t *testing.T) {
	data, err := os.ReadFile("docker/Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	if n := strings.Count(s, "\nFROM "); n < 2 {
		t.Errorf("%d stages, want a build stage and a runtime stage", n)
	}
	for _, want := range []string{"CGO_ENABLED=0", "\nFROM scratch", "\nUSER 65532:65532", "timetzdata", "ca-certificates.crt"} {
		if !strings.Contains(s, want) {
			t.Errorf("the Dockerfile lacks %q", want)
		}
	}
	if tool, err := exec.LookPath("hadolint"); err == nil {
		if out, err := exec.Command(tool, "docker/Dockerfile").CombinedOutput(); err != nil {
			t.Errorf("hadolint: %v\n%s", err, out)
		}
	} else {
		t.Log("hadolint is not installed: the Dockerfile is not linted")
	}
	if os.Getenv("CEKAT_ARCHIVER_TEST_DOCKER") == "" {
		t.Log("the image is not built (set CEKAT_ARCHIVER_TEST_DOCKER=1 with a Docker daemon)")
		return
	}
	build := exec.Command("docker", "build", "-f", "deploy/docker/Dockerfile", "-t", "cekat-archiver:test", ".")
	build.Dir = ".."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("docker build: %v\n%s", err, out)
	}
	if out, err := exec.Command("docker", "run", "--rm", "cekat-archiver:test", "--version").CombinedOutput(); err != nil ||
		!bytes.HasPrefix(out, []byte("cekat-archiver ")) {
		t.Errorf("docker run --version: %v\n%s", err, out)
	}
}
