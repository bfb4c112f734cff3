package ebpf

// End-to-end tests against the running kernel: the program watches the
// server namespace of a lab (cmd/nfdrop-lab/lab) whose INPUT policy drops,
// with no log rule anywhere, and what it reports is held to the kernel's own
// policy counters. They run with NFDROP_E2E=1 as root, like every other
// end-to-end test of the project.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop-lab/e2e"
	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop-lab/lab"
	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop-lab/lab/craft"
	"github.com/nfdrop/nfdrop_exporter/collector/packet"
	"golang.org/x/sys/unix"
)

// helperEnv makes the test binary, run by a test as a child under setpriv or
// in another mount namespace, load the program once and print the outcome.
const helperEnv = "NFDROP_EBPF_LOAD_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "1" {
		loadHelper()
		return
	}
	os.Exit(m.Run())
}

// loadHelper prints "loaded", or the kind of error and its text.
func loadHelper() {
	p, err := Load(Config{})
	switch {
	case err == nil:
		p.Close()
		fmt.Println("loaded")
	case errors.Is(err, ErrNoBTF):
		fmt.Println("ErrNoBTF:", err)
	case errors.Is(err, ErrKernelTooOld):
		fmt.Println("ErrKernelTooOld:", err)
	case errors.Is(err, ErrPermission):
		fmt.Println("ErrPermission:", err)
	default:
		fmt.Println("other:", err)
	}
	os.Exit(0)
}

// newLab creates a lab namespace pair whose names carry the nfe prefix and
// the PID; the test's cleanup removes it.
func newLab(t testing.TB, tag string) *lab.Lab {
	t.Helper()
	l, err := lab.New(fmt.Sprintf("nfe%d%s", os.Getpid(), tag))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Error(err)
		}
	})
	return l
}

func mustRun(t testing.TB, l *lab.Lab, ns, name string, args ...string) string {
	t.Helper()
	out, err := l.Run(ns, name, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// setPolicy sets the INPUT policy of both families in the lab's server.
func setPolicy(t testing.TB, l *lab.Lab, policy string) {
	t.Helper()
	mustRun(t, l, l.Server, "iptables", "-w", "-P", "INPUT", policy)
	mustRun(t, l, l.Server, "ip6tables", "-w", "-P", "INPUT", policy)
}

// policyDrops returns the INPUT policy counters of the lab's server.
func policyDrops(t testing.TB, l *lab.Lab) (v4, v6 uint64) {
	t.Helper()
	var err error
	if v4, err = policyCounter(l, l.Server, "iptables", "INPUT"); err != nil {
		t.Fatal(err)
	}
	if v6, err = policyCounter(l, l.Server, "ip6tables", "INPUT"); err != nil {
		t.Fatal(err)
	}
	return v4, v6
}

// loadFor loads the program watching the lab's server namespace.
func loadFor(t testing.TB, l *lab.Lab, cfg Config) *Program {
	t.Helper()
	cfg.Netns = filepath.Join(lab.NetnsDir, l.Server)
	p, err := Load(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Error(err)
		}
	})
	return p
}

