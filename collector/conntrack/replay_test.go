package conntrack

import (
	"bufio"
	"os"
	"testing"
	"time"

	"github.com/nfdrop/nfdrop_exporter/collector/capture"
)

// recordedAt is when the last datagram of the recording at path was
// captured: the replay runs on that clock, so flows the kernel stamped when
// the recording was made are still within the tracker's window, whenever the
// test runs.
func recordedAt(t testing.TB, path string) time.Time {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := capture.Open(bufio.NewReader(f))
	if err != nil {
		t.Fatal(err)
	}
	var last time.Time
	for {
		_, ts, err := r.Next()
		if err != nil {
			break
		}
		last = ts
	}
	if last.IsZero() {
		t.Fatalf("%s has no datagram", path)
	}
	return last
}

// recordedTuple is flow i of the recording as a late packet of the server
// (10.98.0.1:443) to the client shows it: the reply direction.
func recordedTuple(t testing.TB, i int) Tuple {
	return tup(t, "10.98.0.1", 443, "10.98.0.2", uint16(1024+i))
}

// replayTracker runs a tracker over the recording at path until it has
// handled all of it.
func replayTracker(t testing.TB, path string) *Tracker {
	t.Helper()
	cfg := testConfig()
	cfg.Events = func() (Events, error) { return ReplayEvents(path) }
	tr, err := New(cfg, nopLogger())
	if err != nil {
		t.Fatal(err)
	}
	tr.looker.Store(&lookerRef{&fakeLooker{}}) // the table is empty: every lookup finds nothing
	at := recordedAt(t, path)
	tr.now = func() time.Time { return at }
	tr.Start()
	t.Cleanup(tr.Stop)
	deadline := time.Now().Add(5 * time.Second)
	for {
		tr.sock.mu.Lock()
		done := tr.sock.s != nil && tr.up.Load() && tr.destroys.Load() > 0
		tr.sock.mu.Unlock()
		if done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the recording was not replayed")
		}
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond) // the rest of a short file
	return tr
}

// TestReplayRecordedEvents decides evidence against DESTROY events a real
// kernel sent (the committed recording): a late packet of a destroyed flow
// gets "destroyed" with its delay from the kernel's own timestamp, whichever
// direction it takes; a packet of a flow conntrack never had gets "none".
func TestReplayRecordedEvents(t *testing.T) {
	start := time.Now()
	tr := replayTracker(t, recordedEvents)
	if got := tr.destroys.Load(); got != 3 || tr.undecodable.Load() != 0 {
		t.Fatalf("%d DESTROY events, %d undecodable; want 3, 0", got, tr.undecodable.Load())
	}
	for i := 0; i < 3; i++ {
		tp := recordedTuple(t, i)
		tr.mu.Lock() // the listener goroutine writes mem under mu
		ended, ok := tr.mem.lookup(tp.key())
		tr.mu.Unlock()
		if !ok {
			t.Fatalf("flow %d not remembered", i)
		}
		// The kernel stamped the end (nf_conntrack_timestamp=1) when the
		// recording was made: not the replay's clock.
		if ended >= start.UnixNano() {
			t.Errorf("flow %d ended %v: the replay's time, not the kernel's", i, time.Unix(0, ended))
		}
		for _, dir := range []Tuple{tp, tup(t, "10.98.0.2", uint16(1024+i), "10.98.0.1", 443)} {
			h := held{tuple: dir, ts: ended + int64(1500*time.Millisecond)}
			ev, delay, hasDelay := tr.decide(&h, h.ts+int64(tr.cfg.Hold))
			if ev != EvidenceDestroyed || !hasDelay || delay != 1.5 {
				t.Errorf("flow %d: evidence %v delay %v (%v), want destroyed 1.5", i, ev, delay, hasDelay)
			}
		}
	}
	h := held{tuple: recordedTuple(t, 3), ts: time.Now().UnixNano()}
	if ev, _, _ := tr.decide(&h, h.ts); ev != EvidenceNone {
		t.Errorf("a flow not in the recording: evidence %v, want none", ev)
	}
}
