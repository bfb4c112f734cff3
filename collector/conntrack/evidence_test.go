package conntrack

import (
	"errors"
	"testing"
	"time"

	"github.com/nfdrop/nfdrop_exporter/collector/classify"
)

func TestDecide(t *testing.T) {
	t0 := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	client := tup(t, "10.99.0.2", 40000, "10.99.0.1", 443)
	server := tup(t, "10.99.0.1", 443, "10.99.0.2", 40000) // the same flow, other direction
	other := tup(t, "10.99.0.2", 40001, "10.99.0.1", 443)
	v6 := tup(t, "fd99::2", 40000, "fd99::1", 443)
	type destroy struct {
		tp    Tuple
		ended time.Time
	}
	for _, tc := range []struct {
		name      string
		destroyed []destroy
		states    map[Tuple]uint8
		lookErr   error
		noLooker  bool
		down      bool
		lookups   float64
		packet    Tuple
		want      Evidence
		wantDelay float64 // -1: no delay observed
		wantCalls int
	}{
		{name: "destroyed 5s before", destroyed: []destroy{{client, t0.Add(-5 * time.Second)}}, packet: client, want: EvidenceDestroyed, wantDelay: 5},
		{name: "destroyed, recorded server to client", destroyed: []destroy{{server, t0.Add(-1500 * time.Millisecond)}}, packet: client, want: EvidenceDestroyed, wantDelay: 1.5},
		{name: "destroyed ipv6", destroyed: []destroy{{v6, t0.Add(-time.Minute)}}, packet: v6, want: EvidenceDestroyed, wantDelay: 60},
		{name: "destroyed by the packet's own lookup (after it)", destroyed: []destroy{{client, t0.Add(3 * time.Millisecond)}}, packet: client, want: EvidenceDestroyed, wantDelay: 0},
		{name: "destroyed exactly one window before", destroyed: []destroy{{client, t0.Add(-DefaultWindow)}}, packet: client, want: EvidenceDestroyed, wantDelay: 120},
		{name: "destroyed longer ago than the window: looked up", destroyed: []destroy{{client, t0.Add(-DefaultWindow - time.Millisecond)}}, packet: client, want: EvidenceNone, wantDelay: -1, wantCalls: 1},
		{name: "other flow destroyed", destroyed: []destroy{{other, t0.Add(-time.Second)}}, packet: client, want: EvidenceNone, wantDelay: -1, wantCalls: 1},
		{name: "time wait", states: map[Tuple]uint8{client: tcpTimeWait}, packet: client, want: EvidenceClosing, wantDelay: -1, wantCalls: 1},
		{name: "close wait, picked up reversed", states: map[Tuple]uint8{server: tcpCloseWait}, packet: client, want: EvidenceClosing, wantDelay: -1, wantCalls: 1},
		{name: "fin wait", states: map[Tuple]uint8{client: tcpFinWait}, packet: client, want: EvidenceClosing, wantDelay: -1, wantCalls: 1},
		{name: "last ack", states: map[Tuple]uint8{client: tcpLastAck}, packet: client, want: EvidenceClosing, wantDelay: -1, wantCalls: 1},
		{name: "close", states: map[Tuple]uint8{client: tcpClose}, packet: client, want: EvidenceClosing, wantDelay: -1, wantCalls: 1},
		{name: "established", states: map[Tuple]uint8{client: tcpEstablished}, packet: client, want: EvidenceEstablished, wantDelay: -1, wantCalls: 1},
		{name: "syn sent counts as live", states: map[Tuple]uint8{client: tcpSynSent}, packet: client, want: EvidenceEstablished, wantDelay: -1, wantCalls: 1},
		{name: "syn recv counts as live", states: map[Tuple]uint8{client: tcpSynRecv}, packet: client, want: EvidenceEstablished, wantDelay: -1, wantCalls: 1},
		{name: "unknown flow (a scan)", packet: client, want: EvidenceNone, wantDelay: -1, wantCalls: 1},
		{name: "lookup fails", lookErr: errors.New("netlink: EBUSY"), packet: client, want: EvidenceSkipped, wantDelay: -1, wantCalls: 1},
		{name: "lookups disabled", lookups: -1, packet: client, want: EvidenceSkipped, wantDelay: -1},
		{name: "no lookup socket", noLooker: true, packet: client, want: EvidenceSkipped, wantDelay: -1},
		{name: "not subscribed", down: true, destroyed: []destroy{{client, t0.Add(-time.Second)}}, packet: client, want: EvidenceSkipped, wantDelay: -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig()
			if tc.lookups < 0 {
				cfg.LookupsPerSecond = 0
			}
			tr, err := New(cfg, nopLogger())
			if err != nil {
				t.Fatal(err)
			}
			clk := &fakeClock{t0.Add(DefaultHold)}
			tr.now = clk.now
			fl := &fakeLooker{states: map[flowKey]uint8{}, err: tc.lookErr}
			for tp, s := range tc.states {
				fl.states[tp.key()] = s
			}
			if !tc.noLooker {
				tr.looker.Store(&lookerRef{fl})
			}
			tr.up.Store(!tc.down)
			for _, d := range tc.destroyed {
				tr.recordDestroy(&d.tp, d.ended.UnixNano())
			}
			h := held{tuple: tc.packet, ts: t0.UnixNano(), deadline: t0.Add(DefaultHold).UnixNano()}
			ev, delay, hasDelay := tr.decide(&h, clk.now().UnixNano())
			if ev != tc.want {
				t.Errorf("evidence %v, want %v", ev, tc.want)
			}
			if tc.wantDelay < 0 && hasDelay {
				t.Errorf("delay %v observed, want none", delay)
			}
			if tc.wantDelay >= 0 && (!hasDelay || delay != tc.wantDelay) {
				t.Errorf("delay %v (observed %v), want %v", delay, hasDelay, tc.wantDelay)
			}
			if fl.calls != tc.wantCalls {
				t.Errorf("%d lookups, want %d", fl.calls, tc.wantCalls)
			}
		})
	}
}

