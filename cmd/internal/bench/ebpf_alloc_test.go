package bench

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop-lab/e2e"
	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop-lab/lab"
	"github.com/nfdrop/nfdrop_exporter/collector"
	"github.com/nfdrop/nfdrop_exporter/collector/classify"
	"github.com/nfdrop/nfdrop_exporter/collector/conntrack"
	"github.com/nfdrop/nfdrop_exporter/collector/ebpf"
	"github.com/nfdrop/nfdrop_exporter/collector/source"
	"github.com/nfdrop/nfdrop_exporter/collector/topsources"
)

// The eBPF source's per-drop path in Go, as the exporter runs it: the ring
// buffer's reader, the source adapter (collector/ebpf.Source) and the
// collector with the exporter's default parts that need no flag (top
// sources, conntrack evidence of the lab's server namespace), fed by a real
// flood into a chain whose policy drops.

// countingHandler passes everything to the collector and counts the packets.
type countingHandler struct {
	*collector.Collector
	n atomic.Uint64
}

func (h *countingHandler) Packet(m *source.Message) {
	h.Collector.Packet(m)
	h.n.Add(1)
}

// ebpfPipeline loads the program for a fresh lab whose server drops every
// packet by policy and starts the source feeding a collector; the returned
// handler counts what reached the collector.
func ebpfPipeline(t testing.TB, tag string) (*lab.Lab, *ebpf.Program, *countingHandler) {
	t.Helper()
	e2e.Require(t, "ip", "iptables", "ip6tables")
	l, err := lab.New(fmt.Sprintf("nfb%d%s", os.Getpid()%100000, tag))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	for _, tool := range []string{"iptables", "ip6tables"} {
		if out, err := l.Run(l.Server, tool, "-w", "-P", "INPUT", "DROP"); err != nil {
			t.Fatalf("%s: %v %s", tool, err, out)
		}
	}
	netns := filepath.Join(lab.NetnsDir, l.Server)
	prog, err := ebpf.Load(ebpf.Config{Netns: netns, RingSize: 16 << 20})
	if err != nil {
		t.Fatal(err)
	}
	ns, err := os.Open(netns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Close() })
	coll, err := collector.New(collector.Config{
		Groups: []classify.Group{classify.GroupEBPF}, MaxPrefixes: classify.DefaultMaxPrefixes,
		SourcesCapacity: topsources.DefaultCapacity, EBPF: prog,
		Conntrack: &conntrack.Config{Window: conntrack.DefaultWindow, Hold: conntrack.DefaultHold, MaxFlows: conntrack.DefaultMaxFlows,
			LookupsPerSecond: conntrack.DefaultLookupsPerSecond, QueueSize: conntrack.DefaultQueueSize,
			ReceiveBuffer: conntrack.DefaultReceiveBuffer, NetNS: int(ns.Fd())},
	}, slog.New(slog.DiscardHandler))
	if err != nil {
		prog.Close()
		t.Fatal(err)
	}
	src := ebpf.NewSource(prog)
	h := &countingHandler{Collector: coll}
	if err := src.Open(h); err != nil {
		t.Fatal(err)
	}
	coll.Start()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, h) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
		coll.Stop()
		src.Close()
	})
	return l, prog, h
}

// floodLab sends n frames of the bench's teardown mix from the lab's client.
func floodLab(l *lab.Lab, n uint64, rate float64) error {
	pool, err := lab.BuildPool(lab.MixTeardown, lab.PoolSize, 3)
	if err != nil {
		return err
	}
	return lab.InNetns(l.Client, func() error {
		_, err := lab.Flood(lab.ClientIf, pool, n, rate, time.Minute, nil)
		return err
	})
}

// waitRead waits until the program's drops are all read or lost.
func waitRead(t testing.TB, prog *ebpf.Program, want uint64) ebpf.Counts {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := prog.Counts()
		if err != nil {
			t.Fatal(err)
		}
		if c.Matched >= want && c.Read+c.Lost == c.Matched {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("counts %+v after 30s, want %d drops read or lost", c, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestEBPFSourceAllocs counts the process's heap allocations while 30000
// drops of a flood go through the ring buffer, the source adapter and the
// collector: nothing per drop (what remains is the Go runtime's own and the
// conntrack tracker's timers, if anything).
func TestEBPFSourceAllocs(t *testing.T) {
	const total, from, to = 40000, 4000, 34000
	l, prog, h := ebpfPipeline(t, "a")
	flood := make(chan error, 1)
	go func() { flood <- floodLab(l, total, 20000) }()
	wait := func(n uint64) {
		deadline := time.Now().Add(30 * time.Second)
		for h.n.Load() < n {
			if time.Now().After(deadline) {
				t.Fatalf("only %d drops reached the collector in 30s", h.n.Load())
			}
			time.Sleep(time.Millisecond)
		}
	}
	var m1, m2 runtime.MemStats
	wait(from)
	n1 := h.n.Load()
	runtime.ReadMemStats(&m1)
	wait(to)
	runtime.ReadMemStats(&m2)
	n2 := h.n.Load()
	if err := <-flood; err != nil {
		t.Fatal(err)
	}
	c := waitRead(t, prog, total)
	allocs := m2.Mallocs - m1.Mallocs
	t.Logf("%d heap allocations in the process while %d drops went through the source and the collector (%.5f per drop); counts %+v",
		allocs, n2-n1, float64(allocs)/float64(n2-n1), c)
	if c.Read+c.Lost != total || h.n.Load() != c.Read {
		t.Errorf("counts %+v, %d reached the collector; want %d read or lost", c, h.n.Load(), total)
	}
	if allocs > 100 {
		t.Errorf("%d allocations for %d drops", allocs, n2-n1)
	}
}

// BenchmarkEBPFSource sends b.N drops through the ring buffer, the source
// adapter and the collector; allocs/op is the whole process's per drop
// (the flood's setup included, once per run):
//
//	NFDROP_E2E=1 go test -run '^$' -bench EBPFSource -benchmem -benchtime 200000x ./cmd/internal/bench/
func BenchmarkEBPFSource(b *testing.B) {
	l, prog, _ := ebpfPipeline(b, "b")
	b.ReportAllocs()
	b.ResetTimer()
	if err := floodLab(l, uint64(b.N), 0); err != nil {
		b.Fatal(err)
	}
	c := waitRead(b, prog, uint64(b.N))
	b.StopTimer()
	b.ReportMetric(float64(c.Lost)/float64(b.N), "lost/op")
}
