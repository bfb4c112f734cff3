//go:build linux

package conntrack

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mdlayher/netlink"
	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop-lab/e2e"
	"github.com/nfdrop/nfdrop_exporter/collector/classify"
	"github.com/ti-mo/conntrack"
)

// The kernel tests subscribe for real, in a network namespace of their own
// (nfdF-*), so the host's conntrack table and firewall are never touched.
// They need root and skip otherwise.

// kernelNetns is a namespace of the test (e2e.NewNetns) whose conntrack
// tracks connections.
func kernelNetns(t testing.TB, tag string) *e2e.Netns {
	t.Helper()
	e2e.Require(t, "ip", "iptables", "sysctl", "conntrack")
	n := e2e.NewNetns(t, "F-"+tag)
	// Conntrack only tracks a namespace once a rule uses it.
	n.Exec("iptables", "-A", "OUTPUT", "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT")
	return n
}

func startKernelTracker(t testing.TB, n *e2e.Netns, mod func(*Config), withLooker ...bool) *Tracker {
	t.Helper()
	cfg := Config{Groups: []classify.Group{0}, Window: DefaultWindow, Hold: 300 * time.Millisecond, MaxFlows: 1024,
		LookupsPerSecond: 1000, QueueSize: 64, ReceiveBuffer: DefaultReceiveBuffer, NetNS: n.FD(), SysctlDir: t.TempDir()}
	if mod != nil {
		mod(&cfg)
	}
	tr, err := New(cfg, nopLogger())
	if err != nil {
		t.Fatal(err)
	}
	tr.Start()
	t.Cleanup(tr.Stop)
	looker := len(withLooker) == 0 || withLooker[0]
	e2e.WaitFor(t, 5*time.Second, "conntrack subscription", func() bool { return tr.up.Load() && (!looker || tr.looker.Load() != nil) })
	return tr
}