func TestLookupBudget(t *testing.T) {
	cfg := testConfig()
	cfg.LookupsPerSecond = 2 // burst 2, one token every 500ms
	tr, err := New(cfg, nopLogger())
	if err != nil {
		t.Fatal(err)
	}
	fl := &fakeLooker{states: map[flowKey]uint8{}}
	tr.looker.Store(&lookerRef{fl})
	tr.up.Store(true)
	t0 := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC).UnixNano()
	ms := int64(time.Millisecond)
	var got []Evidence
	for _, at := range []int64{0, 0, 0, 100 * ms, 499 * ms, 500 * ms, 600 * ms, 5000 * ms, 5000 * ms, 5000 * ms} {
		h := held{tuple: tup(t, "10.99.0.2", 1, "10.99.0.1", 22), ts: t0}
		ev, _, _ := tr.decide(&h, t0+at)
		got = append(got, ev)
	}
	n, s := EvidenceNone, EvidenceSkipped
	want := []Evidence{n, n, s, s, s, n, s, n, n, s}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("evidence sequence %v, want %v", got, want)
		}
	}
	if fl.calls != 5 {
		t.Errorf("%d lookups, want 5", fl.calls)
	}
	if tr.lookups[LookupNotFound].Load() != 5 {
		t.Errorf("not_found lookups %d, want 5", tr.lookups[LookupNotFound].Load())
	}
}

