package main

import (
	"net/http/httptest"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cekat-archiver/cekat-archiver/sink/sinktest"
	"github.com/cekat-archiver/cekat-archiver/syncer/cekatsim"
)

// The daemon runs the purge on schedule.purge, next to frequent syncs: the
// conversations past retention are deleted upstream, its metrics count
// them, and the syncs after it neither poll them nor report them gone.
func TestDaemonRunsThePurgeOnSchedule(t *testing.T) {
	chAddr := sinktest.Addr(t)
	if testing.Short() {
		t.Skip("builds the archiver and runs its daemon for some seconds")
	}
	dir := t.TempDir()
	bin := crashBuildArchiver(t, dir)
	sim, err := cekatsim.New(cekatsim.Options{Seed: 4, MessageCounts: []int{2, 3, 5, 1, 4, 2, 6, 3, 2, 4, 3, 5},
		Start: time.Now().UTC().Truncate(time.Second), APIKey: "k"})
	if err != nil {
		t.Fatal(err)
	}
	api := httptest.NewServer(sim.Handler())
	t.Cleanup(api.Close)
	bo := httptest.NewServer(sim.BackofficeHandler())
	t.Cleanup(bo.Close)
	old, _ := oldConversations(t, sim)
	addr := promFreeAddr(t)
	env := cleanEnviron([]string{
		"CEKAT_ARCHIVER_API_BASE_URL=" + api.URL, "CEKAT_ARCHIVER_API_KEY=k",
		"CEKAT_ARCHIVER_API_BACKOFFICE_URL=" + bo.URL, "CEKAT_ARCHIVER_API_BACKOFFICE_TOKEN=" + cekatsim.DefaultBackofficeToken,
		"CEKAT_ARCHIVER_API_BACKOFFICE_AUTH=bearer",
		"CEKAT_ARCHIVER_API_RATE_LIMIT_PER_MINUTE=100000", "CEKAT_ARCHIVER_API_RATE_LIMIT_PER_DAY=0",
		"CEKAT_ARCHIVER_CLICKHOUSE_ADDR=" + chAddr, "CEKAT_ARCHIVER_CLICKHOUSE_DATABASE=" + sinktest.DatabaseName(t),
		"CEKAT_ARCHIVER_CONVERSATIONS_IDS=" + strings.Join(sim.ConversationIDs(), ","),
		"CEKAT_ARCHIVER_SYNC_POLL_IDLE_RUNS=1000",
		"CEKAT_ARCHIVER_SCHEDULE_SYNC=@every 1s", "CEKAT_ARCHIVER_SCHEDULE_PURGE=@every 2s",
		"CEKAT_ARCHIVER_RETENTION_ENABLED=true", "CEKAT_ARCHIVER_RETENTION_DRY_RUN=false",
		"CEKAT_ARCHIVER_RETENTION_PURGE_AFTER=" + purgeRetention.String(),
		"CEKAT_ARCHIVER_DAEMON_LISTEN=" + addr, "CEKAT_ARCHIVER_LOG_FORMAT=console",
	})
	d := promStart(t, "cekat-archiver run", dir, env, bin, "run")
	deleted := func() []string {
		var out []string
		for _, x := range sim.Deletions() {
			out = append(out, x.Deleted...)
		}
		sort.Strings(out)
		return out
	}
	deadline := time.Now().Add(60 * time.Second)
	for !slices.Equal(deleted(), old) {
		if time.Now().After(deadline) || d.exited() {
			t.Fatalf("the daemon deleted %v, want %v:\n%s", deleted(), old, promTail(d.out.String(), 4000))
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Two more syncs after the purge: they leave the purged alone.
	lists := sim.Counts().Endpoint(cekatsim.EndpointList)
	for sim.Counts().Endpoint(cekatsim.EndpointList) < lists+2*(len(sim.ConversationIDs())-len(old)) {
		if time.Now().After(deadline) || d.exited() {
			t.Fatalf("no syncs after the purge:\n%s", promTail(d.out.String(), 4000))
		}
		time.Sleep(100 * time.Millisecond)
	}
	metrics := string(promGet(t, "http://"+addr+"/metrics"))
	if code := d.stop(30 * time.Second); code != 0 {
		t.Errorf("daemon exited %d after SIGTERM", code)
	}
	for _, want := range []string{`cekat_archiver_purge_conversations_total{outcome="deleted"} ` + strconv.Itoa(len(old)),
		`cekat_archiver_runs_total{result="failure",task="purge"} 0`, `cekat_archiver_conversations_gone 0`} {
		if !strings.Contains(metrics, want+"\n") {
			t.Errorf("metrics lack %q", want)
		}
	}
	if out := d.out.String(); strings.Contains(out, "not found upstream") {
		t.Errorf("the daemon reported a purged conversation gone:\n%s", promTail(out, 4000))
	}
	if promBin := os.Getenv(promEnv); promBin != "" {
		promLint(t, promFindPromtool(t, promBin), []byte(metrics), "after a purge")
	}
}
