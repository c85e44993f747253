package main

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

// cliEnv clears every CEKAT_ARCHIVER_ variable of the environment and sets kv.
func cliEnv(t *testing.T, kv ...string) {
	t.Helper()
	for _, e := range os.Environ() {
		if k, _, _ := strings.Cut(e, "="); strings.HasPrefix(k, "CEKAT_ARCHIVER_") {
			t.Setenv(k, "")
			os.Unsetenv(k)
		}
	}
	for i := 0; i+1 < len(kv); i += 2 {
		t.Setenv(kv[i], kv[i+1])
	}
}

func TestCLI(t *testing.T) {
	tests := []struct {
		name     string
		env      []string
		args     []string
		wantCode int
		wantOut  []string
		wantErr  []string
		notInOut []string
	}{
		{name: "version", args: []string{"version"}, wantOut: []string{"cekat-archiver "}},
		{name: "--version", args: []string{"--version"}, wantOut: []string{"cekat-archiver "}},
		{name: "config check reports misspelt variables",
			env:      []string{"CEKAT_ARCHIVER_API_BASE_URL", "http://127.0.0.1:1", "CEKAT_ARCHIVER_API_KEY", "k", "CEKAT_ARCHIVER_API_TIEMOUT", "5s"},
			args:     []string{"config", "check"},
			wantCode: 1,
			wantErr:  []string{"name no key (misspelt?): CEKAT_ARCHIVER_API_TIEMOUT"}},
		{name: "config check masks secrets",
			env:      []string{"CEKAT_ARCHIVER_API_BASE_URL", "http://127.0.0.1:1", "CEKAT_ARCHIVER_API_KEY", "sk_live_SECRET", "CEKAT_ARCHIVER_CLICKHOUSE_PASSWORD", "pw_SECRET"},
			args:     []string{"config", "check"},
			wantOut:  []string{"configuration is valid", "key: '***'", "base_url: http://127.0.0.1:1"},
			notInOut: []string{"sk_live_SECRET", "pw_SECRET"}},
		{name: "config check masks URL passwords",
			env: []string{"CEKAT_ARCHIVER_API_BASE_URL", "https://archiver:url_SECRET@api.cekat.example/v1", "CEKAT_ARCHIVER_API_KEY", "k",
				"CEKAT_ARCHIVER_API_BACKOFFICE_URL", "https://ops:bo_SECRET@backoffice.cekat.example"},
			args:     []string{"config", "check"},
			wantOut:  []string{"base_url: https://archiver:***@api.cekat.example/v1", "backoffice_url: https://ops:***@backoffice.cekat.example"},
			notInOut: []string{"url_SECRET", "bo_SECRET"}},
		{name: "bad URL reported without its password",
			env:      []string{"CEKAT_ARCHIVER_API_BASE_URL", "ftp://archiver:url_SECRET@api.cekat.example", "CEKAT_ARCHIVER_API_KEY", "k"},
			args:     []string{"config", "check"},
			wantCode: 1,
			wantErr:  []string{`api.base_url: must be an absolute http or https URL, got "ftp://archiver:***@api.cekat.example"`},
			notInOut: []string{"url_SECRET"}},
		{name: "bad config: every problem at once, exit 1",
			env:      []string{"CEKAT_ARCHIVER_API_BASE_URL", "api.cekat.ai", "CEKAT_ARCHIVER_SCHEDULE_SYNC", "every minute"},
			args:     []string{"config", "check"},
			wantCode: 1,
			wantErr:  []string{"api.base_url:", "api.key: must be set", "schedule.sync:"}},
		{name: "unknown command", args: []string{"frobnicate"}, wantCode: 2, wantErr: []string{"unexpected argument frobnicate"}},
		{name: "run: ClickHouse unreachable at start is an error, not a retry loop",
			env: []string{"CEKAT_ARCHIVER_API_BASE_URL", "http://127.0.0.1:1", "CEKAT_ARCHIVER_API_KEY", "k",
				"CEKAT_ARCHIVER_CLICKHOUSE_ADDR", "127.0.0.1:1", "CEKAT_ARCHIVER_CLICKHOUSE_DIAL_TIMEOUT", "2s", "CEKAT_ARCHIVER_DAEMON_LISTEN", ""},
			args:     []string{"run"},
			wantCode: 1,
			wantErr:  []string{"cannot reach ClickHouse at 127.0.0.1:1"}},
		{name: "sync --once needs --once", env: []string{"CEKAT_ARCHIVER_API_BASE_URL", "http://127.0.0.1:1", "CEKAT_ARCHIVER_API_KEY", "k"},
			args: []string{"sync"}, wantCode: 2, wantErr: []string{"--once"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cliEnv(t, tt.env...)
			var out, errOut bytes.Buffer
			code := run(tt.args, &out, &errOut)
			if code != tt.wantCode {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.wantCode, out.String(), errOut.String())
			}
			for _, w := range tt.wantOut {
				if !strings.Contains(out.String(), w) {
					t.Errorf("stdout lacks %q:\n%s", w, out.String())
				}
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(errOut.String(), w) {
					t.Errorf("stderr lacks %q:\n%s", w, errOut.String())
				}
			}
			for _, w := range tt.notInOut {
				if strings.Contains(out.String()+errOut.String(), w) {
					t.Errorf("output shows %q", w)
				}
			}
		})
	}
}
