package main

import (
	"bytes"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cekat-archiver/cekat-archiver/sink/sinktest"
	"github.com/cekat-archiver/cekat-archiver/syncer/cekatsim"
)

// opsRig is the simulator over HTTP and the environment of commands run in
// process against it and a fresh database.
type opsRig struct {
	t   *testing.T
	sim *cekatsim.Server
	env []string
}

func newOpsRig(t *testing.T, conversations int, env ...string) *opsRig {
	t.Helper()
	chAddr := sinktest.Addr(t)
	sim, err := cekatsim.New(cekatsim.Options{Seed: 19, Conversations: conversations, MeanMessages: 3,
		Start: time.Now().UTC().Truncate(time.Second), APIKey: "right-key"})
	if err != nil {
		t.Fatal(err)
	}
	api := httptest.NewServer(sim.Handler())
	t.Cleanup(api.Close)
	base := []string{
		"CEKAT_ARCHIVER_API_BASE_URL", api.URL, "CEKAT_ARCHIVER_API_KEY", "right-key",
		"CEKAT_ARCHIVER_API_RATE_LIMIT_PER_MINUTE", "1000000", "CEKAT_ARCHIVER_API_RATE_LIMIT_PER_DAY", "0",
		"CEKAT_ARCHIVER_CLICKHOUSE_ADDR", chAddr, "CEKAT_ARCHIVER_CLICKHOUSE_DATABASE", sinktest.DatabaseName(t),
		"CEKAT_ARCHIVER_LOG_LEVEL", "warn",
	}
	return &opsRig{t: t, sim: sim, env: append(base, env...)}
}

// cli runs the command in process and returns its exit code and output.
func (r *opsRig) cli(extraEnv []string, args ...string) (int, string, string) {
	r.t.Helper()
	cliEnv(r.t, append(slices.Clone(r.env), extraEnv...)...)
	var out, errOut bytes.Buffer
	code := run(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// With discovery on and a wrong key, sync --once makes one call, exits
// non-zero and names the key to check and how it is sent.
func TestSyncStopsAtRefusedKey(t *testing.T) {
	r := newOpsRig(t, 20, "CEKAT_ARCHIVER_CONVERSATIONS_DISCOVER_ENABLED", "true", "CEKAT_ARCHIVER_API_AUTH", "bearer")
	code, out, errOut := r.cli([]string{"CEKAT_ARCHIVER_API_KEY", "wrong-key"}, "sync", "--once", "--progress=none")
	if code != 1 {
		t.Errorf("exit %d, want 1\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	for _, want := range []string{"refused the API key (HTTP 401)", "Check api.key,", `api.auth ("bearer": the key is sent in the Authorization: Bearer header)`} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
	if strings.Contains(out+errOut, "wrong-key") {
		t.Error("the output shows the key")
	}
	if n := r.sim.Counts().Status(cekatsim.EndpointConversations, 401); n != 1 {
		t.Errorf("%d refused calls, want 1", n)
	}
	// The right key then syncs every conversation (drawing the progress bar).
	if code, out, errOut := r.cli(nil, "sync", "--once", "--progress=bar"); code != 0 || !strings.Contains(out, ", failed 0,") {
		t.Errorf("exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	// An idle run: the run's line counts the conversations the list shows unchanged.
	code, out, errOut = r.cli([]string{"CEKAT_ARCHIVER_LOG_LEVEL", "info"}, "sync", "--once", "--progress=log")
	if code != 0 || !strings.Contains(errOut, `"unchanged":18`) || !strings.Contains(out, "unchanged 18)") {
		t.Errorf("exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
}

// status lists the tracked conversations never synced (the lagging gauge
// counts them), and status --lagging exits 3 while some lag, 0 when none.
func TestStatusListsNeverSyncedAndLaggingExitCode(t *testing.T) {
	r := newOpsRig(t, 6)
	ids := r.sim.ConversationIDs()
	r.env = append(r.env, "CEKAT_ARCHIVER_CONVERSATIONS_IDS", strings.Join(ids, ","))
	if code, out, errOut := r.cli(nil, "sync", "--once", "--progress=none", "--conversation", ids[0]); code != 0 {
		t.Fatalf("sync: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut := r.cli(nil, "status")
	if code != 0 || !strings.Contains(out, "TOTAL 6") || strings.Count(out, "never synced") != 5 {
		t.Errorf("status: exit %d, want TOTAL 6 with 5 never synced:\n%s%s", code, out, errOut)
	}
	code, out, errOut = r.cli(nil, "status", "--lagging", "-o", "json")
	if code != exitLagging || strings.Count(out, `"never_synced": true`) != 5 {
		t.Errorf("status --lagging: exit %d, want %d and the 5 never synced:\n%s%s", code, exitLagging, out, errOut)
	}
	if code, out, errOut := r.cli(nil, "sync", "--once", "--progress=none"); code != 0 {
		t.Fatalf("sync: exit %d\n%s%s", code, out, errOut)
	}
	if code, out, errOut := r.cli(nil, "status", "--lagging"); code != 0 || !strings.Contains(out, "TOTAL 0") {
		t.Errorf("status --lagging after a complete sync: exit %d, want 0 and no conversation:\n%s%s", code, out, errOut)
	}
}
