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
	// The right key then syncs every conversation.
	if code, out, errOut := r.cli(nil, "sync", "--once", "--progress=none"); code != 0 || !strings.Contains(out, ", failed 0,") {
		t.Errorf("exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
}