// TestKernelRealConnection: a real TCP connection over loopback ends; the
// real lookup finds its closing entry from either direction; deleting the
// entry produces a DESTROY the tracker remembers; a late packet of that flow
// gets destroyed, a packet of a flow that never existed gets none.
func TestKernelRealConnection(t *testing.T) {
	n := kernelNetns(t, "ct")
	n.Exec("sysctl", "-qw", "net.netfilter.nf_conntrack_timestamp=1")
	tr := startKernelTracker(t, n, nil)

	var cli, srv net.Conn
	n.Do(func() {
		ln, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		if cli, err = net.Dial("tcp4", ln.Addr().String()); err != nil {
			t.Fatal(err)
		}
		if srv, err = ln.Accept(); err != nil {
			t.Fatal(err)
		}
	})
	if _, err := cli.Write([]byte("GET / HTTP/1.1\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(srv, make([]byte, 18)); err != nil {
		t.Fatal(err)
	}
	// Client closes first; the server reads EOF and closes: the entry goes
	// through FIN_WAIT/CLOSE_WAIT/LAST_ACK to TIME_WAIT.
	cliAddr := netip.MustParseAddrPort(cli.LocalAddr().String())
	srvAddr := netip.MustParseAddrPort(srv.LocalAddr().String())
	cli.Close()
	if _, err := srv.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("server read after client close: %v, want EOF", err)
	}
	srv.Close()
	fwd := tup(t, cliAddr.Addr().String(), cliAddr.Port(), srvAddr.Addr().String(), srvAddr.Port())
	rev := tup(t, srvAddr.Addr().String(), srvAddr.Port(), cliAddr.Addr().String(), cliAddr.Port())

	looker := tr.looker.Load()
	var state uint8
	e2e.WaitFor(t, 2*time.Second, "the entry to reach TIME_WAIT", func() bool {
		s, found, err := looker.Lookup(&fwd)
		state = s
		return err == nil && found && s == tcpTimeWait
	})
	if s, found, err := looker.Lookup(&rev); err != nil || !found || s != state {
		t.Fatalf("lookup of the reply direction: state %d found %v err %v; want %d", s, found, err, state)
	}
	if ev := evidenceForState(state); ev != EvidenceClosing {
		t.Errorf("TIME_WAIT gives %v, want closing", ev)
	}
	unknown := tup(t, "127.0.0.1", 1, "127.0.0.1", 2)
	if _, found, err := looker.Lookup(&unknown); err != nil || found {
		t.Fatalf("lookup of a flow that never existed: found %v err %v", found, err)
	}

	before := time.Now()
	n.Exec("conntrack", "-D", "-p", "tcp", "--sport", fmt.Sprint(cliAddr.Port()))
	e2e.WaitFor(t, 5*time.Second, "the DESTROY event", func() bool {
		tr.mu.Lock()
		defer tr.mu.Unlock()
		_, ok := tr.mem.lookup(rev.key())
		return ok
	})
	tr.mu.Lock()
	ended, _ := tr.mem.lookup(fwd.key())
	tr.mu.Unlock()
	if e := time.Unix(0, ended); e.Before(before.Add(-time.Second)) || e.After(time.Now()) {
		t.Errorf("DESTROY time %v not between the delete (%v) and now", e, before)
	}
	if d := tr.destroys.Load(); d != 1 {
		t.Errorf("%d DESTROY events, want 1", d)
	}

	late := time.Now()
	tr.observe(0, pkt(rev), late.UnixNano()) // the server's late packet, as the other direction
	tr.observe(0, pkt(unknown), late.UnixNano())
	ev := &tr.groups[0].evidence
	e2e.WaitFor(t, 5*time.Second, "evidence", func() bool { return ev[EvidenceDestroyed].Load()+ev[EvidenceNone].Load() == 2 })
	if ev[EvidenceDestroyed].Load() != 1 || ev[EvidenceNone].Load() != 1 {
		t.Errorf("evidence destroyed %d none %d, want 1 and 1", ev[EvidenceDestroyed].Load(), ev[EvidenceNone].Load())
	}
	if lost := tr.lostBase.Load() + tr.undecodable.Load() + tr.sock.drops(); lost != 0 {
		t.Errorf("%d events lost, want 0", lost)
	}
}

// createFlows inserts n TCP entries through ctnetlink in the namespace.
func createFlows(t testing.TB, n *e2e.Netns, first, count int) {
	t.Helper()
	c, err := conntrack.Dial(&netlink.Config{NetNS: n.FD()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	src, dst := netip.MustParseAddr("10.98.0.2"), netip.MustParseAddr("10.98.0.1")
	for i := first; i < first+count; i++ {
		f := conntrack.NewFlow(6, 0, src, dst, uint16(1024+i%60000), uint16(443+i/60000), 120, 0)
		f.ProtoInfo.TCP = &conntrack.ProtoInfoTCP{State: tcpEstablished}
		if err := c.Create(f); err != nil {
			t.Fatalf("create flow %d: %v", i, err)
		}
	}
}

// TestKernelEventLossSurvived floods DESTROY events into a tiny receive
// buffer: the kernel drops most of them, the tracker counts exactly the ones
// it lost (received + lost = destroyed) and keeps receiving afterwards.
func TestKernelEventLossSurvived(t *testing.T) {
	n := kernelNetns(t, "loss")
	tr := startKernelTracker(t, n, func(c *Config) { c.ReceiveBuffer = 1 }) // the kernel's minimum
	const flows = 5000
	createFlows(t, n, 0, flows)
	n.Exec("conntrack", "-F")
	lost := func() uint64 { return tr.lostBase.Load() + tr.undecodable.Load() + tr.sock.drops() }
	e2e.WaitFor(t, 10*time.Second, "received + lost DESTROY events to add up", func() bool { return tr.destroys.Load()+lost() >= flows })
	if got := tr.destroys.Load() + lost(); got != flows {
		t.Errorf("received %d + lost %d = %d, want %d", tr.destroys.Load(), lost(), got, flows)
	}
	if lost() == 0 {
		t.Fatalf("no event lost with a minimal buffer and %d events: the test did not provoke loss", flows)
	}
	t.Logf("%d DESTROY events: %d received, %d lost (counted)", flows, tr.destroys.Load(), lost())

	// Still subscribed: one more flow ends and is seen.
	before := tr.destroys.Load()
	createFlows(t, n, flows, 1)
	n.Exec("conntrack", "-F")
	e2e.WaitFor(t, 5*time.Second, "a DESTROY after the loss", func() bool { return tr.destroys.Load() == before+1 })
	if !tr.up.Load() {
		t.Error("nfdrop_conntrack_up 0 after the loss")
	}
}

// BenchmarkKernelLookup is one real ctnetlink GET (the per-lookup cost),
// for a present and an absent entry.
func BenchmarkKernelLookup(b *testing.B) {
	n := kernelNetns(b, "bl")
	createFlows(b, n, 0, 1)
	l, closeLooker, err := NewKernelLooker(n.FD())
	if err != nil {
		b.Fatal(err)
	}
	defer closeLooker()
	for _, bc := range []struct {
		name  string
		tp    Tuple
		found bool
	}{
		{"found", tup(b, "10.98.0.1", 443, "10.98.0.2", 1024), true},
		{"not_found", tup(b, "10.98.0.1", 443, "10.98.0.2", 1), false},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, found, err := l.Lookup(&bc.tp); err != nil || found != bc.found {
					b.Fatalf("found %v err %v", found, err)
				}
			}
		})
	}
}

