package ebpf

// Floods of crafted frames (the lab's bench generator) into a lab whose
// INPUT policy drops: the allocations of the read path, and the BPF
// program's own cost per drop.

import (
	"context"
	"os"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop-lab/e2e"
	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop-lab/lab"
	"golang.org/x/sys/unix"
)

// startFlood sends n frames of the bench's teardown mix from the lab's client
// (rate frames per second, 0: as fast as it goes) and returns at once; the
// channel gets the result.
func startFlood(t testing.TB, l *lab.Lab, n uint64, rate float64) <-chan error {
	t.Helper()
	pool, err := lab.BuildPool(lab.MixTeardown, lab.PoolSize, 1)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		done <- lab.InNetns(l.Client, func() error {
			_, err := lab.Flood(lab.ClientIf, pool, n, rate, time.Minute, nil)
			return err
		})
	}()
	return done
}

// TestE2EReadAllocs counts the heap allocations of the whole process while
// Read hands over 30000 records of a real flood: the read path allocates
// nothing per record (what remains is the Go runtime's own, if anything).
func TestE2EReadAllocs(t *testing.T) {
	e2e.Require(t, "ip", "iptables", "ip6tables")
	const total, from, to = 40000, 2000, 32000
	l := newLab(t, "m")
	setPolicy(t, l, "DROP")
	p := loadFor(t, l, Config{RingSize: 16 << 20})
	var n atomic.Uint64
	var sink byte
	atFrom, atTo := make(chan struct{}), make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	read := make(chan error, 1)
	go func() {
		read <- p.Read(ctx, func(r *Record) {
			sink ^= r.Payload[0] // touch the record as a consumer would
			switch n.Add(1) {
			case from:
				close(atFrom)
			case to:
				close(atTo)
			}
		})
	}()
	flood := startFlood(t, l, total, 20000)
	var m1, m2 runtime.MemStats
	timeout := time.After(30 * time.Second) // made here: a timer allocates
	wait := func(ch <-chan struct{}) {
		select {
		case <-ch:
		case <-timeout:
			t.Fatalf("only %d records read in 30s", n.Load())
		}
	}
	wait(atFrom)
	runtime.ReadMemStats(&m1)
	wait(atTo)
	runtime.ReadMemStats(&m2)
	if err := <-flood; err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-read; err != nil {
		t.Fatal(err)
	}
	allocs := m2.Mallocs - m1.Mallocs
	t.Logf("%d heap allocations in the process while %d records were read (%.5f per record)", allocs, to-from, float64(allocs)/float64(to-from))
	// One allocation per record would be 30000; the Go runtime itself
	// allocates now and then (seen: 0 or 1 in most runs, once 7).
	if allocs > 30 {
		t.Errorf("%d allocations while %d records were read", allocs, to-from)
	}
	_ = sink
}

// BenchmarkReadFlood reads b.N records of a real flood. Run it with
// -benchmem (allocs/op is 0: Load, the lab and the flood's setup allocate
// before the timer starts or once per run) and a fixed count, e.g.
//
//	NFDROP_E2E=1 go test -run '^$' -bench ReadFlood -benchmem -benchtime 200000x ./collector/ebpf/
//
// lost/op is the share of drops the ring had no room for.
func BenchmarkReadFlood(b *testing.B) {
	e2e.Require(b, "ip", "iptables", "ip6tables")
	l := newLab(b, "f")
	setPolicy(b, l, "DROP")
	p := loadFor(b, l, Config{RingSize: 64 << 20})
	pool, err := lab.BuildPool(lab.MixTeardown, lab.PoolSize, 1)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var sink byte
	read := make(chan error, 1)
	go func() { read <- p.Read(ctx, func(r *Record) { sink ^= r.Payload[0] }) }()
	b.ReportAllocs()
	b.ResetTimer()
	if err := lab.InNetns(l.Client, func() error {
		_, err := lab.Flood(lab.ClientIf, pool, uint64(b.N), 0, time.Minute, nil)
		return err
	}); err != nil {
		b.Fatal(err)
	}
	c := waitDrained(b, p, func() uint64 { return uint64(b.N) })
	b.StopTimer()
	b.ReportMetric(float64(c.Lost)/float64(b.N), "lost/op")
	_ = sink
}