// serverIfindex is the index of the server's veth in its namespace.
func serverIfindex(t testing.TB, l *lab.Lab) uint32 {
	t.Helper()
	var idx int
	if err := lab.InNetns(l.Server, func() error {
		ifi, err := net.InterfaceByName(lab.ServerIf)
		if err == nil {
			idx = ifi.Index
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return uint32(idx)
}

// seen is a record kept by a test: its fields, a copy of its payload and the
// payload decoded by collector/packet.
type seen struct {
	Record
	pkt packet.Packet
}

// collector runs Read and keeps every record.
type collector struct {
	mu     sync.Mutex
	recs   []seen
	cancel context.CancelFunc
	done   chan error
}

func startReading(t testing.TB, p *Program) *collector {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	c := &collector{cancel: cancel, done: make(chan error, 1)}
	go func() {
		c.done <- p.Read(ctx, func(r *Record) {
			s := seen{Record: *r}
			s.Payload = slices.Clone(r.Payload)
			packet.Decode(s.Payload, s.Family, &s.pkt)
			c.mu.Lock()
			c.recs = append(c.recs, s)
			c.mu.Unlock()
		})
	}()
	t.Cleanup(func() { c.stop(t) })
	return c
}

// stop ends Read and checks that it returned nil.
func (c *collector) stop(t testing.TB) {
	t.Helper()
	c.cancel()
	select {
	case err, ok := <-c.done:
		if ok && err != nil {
			t.Errorf("Read: %v", err)
		}
		if ok {
			close(c.done)
		}
	case <-time.After(5 * time.Second):
		t.Error("Read did not return within 5s of its context's cancellation")
	}
}

func (c *collector) records() []seen {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.recs)
}

// waitDrained waits until the program kept want drops and every one of them
// was read or counted lost, and then checks that nothing more comes.
func waitDrained(t testing.TB, p *Program, want func() uint64) Counts {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := p.Counts()
		if err != nil {
			t.Fatal(err)
		}
		w := want()
		if c.Matched == w && c.Read+c.Lost == c.Matched {
			time.Sleep(200 * time.Millisecond)
			again, err := p.Counts()
			if err != nil {
				t.Fatal(err)
			}
			if again != c || want() != w {
				t.Fatalf("counts moved after they settled: %+v then %+v (policy %d then %d)", c, again, w, want())
			}
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("not drained within 20s: %+v, policy counters %d", c, w)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// clientSender opens a crafter on the lab's client veth.
func clientSender(t testing.TB, l *lab.Lab) *craft.Sender {
	t.Helper()
	var snd *craft.Sender
	if err := lab.InNetns(l.Client, func() error {
		var err error
		snd, err = craft.NewSender(lab.ClientIf, lab.ServerMAC)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { snd.Close() })
	return snd
}

func addrs(v6 bool) (src, dst netip.Addr) {
	if v6 {
		return lab.ClientIPv6, lab.ServerIPv6
	}
	return lab.ClientIPv4, lab.ServerIPv4
}

func syn(v6 bool, sport, dport uint16, seq uint32) craft.Packet {
	src, dst := addrs(v6)
	return craft.Packet{Src: src, Dst: dst, Proto: craft.ProtoTCP, SrcPort: sport, DstPort: dport, Flags: craft.SYN, Window: 64240, Seq: seq}
}

// finAck is a late FIN/ACK of a connection conntrack never saw: with
// nf_conntrack_tcp_loose=0 it is invalid.
func finAck(v6 bool, sport, dport uint16) craft.Packet {
	p := syn(v6, sport, dport, 1)
	p.Flags, p.Ack = craft.FIN|craft.ACK, 5
	return p
}

// nmapScan runs a SYN scan of ports first..last of the lab's server from its
// client: one probe per port, no host discovery.
func nmapScan(l *lab.Lab, v6 bool, first, last int) error {
	_, dst := addrs(v6)
	args := []string{"-n", "-Pn", "-sS", "--max-retries", "0", "-T4", "--host-timeout", "60s",
		"-p", fmt.Sprintf("%d-%d", first, last), dst.String()}
	if v6 {
		args = append([]string{"-6"}, args...)
	}
	_, err := l.Run(l.Client, "nmap", args...)
	return err
}

// TestE2EPolicyDrops: an nmap SYN scan over IPv4 and IPv6 into a namespace
// whose INPUT policy drops, with no log rule: records read + lost equal the
// policy counters exactly, every record decodes to what nmap sent, and the
// same scan into another namespace at the same time is not seen.
func TestE2EPolicyDrops(t *testing.T) {
	e2e.Require(t, "ip", "iptables", "ip6tables", "nmap")
	const ports = 200
	a, b := newLab(t, "a"), newLab(t, "b")
	for _, l := range []*lab.Lab{a, b} {
		setPolicy(t, l, "DROP")
		// nmap resolves the server's MAC itself for IPv6, with a neighbour
		// solicitation that the policy would drop.
		for _, typ := range []string{"neighbour-solicitation", "neighbour-advertisement"} {
			mustRun(t, l, l.Server, "ip6tables", "-w", "-A", "INPUT", "-p", "icmpv6", "--icmpv6-type", typ, "-j", "ACCEPT")
		}
	}
	p := loadFor(t, a, Config{})
	col := startReading(t, p)
	ifindex := serverIfindex(t, a)

	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for _, v6 := range []bool{false, true} {
		wg.Add(2)
		go func() { defer wg.Done(); errs <- nmapScan(a, v6, 1, ports) }()
		// The other lab is scanned on other ports at the same time.
		go func() { defer wg.Done(); errs <- nmapScan(b, v6, 20001, 20000+ports) }()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	c := waitDrained(t, p, func() uint64 { v4, v6 := policyDrops(t, a); return v4 + v6 })
	end := time.Now()
	v4, v6 := policyDrops(t, a)
	t.Logf("policy counters: IPv4 %d, IPv6 %d; counts %+v", v4, v6, c)
	if c.Read+c.Lost != v4+v6 || c.Malformed != 0 {
		t.Errorf("read %d + lost %d != policy drops %d (malformed %d)", c.Read, c.Lost, v4+v6, c.Malformed)
	}
	if c.Lost != 0 {
		t.Errorf("%d records lost with a %d-byte ring and a reader", c.Lost, DefaultRingSize)
	}
	if bv4, bv6 := policyDrops(t, b); bv4 < ports || bv6 < ports {
		t.Errorf("the other namespace's policy dropped %d+%d packets, want at least %d each", bv4, bv6, ports)
	}

	recs := col.records()
	if uint64(len(recs)) != c.Read {
		t.Fatalf("%d records collected, Counts.Read %d", len(recs), c.Read)
	}
	var perFamily [2]uint64
	covered := [2]map[uint16]bool{{}, {}}
	for i, r := range recs {
		v6 := r.Family == packet.FamilyIPv6
		f := 0
		if v6 {
			f = 1
		}
		perFamily[f]++
		src, dst := addrs(v6)
		pk := r.pkt
		switch {
		case pk.Err != packet.ErrNone || pk.Proto != packet.ProtoTCP || !pk.HasFlags || !pk.HasPorts:
			t.Errorf("record %d does not decode to TCP: %+v (payload %x)", i, pk, r.Payload)
			continue
		case pk.TCPFlags != packet.FlagSYN:
			t.Errorf("record %d: flags %#x, nmap sends SYN", i, pk.TCPFlags)
		case pk.SrcAddr() != src || pk.DstAddr() != dst:
			t.Errorf("record %d: %v -> %v, want %v -> %v", i, pk.SrcAddr(), pk.DstAddr(), src, dst)
		case pk.DstPort < 1 || pk.DstPort > ports:
			t.Errorf("record %d: port %d outside the scan of this namespace (1-%d)", i, pk.DstPort, ports)
		}
		covered[f][pk.DstPort] = true
		if r.Ifindex != ifindex {
			t.Errorf("record %d: ifindex %d, want the server's veth %d", i, r.Ifindex, ifindex)
		}
		if r.Length != pk.Length || len(r.Payload) != int(min(r.Length, PayloadMax)) {
			t.Errorf("record %d: length %d, payload %d bytes, IP length %d", i, r.Length, len(r.Payload), pk.Length)
		}
		if r.HasConntrack || r.CtInfo != 0 {
			t.Errorf("record %d: conntrack %v/%v in a namespace without conntrack", i, r.HasConntrack, r.CtInfo)
		}
		if r.TimestampNs < start.UnixNano() || r.TimestampNs > end.UnixNano() {
			t.Errorf("record %d: timestamp %v outside the test's %v..%v", i, time.Unix(0, r.TimestampNs), start, end)
		}
	}
	if perFamily[0] != v4 || perFamily[1] != v6 {
		t.Errorf("records IPv4 %d, IPv6 %d; policy counters %d, %d", perFamily[0], perFamily[1], v4, v6)
	}
	for f, m := range covered {
		if len(m) != ports {
			t.Errorf("family %d: %d of %d scanned ports seen", f, len(m), ports)
		}
	}

	// The reasons map saw the same drops, and none of the other namespace.
	drops := kernelDrops(t, p)
	if drops[ReasonNetfilterDrop] != v4+v6 {
		t.Errorf("netfilter_drop %d, policy counters %d", drops[ReasonNetfilterDrop], v4+v6)
	}
}

// kernelDrops returns KernelDrops as a map.
func kernelDrops(t testing.TB, p *Program) map[string]uint64 {
	t.Helper()
	rc, err := p.KernelDrops()
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]uint64{}
	for _, r := range rc {
		if _, dup := m[r.Reason]; dup {
			t.Errorf("reason %q twice", r.Reason)
		}
		m[r.Reason] = r.Count
	}
	return m
}

// TestE2EKernelDrops: every drop of the namespace is counted by its reason:
// SYNs to a closed port with the policy ACCEPT are no_socket, then the same
// with the policy DROP are netfilter_drop, equal to the policy counter; the
// same traffic in another namespace at the same time is not counted.
func TestE2EKernelDrops(t *testing.T) {
	e2e.Require(t, "ip", "iptables", "ip6tables")
	const closed, dropped = 5, 7
	a, b := newLab(t, "r"), newLab(t, "s")
	p := loadFor(t, a, Config{})
	if got := kernelDrops(t, p); len(got) != 1 || got[ReasonNetfilterDrop] != 0 {
		t.Fatalf("before any traffic: %v, want netfilter_drop 0 only", got)
	}
	sa, sb := clientSender(t, a), clientSender(t, b)
	send := func(s *craft.Sender, v6 bool, dport uint16, n int) {
		t.Helper()
		if err := s.Send(syn(v6, 40000, dport, 1), n, 0); err != nil {
			t.Fatal(err)
		}
	}
	// The other lab drops the same way, on both reasons, meanwhile.
	setPolicy(t, b, "DROP")
	for _, v6 := range []bool{false, true} {
		send(sa, v6, 4444, closed)
		send(sb, v6, 4444, 3*closed)
	}
	waitReasons(t, p, map[string]uint64{"no_socket": 2 * closed, ReasonNetfilterDrop: 0})
	setPolicy(t, a, "DROP")
	setPolicy(t, b, "ACCEPT")
	for _, v6 := range []bool{false, true} {
		send(sa, v6, 4444, dropped)
		send(sb, v6, 4444, 3*dropped)
	}
	got := waitReasons(t, p, map[string]uint64{"no_socket": 2 * closed, ReasonNetfilterDrop: 2 * dropped})
	v4, v6 := policyDrops(t, a)
	if got[ReasonNetfilterDrop] != v4+v6 {
		t.Errorf("netfilter_drop %d, policy counters %d+%d", got[ReasonNetfilterDrop], v4, v6)
	}
	c, err := p.Counts()
	if err != nil {
		t.Fatal(err)
	}
	if c.Matched != 2*dropped {
		t.Errorf("matched %d, want %d", c.Matched, 2*dropped)
	}
}

// waitReasons waits until KernelDrops is exactly want (names and counts),
// apart from not_specified: the netlink messages of the iptables commands
// run in the namespace that the kernel frees unread are placed there by
// their socket and count under that reason, some runs more than others.
func waitReasons(t testing.TB, p *Program, want map[string]uint64) map[string]uint64 {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := kernelDrops(t, p)
		delete(got, "not_specified")
		if fmt.Sprint(got) == fmt.Sprint(want) {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("kernel drops %v, want %v", got, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// tcpSeq returns the sequence number of the TCP header in an IP payload.
func tcpSeq(t testing.TB, b []byte, v6 bool) uint32 {
	t.Helper()
	off := 40
	if !v6 {
		off = int(b[0]&0x0f) * 4
	}
	if len(b) < off+8 {
		t.Fatalf("payload %x has no TCP sequence number", b)
	}
	return binary.BigEndian.Uint32(b[off+4:])
}

// TestE2ERingOrder: the records of one flow come in the order it was sent.
func TestE2ERingOrder(t *testing.T) {
	e2e.Require(t, "ip", "iptables", "ip6tables")
	const n = 3000
	l := newLab(t, "o")
	setPolicy(t, l, "DROP")
	p := loadFor(t, l, Config{RingSize: 16 << 20})
	col := startReading(t, p)
	snd := clientSender(t, l)
	for i := range n {
		// An IPv4 and an IPv6 flow, interleaved.
		for _, v6 := range []bool{false, true} {
			b, err := syn(v6, 41000, 80, uint32(i)).Bytes()
			if err != nil {
				t.Fatal(err)
			}
			if err := snd.SendRaw(b); err != nil {
				t.Fatal(err)
			}
		}
	}
	c := waitDrained(t, p, func() uint64 { v4, v6 := policyDrops(t, l); return v4 + v6 })
	if c.Matched != 2*n || c.Lost != 0 {
		t.Fatalf("counts %+v, want %d matched, none lost", c, 2*n)
	}
	next := [2]uint32{}
	for i, r := range col.records() {
		v6 := r.Family == packet.FamilyIPv6
		f := 0
		if v6 {
			f = 1
		}
		if s := tcpSeq(t, r.Payload, v6); s != next[f] {
			t.Fatalf("record %d (IPv6 %v): sequence %d, want %d", i, v6, s, next[f])
		}
		next[f]++
	}
	if next != [2]uint32{n, n} {
		t.Errorf("saw %v packets per flow, want %d", next, n)
	}
}

// TestE2ELoss: with a one-page ring and nobody reading, a burst overflows the
// ring; the overflow is counted lost, and once the ring is drained matched ==
// read + lost, equal to the policy counter.
func TestE2ELoss(t *testing.T) {
	e2e.Require(t, "ip", "iptables", "ip6tables")
	const n = 1000
	l := newLab(t, "l")
	setPolicy(t, l, "DROP")
	page := os.Getpagesize()
	p := loadFor(t, l, Config{RingSize: page})
	snd := clientSender(t, l)
	if err := snd.Send(syn(false, 42000, 80, 1), n, 0); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	var c Counts
	for {
		var err error
		if c, err = p.Counts(); err != nil {
			t.Fatal(err)
		}
		if c.Matched == n || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	fits := uint64(page / (recordSize + 8))
	if c.Matched != n || c.Lost != n-fits || c.Read != 0 {
		t.Fatalf("before reading: %+v, want %d matched, %d lost (a %d-byte ring holds %d records)", c, n, n-fits, page, fits)
	}
	startReading(t, p)
	c = waitDrained(t, p, func() uint64 { v4, v6 := policyDrops(t, l); return v4 + v6 })
	if c.Read != fits || c.Read+c.Lost != n {
		t.Errorf("after draining: %+v, want %d read + %d lost", c, fits, n-fits)
	}
	t.Logf("ring %d bytes: %+v", page, c)
}

// TestE2EConntrack: the record says whether conntrack had attached an entry
// and its ctinfo: NEW with an entry for a SYN, untracked for a packet a
// notrack rule exempted, nothing for a packet conntrack found invalid.
func TestE2EConntrack(t *testing.T) {
	e2e.Require(t, "ip", "iptables", "ip6tables")
	l := newLab(t, "c")
	for _, tool := range []string{"iptables", "ip6tables"} {
		mustRun(t, l, l.Server, tool, "-w", "-t", "raw", "-A", "PREROUTING", "-p", "tcp", "--dport", "9", "-j", "CT", "--notrack")
		// Any conntrack match makes conntrack run in the namespace.
		mustRun(t, l, l.Server, tool, "-w", "-A", "INPUT", "-m", "conntrack", "--ctstate", "ESTABLISHED", "-j", "ACCEPT")
	}
	setPolicy(t, l, "DROP")
	if err := l.Sysctl(l.Server, "net.netfilter.nf_conntrack_tcp_loose=0"); err != nil {
		t.Fatal(err)
	}
	p := loadFor(t, l, Config{})
	col := startReading(t, p)
	snd := clientSender(t, l)
	type want struct {
		entry bool
		info  CtInfo
	}
	cases := []struct {
		pkt  craft.Packet
		want want
	}{
		{syn(false, 43001, 80, 1), want{true, CtNew}},
		{syn(false, 43002, 9, 1), want{false, CtUntracked}},
		{finAck(false, 43003, 80), want{false, 0}},
		{syn(true, 43001, 80, 1), want{true, CtNew}},
		{syn(true, 43002, 9, 1), want{false, CtUntracked}},
		{finAck(true, 43003, 80), want{false, 0}},
	}
	for _, tc := range cases {
		if err := snd.Send(tc.pkt, 1, 0); err != nil {
			t.Fatal(err)
		}
	}
	waitDrained(t, p, func() uint64 { v4, v6 := policyDrops(t, l); return v4 + v6 })
	recs := col.records()
	if len(recs) != len(cases) {
		t.Fatalf("%d records, want %d", len(recs), len(cases))
	}
	for i, r := range recs {
		w := cases[i].want
		if r.pkt.SrcPort != cases[i].pkt.SrcPort || r.HasConntrack != w.entry || r.CtInfo != w.info {
			t.Errorf("record %d (port %d, IPv6 %v): entry %v ctinfo %v, want port %d entry %v ctinfo %v",
				i, r.pkt.SrcPort, r.Family == packet.FamilyIPv6, r.HasConntrack, r.CtInfo, cases[i].pkt.SrcPort, w.entry, w.info)
		}
	}
}

// TestE2EIdle: Read sleeps in the kernel while nothing is dropped; its thread
// is not woken at all.
func TestE2EIdle(t *testing.T) {
	e2e.Require(t, "ip", "iptables", "ip6tables")
	l := newLab(t, "i")
	setPolicy(t, l, "DROP")
	p := loadFor(t, l, Config{})
	tid := make(chan int, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // the thread runs Read and nothing else
		tid <- unix.Gettid()
		done <- p.Read(ctx, func(*Record) { t.Error("a record while idle") })
	}()
	task := fmt.Sprintf("/proc/self/task/%d/", <-tid)
	time.Sleep(200 * time.Millisecond)
	before := switches(t, task)
	inWait := readFile(t, task+"syscall")
	time.Sleep(2 * time.Second)
	after := switches(t, task)
	if before != after {
		t.Errorf("Read's thread was switched %d times in 2 s without any drop", after-before)
	}
	if nr, _ := strconv.Atoi(strings.Fields(inWait)[0]); !slices.Contains(epollWaits, nr) {
		t.Errorf("Read's thread is in syscall %s, not epoll_wait", inWait)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Read did not return after its context was cancelled")
	}
}

// epollWaits are the numbers of the system calls that wait on an epoll set.
var epollWaits = []int{unix.SYS_EPOLL_PWAIT, unix.SYS_EPOLL_PWAIT2}

func readFile(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// switches sums a thread's voluntary and involuntary context switches.
func switches(t testing.TB, task string) int {
	t.Helper()
	n := 0
	for _, line := range strings.Split(readFile(t, task+"status"), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok && (k == "voluntary_ctxt_switches" || k == "nonvoluntary_ctxt_switches") {
			x, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				t.Fatal(err)
			}
			n += x
		}
	}
	return n
}

// TestE2EClose: Close ends a Read that sleeps, and the methods of a closed
// Program say so.
func TestE2EClose(t *testing.T) {
	e2e.Require(t, "ip")
	l := newLab(t, "x")
	cfg := Config{Netns: filepath.Join(lab.NetnsDir, l.Server)}
	p, err := Load(cfg)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Read(context.Background(), func(*Record) {}) }()
	time.Sleep(100 * time.Millisecond)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Read after Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Read did not return after Close")
	}
	if err := p.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := p.Counts(); !errors.Is(err, ErrClosed) {
		t.Errorf("Counts after Close: %v", err)
	}
	if _, err := p.KernelDrops(); !errors.Is(err, ErrClosed) {
		t.Errorf("KernelDrops after Close: %v", err)
	}
	if err := p.Read(context.Background(), nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Read after Close: %v", err)
	}
}

// runHelper runs this test binary as the load helper, with argv before it
// (setpriv, unshare ...), and returns its one line of output.
func runHelper(t *testing.T, bin string, argv ...string) string {
	t.Helper()
	cmd := exec.Command(argv[0], append(argv[1:], bin)...)
	cmd.Env = append(os.Environ(), helperEnv+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// helperBinary copies the test binary where any user may run it.
func helperBinary(t *testing.T) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "nfe-ebpf-helper-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "ebpf.test")
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return bin
}

// TestE2EPrivileges: without CAP_BPF and CAP_PERFMON (and CAP_SYS_ADMIN) Load
// says which it lacks; an unprivileged user with just those two loads.
func TestE2EPrivileges(t *testing.T) {
	e2e.Require(t, "setpriv")
	bin := helperBinary(t)
	for _, tc := range []struct {
		name string
		argv []string
		want string
	}{
		{"root without bpf, perfmon, sys_admin",
			[]string{"setpriv", "--bounding-set=-bpf,-perfmon,-sys_admin", "--"},
			"ErrPermission: the eBPF drop source needs CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN) to load its tracing program, and this process lacks CAP_BPF and CAP_PERFMON; the NFLOG source works without it"},
		{"root without perfmon, sys_admin",
			[]string{"setpriv", "--bounding-set=-perfmon,-sys_admin", "--"},
			"ErrPermission: the eBPF drop source needs CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN) to load its tracing program, and this process lacks CAP_PERFMON; the NFLOG source works without it"},
		{"nobody without capabilities",
			[]string{"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", "--"},
			"ErrPermission: the eBPF drop source needs CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN) to load its tracing program, and this process lacks CAP_BPF and CAP_PERFMON; the NFLOG source works without it"},
		// CAP_NET_ADMIN is not needed by this source (the exporter needs it
		// for NFLOG): nobody with only CAP_BPF and CAP_PERFMON loads.
		{"nobody with bpf and perfmon only",
			[]string{"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
				"--inh-caps=-all,+bpf,+perfmon", "--ambient-caps=-all,+bpf,+perfmon", "--"},
			"loaded"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := runHelper(t, bin, tc.argv...); got != tc.want {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
}

// TestE2ENoBTF: on a kernel without /sys/kernel/btf/vmlinux (hidden here by
// an empty tmpfs in a private mount namespace) Load returns ErrNoBTF.
func TestE2ENoBTF(t *testing.T) {
	e2e.Require(t, "unshare", "sh")
	bin := helperBinary(t)
	got := runHelper(t, bin, "unshare", "--mount", "--propagation", "private", "--",
		"sh", "-c", `mount -t tmpfs none /sys/kernel/btf && exec "$0"`)
	want := "ErrNoBTF: the eBPF drop source needs the kernel's BTF, but /sys/kernel/btf/vmlinux is missing (a kernel built with CONFIG_DEBUG_INFO_BTF=y has it); the NFLOG source works without it"
	if got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}

// TestE2EForwardAndOutput: a packet dropped at FORWARD carries its input
// device; a locally generated one dropped at OUTPUT has no device yet and is
// placed in the namespace by its socket (ifindex 0). The same drops in
// another namespace at the same time are not seen.
func TestE2EForwardAndOutput(t *testing.T) {
	e2e.Require(t, "ip", "iptables", "ip6tables")
	const n = 5
	a, b := newLab(t, "v"), newLab(t, "w")
	// Behind each server, a network it routes to, and the FORWARD and
	// OUTPUT policies drop.
	for _, l := range []*lab.Lab{a, b} {
		mustRun(t, l, l.Server, "ip", "link", "add", "beyond", "type", "veth", "peer", "name", "beyond-peer")
		mustRun(t, l, l.Server, "ip", "link", "set", "beyond-peer", "up")
		mustRun(t, l, l.Server, "ip", "addr", "add", "10.98.0.1/24", "dev", "beyond")
		mustRun(t, l, l.Server, "ip", "addr", "add", "fd98::1/64", "dev", "beyond", "nodad")
		mustRun(t, l, l.Server, "ip", "link", "set", "beyond", "up")
		if err := l.Sysctl(l.Server, "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"); err != nil {
			t.Fatal(err)
		}
		// The kernel's own MLD reports and router solicitations for the
		// new link would be dropped too, some before the program is
		// loaded: accepted before the policy drops.
		mustRun(t, l, l.Server, "ip6tables", "-w", "-A", "OUTPUT", "-p", "icmpv6", "-j", "ACCEPT")
		for _, tool := range []string{"iptables", "ip6tables"} {
			mustRun(t, l, l.Server, tool, "-w", "-P", "FORWARD", "DROP")
			mustRun(t, l, l.Server, tool, "-w", "-P", "OUTPUT", "DROP")
		}
	}
	p := loadFor(t, a, Config{})
	col := startReading(t, p)
	ifindex := serverIfindex(t, a)

	forwarded := map[bool]netip.Addr{false: netip.MustParseAddr("10.98.0.5"), true: netip.MustParseAddr("fd98::5")}
	for _, l := range []*lab.Lab{a, b} {
		snd := clientSender(t, l)
		for _, v6 := range []bool{false, true} {
			pk := syn(v6, 44000, 80, 1)
			pk.Dst = forwarded[v6]
			if err := snd.Send(pk, n, 0); err != nil {
				t.Fatal(err)
			}
		}
		// UDP from a socket of the server: OUTPUT drops it and the
		// kernel tells the sender.
		for _, v6 := range []bool{false, true} {
			dst, src := addrs(v6)
			if err := lab.InNetns(l.Server, func() error {
				c, err := net.DialUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, 44001)), net.UDPAddrFromAddrPort(netip.AddrPortFrom(dst, 53)))
				if err != nil {
					return err
				}
				defer c.Close()
				for range n {
					if _, err := c.Write([]byte("query")); !errors.Is(err, unix.EPERM) {
						return fmt.Errorf("send through the OUTPUT policy: %v, want EPERM", err)
					}
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
		}
	}
	counter := func(l *lab.Lab, chain string) uint64 {
		v4, err := policyCounter(l, l.Server, "iptables", chain)
		if err != nil {
			t.Fatal(err)
		}
		v6, err := policyCounter(l, l.Server, "ip6tables", chain)
		if err != nil {
			t.Fatal(err)
		}
		return v4 + v6
	}
	c := waitDrained(t, p, func() uint64 { return counter(a, "FORWARD") + counter(a, "OUTPUT") })
	if c.Matched != 4*n || c.Lost != 0 {
		t.Fatalf("counts %+v, want %d matched", c, 4*n)
	}
	if fb, ob := counter(b, "FORWARD"), counter(b, "OUTPUT"); fb != 2*n || ob != 2*n {
		t.Errorf("the other namespace dropped %d forwarded and %d output packets, want %d each", fb, ob, 2*n)
	}
	var fwd, out int
	for i, r := range col.records() {
		v6 := r.Family == packet.FamilyIPv6
		switch r.pkt.Proto {
		case packet.ProtoTCP:
			fwd++
			if r.Ifindex != ifindex || r.pkt.DstAddr() != forwarded[v6] {
				t.Errorf("record %d, forwarded: ifindex %d to %v, want the input veth %d and %v", i, r.Ifindex, r.pkt.DstAddr(), ifindex, forwarded[v6])
			}
		case packet.ProtoUDP:
			out++
			if r.Ifindex != 0 || r.pkt.SrcPort != 44001 || r.pkt.DstPort != 53 {
				t.Errorf("record %d, output: ifindex %d, ports %d->%d; want 0, 44001->53", i, r.Ifindex, r.pkt.SrcPort, r.pkt.DstPort)
			}
		default:
			t.Errorf("record %d: %+v", i, r.pkt)
		}
	}
	if fwd != 2*n || out != 2*n {
		t.Errorf("%d forwarded and %d output records, want %d each", fwd, out, 2*n)
	}
}
