package e2e

import (
	"testing"
	"time"
)

// WaitFor calls cond every 10 ms until it holds, and fails t if it still
// does not after d; what names the awaited state in that failure.
func WaitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	WaitEvery(t, d, 10*time.Millisecond, what, cond)
}

// WaitEvery is WaitFor for a cond that costs something (a scrape, a
// command): it calls cond every interval.
func WaitEvery(t testing.TB, d, interval time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(interval)
	}
}