func TestObserveQueues(t *testing.T) {
	cfg := testConfig()
	cfg.QueueSize = 2
	tr, err := New(cfg, nopLogger())
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	clk := &fakeClock{t0}
	tr.now = clk.now
	p := pkt(tup(t, "10.99.0.2", 40000, "10.99.0.1", 443))

	tr.observe(5, p, t0.UnixNano()) // not started: skipped, not queued
	if n := tr.groups[tr.groupIndex(5)].evidence[EvidenceSkipped].Load(); n != 0 {
		t.Fatalf("skipped %d published before the datagram's Flush, want 0", n)
	}
	tr.flush(5)
	if n := tr.groups[tr.groupIndex(5)].evidence[EvidenceSkipped].Load(); n != 1 || len(tr.queue) != 0 {
		t.Fatalf("before Start: skipped %d queued %d, want 1 and 0", n, len(tr.queue))
	}
	tr.running.Store(true)
	tr.observe(5, p, t0.Add(-time.Second).UnixNano()) // batched in NFLOG for a second
	tr.observe(0, p, t0.Add(time.Hour).UnixNano())    // bogus future timestamp
	tr.observe(0, p, t0.UnixNano())                   // queue full
	tr.observe(7, p, t0.UnixNano())                   // not a configured group: ignored
	p.SrcPort = 9
	p.Src[0] = 99 // p is reused by the reader: the queue must hold a copy
	if len(tr.queue) != 2 {
		t.Fatalf("queued %d, want 2", len(tr.queue))
	}
	a, b := <-tr.queue, <-tr.queue
	if int(a.group) != tr.groupIndex(5) || a.ts != t0.Add(-time.Second).UnixNano() || a.deadline != t0.Add(time.Second).UnixNano() {
		t.Errorf("first: group %d ts %d deadline %d; want hold measured from the NFLOG timestamp", a.group, a.ts, a.deadline)
	}
	if a.tuple != tup(t, "10.99.0.2", 40000, "10.99.0.1", 443) {
		t.Errorf("queued tuple %+v changed with the reused packet", a.tuple)
	}
	// The reader does not read the clock; evidenceLoop caps the wait at one hold.
	if b.deadline != t0.Add(time.Hour+DefaultHold).UnixNano() {
		t.Errorf("future timestamp: deadline %v after now, want the timestamp plus the hold", time.Duration(b.deadline-t0.UnixNano()))
	}
	// Once the queue was full, the rest of the datagram is skipped without
	// looking, even though the queue has room again; Flush ends the datagram.
	tr.observe(0, p, t0.UnixNano())
	if len(tr.queue) != 0 {
		t.Fatalf("queued %d after the queue was found full in this datagram, want 0", len(tr.queue))
	}
	tr.flush(0)
	if n := tr.groups[tr.groupIndex(0)].evidence[EvidenceSkipped].Load(); n != 2 {
		t.Errorf("group 0 skipped %d, want 2 (queue full, then the rest of the datagram)", n)
	}
	tr.observe(0, p, t0.UnixNano())
	if len(tr.queue) != 1 {
		t.Errorf("queued %d in the next datagram, want 1", len(tr.queue))
	}
}

func TestObserveDoesNotAllocate(t *testing.T) {
	cfg := testConfig()
	cfg.QueueSize = 1
	tr, err := New(cfg, nopLogger())
	if err != nil {
		t.Fatal(err)
	}
	tr.running.Store(true)
	p := pkt(tup(t, "10.99.0.2", 40000, "10.99.0.1", 443))
	ts := time.Now()
	allocs := testing.AllocsPerRun(1000, func() {
		tr.observe(0, p, ts.UnixNano())
		tr.flush(0)
		select {
		case <-tr.queue:
		default:
		}
	})
	if allocs != 0 {
		t.Errorf("Observe allocates %v times per call, want 0", allocs)
	}
}