// BenchmarkKernelEvents is the end-to-end cost per DESTROY event: the
// kernel's netlink delivery, receive, decode and remember (flush of b.N
// entries created beforehand, timed until the last event is handled).
func BenchmarkKernelEvents(b *testing.B) {
	n := kernelNetns(b, "be")
	tr := startKernelTracker(b, n, func(c *Config) { c.ReceiveBuffer = 64 << 20 })
	const batch = 20000
	b.ReportAllocs()
	done := 0
	for done < b.N {
		k := min(batch, b.N-done)
		b.StopTimer()
		createFlows(b, n, 0, k)
		want := tr.destroys.Load() + uint64(k)
		b.StartTimer()
		n.Exec("conntrack", "-F")
		e2e.WaitFor(b, 30*time.Second, "DESTROY events", func() bool {
			return tr.destroys.Load()+tr.sock.drops()+tr.lostBase.Load() >= want
		})
		done += k
	}
	b.StopTimer()
	if lost := tr.sock.drops() + tr.lostBase.Load(); lost != 0 {
		b.Logf("%d events lost", lost)
	}
}

// TestKernelResubscribe: when the event socket fails (here: closed under
// the tracker), the tracker reports down, subscribes again and goes on
// receiving.
func TestKernelResubscribe(t *testing.T) {
	n := kernelNetns(t, "re")
	tr := startKernelTracker(t, n, nil)
	tr.sock.mu.Lock()
	first := tr.sock.s
	_ = first.Close()
	tr.sock.mu.Unlock()
	e2e.WaitFor(t, 5*time.Second, "a new subscription", func() bool {
		tr.sock.mu.Lock()
		defer tr.sock.mu.Unlock()
		return tr.sock.s != nil && tr.sock.s != first && tr.up.Load()
	})
	createFlows(t, n, 0, 1)
	n.Exec("conntrack", "-F")
	e2e.WaitFor(t, 5*time.Second, "a DESTROY on the new subscription", func() bool { return tr.destroys.Load() == 1 })
}

