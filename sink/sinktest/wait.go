package sinktest

import (
	"testing"
	"time"
)

// WaitTimeout bounds WaitFor. It only stops a test that would hang: a
// condition that holds is never timed.
const WaitTimeout = 60 * time.Second

// WaitFor polls cond until it holds, and fails the test when it still does
// not after WaitTimeout.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(WaitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s after %v", what, WaitTimeout)
		}
		time.Sleep(time.Millisecond)
	}
}