// TestEvidenceLoop runs the real hold-and-decide goroutine (real clock, short
// hold) with a fake looker: a DESTROY that arrives during the hold still
// turns the drop into destroyed, and each drop is decided exactly once.
func TestEvidenceLoop(t *testing.T) {
	cfg := testConfig()
	cfg.Hold = 200 * time.Millisecond
	tr, err := New(cfg, nopLogger())
	if err != nil {
		t.Fatal(err)
	}
	fl := &fakeLooker{states: map[flowKey]uint8{}}
	late := tup(t, "10.99.0.2", 40000, "10.99.0.1", 443)
	closing := tup(t, "10.99.0.2", 40001, "10.99.0.1", 443)
	scan := tup(t, "10.99.0.2", 40002, "10.99.0.1", 22)
	fl.states[closing.key()] = tcpLastAck
	tr.looker.Store(&lookerRef{fl})
	tr.up.Store(true)
	tr.startEvidence()
	defer tr.Stop()

	now := time.Now()
	tr.observe(0, pkt(late), now.UnixNano())
	tr.observe(0, pkt(closing), now.UnixNano())
	tr.observe(5, pkt(scan), now.UnixNano())
	tr.recordDestroy(&late, now.Add(20*time.Millisecond).UnixNano()) // DESTROY arrives during the hold

	want := map[classify.Group][NumEvidence]uint64{0: {1, 1, 0, 0, 0}, 5: {0, 0, 0, 1, 0}}
	deadline := time.Now().Add(5 * time.Second)
	for {
		done := true
		for g, w := range want {
			for e := Evidence(0); e < NumEvidence; e++ {
				if tr.groups[tr.groupIndex(g)].evidence[e].Load() != w[e] {
					done = false
				}
			}
		}
		if done {
			break
		}
		if time.Now().After(deadline) {
			for g := range want {
				t.Logf("group %d: %v", g, &tr.groups[tr.groupIndex(g)].evidence)
			}
			t.Fatal("evidence not decided as expected within 5s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if took := time.Since(now); took < cfg.Hold {
		t.Errorf("decided after %v, before the hold of %v", took, cfg.Hold)
	}
}

func TestLookupLimiter(t *testing.T) {
	t0 := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	l := newLimiter(10)
	n := 0
	for l.AllowN(t0, 1) {
		n++
	}
	if n != 10 {
		t.Fatalf("initial burst %d, want 10", n)
	}
	n = 0
	for l.AllowN(t0.Add(99*time.Second), 1) { // 99 s idle: refill stops at the burst
		n++
	}
	if n != 10 {
		t.Errorf("burst after idling %d, want 10", n)
	}
	if l := newLimiter(0); l.AllowN(t0, 1) || l.AllowN(t0.Add(time.Hour), 1) {
		t.Error("0 lookups per second allowed one")
	}
	if l := newLimiter(0.5); !l.AllowN(t0, 1) || l.AllowN(t0.Add(time.Second), 1) || !l.AllowN(t0.Add(2*time.Second), 1) {
		t.Error("0.5 per second: want a burst of 1, then one every 2 s")
	}
}

// BenchmarkLookupLimiter is the budget check decide makes before a lookup.
func BenchmarkLookupLimiter(b *testing.B) {
	l := newLimiter(DefaultLookupsPerSecond)
	now := time.Now().UnixNano()
	b.ReportAllocs()
	for b.Loop() {
		now += int64(time.Millisecond)
		l.AllowN(time.Unix(0, now), 1)
	}
}

func TestEvidenceNames(t *testing.T) {
	want := []string{"destroyed", "closing", "established", "none", "skipped"}
	for i, w := range want {
		if got := Evidence(i).String(); got != w {
			t.Errorf("Evidence(%d) = %q, want %q", i, got, w)
		}
	}
	if Evidence(NumEvidence).String() != "unknown" || len(want) != int(NumEvidence) {
		t.Error("evidence vocabulary changed")
	}
}

func TestHoldTick(t *testing.T) {
	for _, tc := range []struct{ hold, want time.Duration }{
		{0, 10 * time.Millisecond},
		{200 * time.Millisecond, 10 * time.Millisecond},
		{time.Second, 50 * time.Millisecond},
		{DefaultHold, 100 * time.Millisecond},
		{time.Minute, 100 * time.Millisecond},
	} {
		if got := holdTick(tc.hold); got != tc.want {
			t.Errorf("holdTick(%v) = %v, want %v", tc.hold, got, tc.want)
		}
	}
}