// BenchmarkBPFCost measures the BPF program's own run time per call while a
// flood of b.N drops runs: it turns on the kernel's BPF run-time statistics
// (BPF_ENABLE_STATS, the same switch as the sysctl kernel.bpf_stats_enabled,
// for as long as a file descriptor is open) only for the flood, and checks
// that the switch is back where it was. "watched" floods the namespace the
// program watches (every drop takes the whole path: a record), "other_netns"
// another one (every drop ends at the namespace check). It is a measurement
// for a quiet machine, not a test; the figures include the program's runs
// for every packet freed anywhere on the host meanwhile.
//
//	NFDROP_E2E=1 go test -run '^$' -bench BPFCost -benchtime 500000x ./collector/ebpf/
func BenchmarkBPFCost(b *testing.B) {
	e2e.Require(b, "ip", "iptables", "ip6tables")
	for _, watched := range []bool{true, false} {
		name := "watched"
		if !watched {
			name = "other_netns"
		}
		b.Run(name, func(b *testing.B) { benchBPFCost(b, watched) })
	}
}

func benchBPFCost(b *testing.B, watched bool) {
	l := newLab(b, "k")
	setPolicy(b, l, "DROP")
	watch := l
	if !watched {
		watch = newLab(b, "w")
	}
	p := loadFor(b, watch, Config{RingSize: 64 << 20})
	pool, err := lab.BuildPool(lab.MixTeardown, lab.PoolSize, 1)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go p.Read(ctx, func(*Record) {})

	const sysctl = "/proc/sys/kernel/bpf_stats_enabled"
	before, err := os.ReadFile(sysctl)
	if err != nil {
		b.Fatal(err)
	}
	stats, err := ebpf.EnableStats(unix.BPF_STATS_RUN_TIME)
	if err != nil {
		b.Fatal(err)
	}
	s0, err := p.objs.KfreeSkb.Stats()
	if err != nil {
		stats.Close()
		b.Fatal(err)
	}
	b.ResetTimer()
	ferr := lab.InNetns(l.Client, func() error {
		_, err := lab.Flood(lab.ClientIf, pool, uint64(b.N), 0, time.Minute, nil)
		return err
	})
	dropped := func() uint64 { v4, v6 := policyDrops(b, l); return v4 + v6 }
	if watched {
		waitDrained(b, p, dropped)
	} else {
		deadline := time.Now().Add(20 * time.Second)
		for dropped() != uint64(b.N) && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
	}
	s1, serr := p.objs.KfreeSkb.Stats()
	b.StopTimer()
	if err := stats.Close(); err != nil {
		b.Fatal(err)
	}
	after, err := os.ReadFile(sysctl)
	if err != nil {
		b.Fatal(err)
	}
	if string(after) != string(before) {
		b.Fatalf("%s is %q after the measurement, was %q", sysctl, after, before)
	}
	if ferr != nil || serr != nil {
		b.Fatal(ferr, serr)
	}
	c, err := p.Counts()
	if err != nil {
		b.Fatal(err)
	}
	if want := map[bool]uint64{true: uint64(b.N), false: 0}[watched]; c.Matched != want || dropped() != uint64(b.N) {
		b.Fatalf("matched %d (want %d), policy drops %d of %d sent", c.Matched, want, dropped(), b.N)
	}
	runs := s1.RunCount - s0.RunCount
	if runs < uint64(b.N) {
		b.Fatalf("the program ran %d times for %d drops", runs, b.N)
	}
	b.ReportMetric(float64(s1.Runtime-s0.Runtime)/float64(runs), "bpf-ns/run")
	b.ReportMetric(float64(runs)/float64(b.N), "runs/drop")
}
