package sinktest

import (
	"testing"
	"time"
)

// WaitTimeout bounds WaitFor. It only stops a test that would hang: a
// condition that holds is never timed.
const WaitTimeout = 60 * time.Second

// WaitFor polls cond until it holds, and fails the test when it still does
// not after WaitTimeout. It polls often at first (a condition about to hold
// costs little wait), then every millisecond.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(WaitTimeout)
	pause := 50 * time.Microsecond
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s after %v", what, WaitTimeout)
		}
		time.Sleep(pause)
		pause = min(2*pause, time.Millisecond)
	}
}