// TestKernelLookupBothFamilies: the hand-built ctnetlink GET finds entries
// the library created, IPv4 and IPv6, from either direction, with their TCP
// state; a tuple with no entry is not found; and a lookup allocates nothing.
func TestKernelLookupBothFamilies(t *testing.T) {
	n := kernelNetns(t, "lk")
	c, err := conntrack.Dial(&netlink.Config{NetNS: n.FD()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	l, closeLooker, err := NewKernelLooker(n.FD())
	if err != nil {
		t.Fatal(err)
	}
	defer closeLooker()
	for _, tc := range []struct {
		cli, srv string
		state    uint8
	}{
		{"10.97.0.2", "10.97.0.1", tcpEstablished},
		{"10.97.0.3", "10.97.0.1", tcpTimeWait},
		{"2001:db8::2", "2001:db8::1", tcpCloseWait},
		{"2001:db8::3", "2001:db8::1", tcpFinWait},
	} {
		f := conntrack.NewFlow(6, 0, netip.MustParseAddr(tc.cli), netip.MustParseAddr(tc.srv), 40000, 443, 120, 0)
		f.ProtoInfo.TCP = &conntrack.ProtoInfoTCP{State: tc.state}
		if err := c.Create(f); err != nil {
			t.Fatalf("create %s -> %s: %v", tc.cli, tc.srv, err)
		}
		for _, tp := range []Tuple{tup(t, tc.cli, 40000, tc.srv, 443), tup(t, tc.srv, 443, tc.cli, 40000)} {
			if s, found, err := l.Lookup(&tp); err != nil || !found || s != tc.state {
				t.Errorf("lookup %+v: state %d found %v err %v; want %d", tp, s, found, err, tc.state)
			}
		}
		absent := tup(t, tc.cli, 40001, tc.srv, 443)
		if _, found, err := l.Lookup(&absent); err != nil || found {
			t.Errorf("lookup of %s:40001 -> %s:443, which has no entry: found %v err %v", tc.cli, tc.srv, found, err)
		}
	}
	tp := tup(t, "2001:db8::2", 40000, "2001:db8::1", 443)
	if n := testing.AllocsPerRun(100, func() { _, _, _ = l.Lookup(&tp) }); n != 0 {
		t.Errorf("a lookup allocates %v times, want 0", n)
	}
}

// recordedEvents is the committed recording of a real kernel's DESTROY
// events that TestReplayRecordedEvents replays; TestKernelRecordEvents
// makes it again with NFDROP_UPDATE_TESTDATA=1.
const recordedEvents = "testdata/conntrack-destroy.pcap"

// TestKernelRecordEvents records the DESTROY events of three TCP flows
// (10.98.0.2:1024-1026 -> 10.98.0.1:443) flushed from a real conntrack table
// with kernel timestamps, and checks that the recording replays to the same
// remembered flows.
func TestKernelRecordEvents(t *testing.T) {
	n := kernelNetns(t, "rec")
	n.Exec("sysctl", "-qw", "net.netfilter.nf_conntrack_timestamp=1")
	path := filepath.Join(t.TempDir(), "events.pcap")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	tr := startKernelTracker(t, n, func(c *Config) {
		c.Events = func() (Events, error) {
			s, err := dialEventSocket(n.FD(), DefaultReceiveBuffer)
			if err != nil {
				return nil, err
			}
			return RecordEvents(s, f)
		}
		c.SysctlDir = t.TempDir()
	}, false)
	createFlows(t, n, 0, 3)
	n.Exec("conntrack", "-F")
	e2e.WaitFor(t, 5*time.Second, "3 DESTROY events", func() bool { return tr.destroys.Load() == 3 })
	tr.Stop()
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	re := replayTracker(t, path)
	for i := 0; i < 3; i++ {
		tp := recordedTuple(t, i)
		want, ok := tr.mem.lookup(tp.key())
		got, ok2 := re.mem.lookup(tp.key())
		if !ok || !ok2 || got != want {
			t.Errorf("flow %d: live ended %d (%v), replayed %d (%v)", i, want, ok, got, ok2)
		}
	}
	if os.Getenv("NFDROP_UPDATE_TESTDATA") == "1" && !t.Failed() {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(recordedEvents, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
