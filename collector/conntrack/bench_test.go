package conntrack

import (
	"runtime"
	"testing"
	"time"
)

// BenchmarkObserve is the cost the NFLOG reader pays per teardown drop.
func BenchmarkObserve(b *testing.B) {
	cfg := testConfig()
	tr, err := New(cfg, nopLogger())
	if err != nil {
		b.Fatal(err)
	}
	tr.running.Store(true)
	p := pkt(tup(b, "10.99.0.2", 40000, "10.99.0.1", 443))
	ts := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		tr.observe(0, p, ts.UnixNano())
		<-tr.queue
	}
}

// BenchmarkHandleDestroy is the cost per conntrack DESTROY event once it is
// read from the socket: decode (ti-mo/conntrack) and remember, with the
// memory full at max-flows so every insert also evicts.
func BenchmarkHandleDestroy(b *testing.B) {
	cfg := testConfig()
	cfg.MaxFlows = DefaultMaxFlows
	tr, err := New(cfg, nopLogger())
	if err != nil {
		b.Fatal(err)
	}
	stop := time.Now()
	m := destroyMessage(b, 6, "10.99.0.2", 40000, "10.99.0.1", 443, stop)
	for i := 0; i < DefaultMaxFlows; i++ {
		tp := tup(b, "10.99.0.2", uint16(i), "10.99.0.1", 80)
		tr.recordDestroy(&tp, stop.UnixNano())
	}
	b.ReportAllocs()
	for b.Loop() {
		tr.handleMessage(uint16(m.Header.Type), m.Data)
	}
}

// BenchmarkDecideRemembered is the decision for a drop whose flow is
// remembered (no lookup).
func BenchmarkDecideRemembered(b *testing.B) {
	tr, err := New(testConfig(), nopLogger())
	if err != nil {
		b.Fatal(err)
	}
	tr.up.Store(true)
	tp := tup(b, "10.99.0.2", 40000, "10.99.0.1", 443)
	now := time.Now()
	tr.recordDestroy(&tp, now.UnixNano())
	h := held{tuple: tp, ts: now.UnixNano()}
	b.ReportAllocs()
	for b.Loop() {
		if ev, _, _ := tr.decide(&h, now.UnixNano()); ev != EvidenceDestroyed {
			b.Fatal(ev)
		}
	}
}

// BenchmarkMemoryAtMaxFlows reports the heap the flow memory holds when
// full at the default --conntrack.max-flows (B/entry), ring and index.
func BenchmarkMemoryAtMaxFlows(b *testing.B) {
	const n = DefaultMaxFlows
	keys := make([]flowKey, n)
	for i := range keys {
		tp := tup(b, "fd99::2", uint16(i), "fd99::1", uint16(443+i/65536))
		keys[i] = tp.key()
	}
	var perEntry float64
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		m := newFlowMemory(n, int64(time.Hour))
		for i, k := range keys {
			m.add(k, int64(i), int64(i))
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		if m.len() != n {
			b.Fatalf("len %d", m.len())
		}
		perEntry = float64(after.HeapAlloc-before.HeapAlloc) / n
		runtime.KeepAlive(m)
	}
	b.ReportMetric(perEntry, "B/entry")
	b.ReportMetric(perEntry*n/(1<<20), "MiB@65536")
}
