package main

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cekat-archiver/cekat-archiver/sink/sinktest"
	"github.com/cekat-archiver/cekat-archiver/syncer/cekatsim"
)

// TestSecondArchiverRefuses starts a second `sync --once` on the same
// archive while the first is making its first API request (held until
// the second has exited, so no timing decides the outcome): the second
// refuses to run, names the first (host and pid), exits non-zero and makes
// no API request; the first finishes normally. The second process has a
// key of its own, so that its requests, if any, are told apart.
func TestSecondArchiverRefuses(t *testing.T) {
	chAddr := sinktest.Addr(t)
	if testing.Short() {
		t.Skip("builds the archiver and runs it twice")
	}
	rig := newRig(t, chAddr, cekatsim.Options{Seed: 5, MessageCounts: []int{3, 40, 120}})
	const secondKey = "second-archiver-key"
	var (
		once          sync.Once
		secondOut     bytes.Buffer
		secondCode    = -1
		secondRequest atomic.Int64
		firstPid      atomic.Int64
	)
	hook := func(r *http.Request) {
		if r.Header.Get("api_key") == secondKey {
			secondRequest.Add(1)
			return
		}
		once.Do(func() {
			cmd := exec.Command(rig.bin, "sync", "--once", "--progress=none")
			cmd.Env = append(append([]string{}, rig.env...), "CEKAT_ARCHIVER_API_KEY="+secondKey)
			cmd.Dir = rig.dir
			cmd.Stdout, cmd.Stderr = &secondOut, &secondOut
			done := make(chan struct{})
			go func() {
				_ = cmd.Run()
				close(done)
			}()
			select {
			case <-done:
				secondCode = cmd.ProcessState.ExitCode()
			case <-time.After(2 * time.Minute):
				_ = cmd.Process.Kill()
				<-done
				t.Errorf("the second archiver did not exit in two minutes:\n%s", secondOut.String())
			}
		})
	}
	rig.onRequest.Store(&hook)

	var stdout, stderr bytes.Buffer
	first, done := rig.start(&stdout, &stderr)
	firstPid.Store(int64(first.Process.Pid))
	select {
	case <-done:
	case <-time.After(3 * time.Minute):
		_ = first.Process.Kill()
		<-done
		t.Fatalf("the first archiver did not finish:\n%s", stderr.String())
	}
	if code := first.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("the first archiver exited %d:\n%s", code, crashTail(stderr.String()+stdout.String(), 3000))
	}
	host, _ := os.Hostname()
	out := secondOut.String()
	t.Logf("second archiver, exit %d: %s", secondCode, crashTail(out, 600))
	t.Logf("API requests of the second archiver: %d (detail calls paid twice: none can be)", secondRequest.Load())
	if secondCode == 0 || secondCode == -1 {
		t.Errorf("the second archiver exited %d, want a refusal", secondCode)
	}
	for _, want := range []string{"another archiver", "host " + host, fmt.Sprintf("pid %d", firstPid.Load())} {
		if !strings.Contains(out, want) {
			t.Errorf("the refusal does not say %q:\n%s", want, out)
		}
	}
	if n := secondRequest.Load(); n != 0 {
		t.Errorf("the second archiver made %d API requests", n)
	}
}
