//go:build linux

package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cilium/ebpf/btf"
	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop-lab/e2e"
	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop-lab/e2e/e2elab"
	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop-lab/lab"
	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop-lab/lab/craft"
	"github.com/nfdrop/nfdrop_exporter/collector/classify"
	"github.com/nfdrop/nfdrop_exporter/collector/packet"
)

// End-to-end tests of the eBPF drop source (--ebpf.enable, collector/ebpf)
// with the real binary in lab namespaces, switched on with NFDROP_E2E=1 and
// run as root:
//
//	sudo NFDROP_E2E=1 go test -run E2EEBPF -v ./cmd/nfdrop_exporter/
//
// What they prove:
//   - with the shipped ruleset, whose every drop passes its NFLOG rule, the
//     "ebpf" group's series equal the NFLOG group's summed over prefix, for
//     crafted packets of every class, nmap scans and real late teardown, and
//     so do the teardown evidence, the sizes and the decode errors; an IPv6
//     packet whose headers pass the 128 bytes the program copies is the one
//     documented difference;
//   - a policy drop no log rule sees is counted exactly (the policy
//     counters), classified as the hand-written expectations say, and drops
//     of another namespace at the same time are not;
//   - vanilla ufw: every packet its rules and policies drop, IPv4 and IPv6;
//   - a million drops: drops == read + lost exactly, and == the policy;
//   - the load errors exit 2 with one sentence, and an unprivileged user with
//     exactly CAP_NET_ADMIN, CAP_BPF and CAP_PERFMON runs both sources.

const ebpfGroup = "ebpf"

// ebpfPrefix names a lab of these tests: nfb, the PID and a tag.
func ebpfPrefix(tag string) string { return fmt.Sprintf("nfb%d%s", os.Getpid()%100000, tag) }

// ebpfExporter is the exporter running in a lab's server namespace.
type ebpfExporter struct {
	t      *testing.T
	l      *lab.Lab
	exp    *exec.Cmd
	exited chan error
	logs   *lab.SyncBuffer
}

// startEBPF starts the exporter with args in l's server namespace and waits
// until every group of groups is up.
func startEBPF(t *testing.T, l *lab.Lab, bin string, groups []string, args ...string) *ebpfExporter {
	t.Helper()
	args = append([]string{"--web.listen-address=127.0.0.1:9786", "--log.level=debug"}, args...)
	exp, exited, logs := e2elab.StartExporter(t, l, bin, args...)
	e2elab.WaitUp(t, l, exited, groups...)
	return &ebpfExporter{t: t, l: l, exp: exp, exited: exited, logs: logs}
}

func (e *ebpfExporter) scrape() lab.Scrape {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	sc, err := lab.FetchMetrics(ctx, lab.HTTPClient(e.l.Server, 5*time.Second), "http://127.0.0.1:9786/metrics")
	if err != nil {
		e.t.Fatal(err)
	}
	return sc
}

func (e *ebpfExporter) stop() { e2elab.StopExporter(e.t, e.exp, e.exited) }

// settle scrapes until done holds for a scrape and the state it names has
// not changed for quiet, for at most limit.
func (e *ebpfExporter) settle(what string, quiet, limit time.Duration, done func(lab.Scrape) (state string, ok bool)) lab.Scrape {
	e.t.Helper()
	sc, state, ok := e.trySettle(quiet, limit, done)
	if !ok {
		e.t.Fatalf("%s: not within %v (last state %s)", what, limit, state)
	}
	return sc
}

// trySettle is settle that returns the last scrape and its state when done
// does not hold in time.
func (e *ebpfExporter) trySettle(quiet, limit time.Duration, done func(lab.Scrape) (state string, ok bool)) (lab.Scrape, string, bool) {
	e.t.Helper()
	deadline := time.Now().Add(limit)
	last, since := "", time.Now()
	for {
		select {
		case err := <-e.exited:
			e.t.Fatalf("exporter exited: %v", err)
		default:
		}
		sc := e.scrape()
		state, ok := done(sc)
		if state != last {
			last, since = state, time.Now()
		}
		if ok && time.Since(since) >= quiet {
			return sc, state, true
		}
		if time.Now().After(deadline) {
			return sc, state, false
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// groupView is what the exporter counted for one group, with the series
// summed over their prefixes (the eBPF source has none).
type groupView struct {
	Packets      map[lab.Series]float64
	Total, Lost  float64
	Teardown     float64
	Evidence     map[string]float64
	Sizes        map[string]lab.SizeStats
	DecodeErrors map[string]float64
}

var evidenceValues = []string{"destroyed", "closing", "established", "none", "skipped"}

func viewOf(sc lab.Scrape, group string) groupView {
	v := groupView{Packets: map[lab.Series]float64{}, Evidence: map[string]float64{}, Sizes: map[string]lab.SizeStats{}, DecodeErrors: map[string]float64{}}
	for s, n := range sc.Packets(group) {
		s.Group, s.Prefix = "", ""
		v.Packets[s] += n
		v.Total += n
		if s.Class == classify.ClassTeardown.String() {
			v.Teardown += n
		}
	}
	v.Lost, _ = sc.Value("nfdrop_messages_lost_total", map[string]string{"group": group})
	for _, ev := range evidenceValues {
		v.Evidence[ev], _ = sc.Value("nfdrop_teardown_evidence_total", map[string]string{"group": group, "evidence": ev})
	}
	for c := range classify.NumClasses {
		if h := histogram(sc, "nfdrop_packet_size_bytes", map[string]string{"group": group, "class": c.String()}); h != nil {
			v.Sizes[c.String()] = lab.SizeStats{Count: float64(h.GetSampleCount()), Sum: h.GetSampleSum()}
		}
	}
	for e := packet.Error(1); e < packet.NumErrors; e++ {
		if n, _ := sc.Value("nfdrop_decode_errors_total", map[string]string{"group": group, "reason": e.String()}); n != 0 {
			v.DecodeErrors[e.String()] = n
		}
	}
	return v
}

func (v groupView) evidenceSum() float64 {
	var s float64
	for _, n := range v.Evidence {
		s += n
	}
	return s
}

// ebpfCounts are the eBPF program's own counts on /metrics.
type ebpfCounts struct{ Drops, Misses, NetfilterDrop float64 }

func ebpfCountsOf(sc lab.Scrape) ebpfCounts {
	var c ebpfCounts
	c.Drops, _ = sc.Value("nfdrop_ebpf_drops_total", nil)
	c.Misses, _ = sc.Value("nfdrop_ebpf_program_misses_total", nil)
	c.NetfilterDrop, _ = sc.Value("nfdrop_kernel_drops_total", map[string]string{"reason": "netfilter_drop"})
	return c
}

// dropCounters is every packet the iptables rulesets of the server
// namespace dropped, both families: rules and policies.
func dropCounters(t *testing.T, l *lab.Lab) (rules, policies uint64) {
	t.Helper()
	v4, v6, err := l.DropCounters(l.Server)
	if err != nil {
		t.Fatal(err)
	}
	return v4.Rules + v6.Rules, v4.Policies + v6.Policies
}

// nmap runs one nmap scan of ports from the lab's client to its server:
// one probe per port, no host discovery.
func nmap(l *lab.Lab, v6 bool, scan, ports string) error {
	dst := lab.ServerIPv4.String()
	args := []string{"-n", "-Pn", scan, "--max-retries", "0", "-T4", "--host-timeout", "60s", "-p", ports}
	if v6 {
		dst = lab.ServerIPv6.String()
		args = append([]string{"-6"}, args...)
	}
	if out, err := l.Run(l.Client, "nmap", append(args, dst)...); err != nil {
		return fmt.Errorf("nmap %s -p %s: %w\n%s", scan, ports, err, out)
	}
	return nil
}

func familyName(v6 bool) string { return map[bool]string{false: "ipv4", true: "ipv6"}[v6] }

// TestE2EEBPFMatchesNFLOG runs both sources on the shipped ruleset, whose
// only drop is the final DROP right after the NFLOG rule (no INVALID drop
// before it, FORWARD and OUTPUT accept): every drop is logged, so the two
// groups must count the same packets the same way.
func TestE2EEBPFMatchesNFLOG(t *testing.T) {
	e2e.Require(t, append(labTools, "nmap")...)
	bin := e2e.Binary(t)
	fwDir := filepath.Join(e2e.Root(), "deploy", "firewall")
	for i, v6 := range []bool{false, true} {
		t.Run(familyName(v6), func(t *testing.T) {
			t.Parallel()
			// The kernel now and then frees a netfilter-dropped packet
			// without running the program and without counting a
			// recursion miss (about one run in 20 to 80 here: always one
			// late FIN/ACK that the client's timer retransmitted); the
			// exporter cannot see such a drop. The traffic then runs once
			// more in a new lab, where everything must agree.
			for try := 0; try < 2; try++ {
				gap := matchNFLOG(t, bin, fwDir, fmt.Sprintf("a%d%d", i, try), v6, try == 0)
				if gap == 0 {
					return
				}
				t.Logf("the kernel freed %v of this lab's netfilter drops without running the program (no recursion miss): running the traffic again in a new lab", gap)
			}
		})
	}
}

// matchNFLOG runs the traffic of TestE2EEBPFMatchesNFLOG in a new lab and
// checks both sources against each other and the kernel's counters. With
// mayRetry, a disagreement that comes from drops the program never saw is
// returned (their number) instead of failing the test.
func matchNFLOG(t *testing.T, bin, fwDir, tag string, v6, mayRetry bool) (gap float64) {
	l := e2elab.NewLab(t, ebpfPrefix(tag), lab.Iptables, fwDir)
	if err := l.PrepareTCP(); err != nil {
		t.Fatal(err)
	}
	// Both groups look up the same flows in one budget.
	e := startEBPF(t, l, bin, []string{e2eGroup, ebpfGroup}, "--nflog.group="+e2eGroup, "--ebpf.enable",
		"--conntrack.lookups-per-second=100000")
	e2elab.Poll(t, l, e.exited, "conntrack subscribed", func(sc lab.Scrape) bool {
		v, ok := sc.Value("nfdrop_conntrack_up", nil)
		return ok && v == 1
	})

	ctx := context.Background()
	for _, p := range []part{
		{lab.Crafted(v6), 0},
		{lab.Visitors(v6, 60), 0},
		{lab.LateRST(v6), 1500 * time.Millisecond},
		// 4.5 s outlasts the client's FIN/ACK retransmissions.
		{lab.LateFIN(v6), 4500 * time.Millisecond},
	} {
		if err := l.RunScenario(ctx, p.sc, 0, p.settle, nil); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range []struct{ scan, ports string }{
		{"-sS", "1-300"}, {"-sA", "1-100"}, {"-sN", "1-40"}, {"-sF", "1-40"}, {"-sX", "1-40"}, {"-sU", "1-40"},
	} {
		if err := nmap(l, v6, s.scan, s.ports); err != nil {
			t.Fatal(err)
		}
	}

	sc, state, ok := e.trySettle(2*time.Second, 60*time.Second, func(sc lab.Scrape) (string, bool) {
		counter, err := l.RuleCounter(0)
		if err != nil {
			t.Fatal(err)
		}
		rules, policies := dropCounters(t, l)
		n, b, c := viewOf(sc, e2eGroup), viewOf(sc, ebpfGroup), ebpfCountsOf(sc)
		state := fmt.Sprintf("counter %d, drop rules %d, policies %d; nflog %v+%v, evidence %v of %v; ebpf %v+%v of %v (program misses %v, kernel netfilter_drop %v), evidence %v of %v",
			counter, rules, policies, n.Total, n.Lost, n.evidenceSum(), n.Teardown, b.Total, b.Lost, c.Drops, c.Misses, c.NetfilterDrop, b.evidenceSum(), b.Teardown)
		missed := float64(rules+policies) - c.Drops
		return state, n.Total+n.Lost == float64(counter) && b.Total+b.Lost == c.Drops && missed >= 0 && missed <= c.Misses &&
			n.evidenceSum() == n.Teardown && b.evidenceSum() == b.Teardown
	})
	if c := ebpfCountsOf(sc); !ok && mayRetry {
		rules, policies := dropCounters(t, l)
		if g := float64(rules+policies) - c.Drops - c.Misses; g > 0 {
			e.stop()
			return g
		}
	}
	// Every drop of the namespace by the kernel's reason, for the log.
	reasons := map[string]float64{}
	if mf := sc["nfdrop_kernel_drops_total"]; mf != nil {
		for _, m := range mf.GetMetric() {
			reasons[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
		}
	}
	if !ok {
		// Which series differ follows below.
		t.Errorf("the groups and the rule counters do not agree within 60s: %s; kernel drops by reason %v", state, reasons)
	}

	counter, err := l.RuleCounter(0)
	if err != nil {
		t.Fatal(err)
	}
	rules, policies := dropCounters(t, l)
	// Every drop of this ruleset passes the NFLOG rule: the drops are
	// exactly the packets it logged, none by a policy.
	if rules != counter || policies != 0 {
		t.Errorf("the ruleset dropped %d packets by rules and %d by policies, its NFLOG rule logged %d: some drops are not logged", rules, policies, counter)
	}
	n, b, c := viewOf(sc, e2eGroup), viewOf(sc, ebpfGroup), ebpfCountsOf(sc)
	// The kernel skips the program when it is already running on
	// that CPU (a packet freed by an interrupt or softirq during a
	// run: a FIN/ACK retransmitted from the timer softirq, say),
	// for drops of every namespace, and counts the skips in
	// c.Misses. On a shared host those are mostly other tenants'
	// drops, which do not matter here; the ones of this lab are
	// exactly the drops the rules counted and the program did not.
	missed := float64(rules+policies) - c.Drops
	if missed < 0 || missed > c.Misses {
		t.Errorf("the rules dropped %d packets, the program kept %v and missed %v of any namespace", rules+policies, c.Drops, c.Misses)
	}
	if missed == 0 {
		if d := lab.DiffSeries(b.Packets, n.Packets); d != "" {
			t.Errorf("nfdrop_packets_total{group=%q} differs from group %q summed over prefix:\n%s", ebpfGroup, e2eGroup, d)
		}
		for name, pair := range map[string][2]any{
			"teardown evidence": {b.Evidence, n.Evidence},
			"packet sizes":      {b.Sizes, n.Sizes},
			"decode errors":     {b.DecodeErrors, n.DecodeErrors},
		} {
			if fmt.Sprint(pair[0]) != fmt.Sprint(pair[1]) { // maps print sorted
				t.Errorf("%s: ebpf %v, nflog %v", name, pair[0], pair[1])
			}
		}
	} else {
		// The ebpf group lacks exactly the missed drops, and
		// nothing else differs.
		t.Logf("the kernel did not run the program for %v of this lab's drops (program misses %v in all)", missed, c.Misses)
		short := n.Total - b.Total
		for s, v := range b.Packets {
			if v > n.Packets[s] {
				short = -1
			}
		}
		for ev, v := range b.Evidence {
			if v > n.Evidence[ev] {
				short = -1
			}
		}
		if short != missed {
			t.Errorf("the ebpf group is not short of exactly the %v missed drops:\n%s\nevidence: ebpf %v, nflog %v",
				missed, lab.DiffSeries(b.Packets, n.Packets), b.Evidence, n.Evidence)
		}
	}
	if n.Lost != 0 || b.Lost != 0 {
		t.Errorf("lost: nflog %v, ebpf %v: want 0", n.Lost, b.Lost)
	}
	// Nothing else netfilter dropped in the namespace (no non-IP drop).
	if c.NetfilterDrop != c.Drops {
		t.Errorf("nfdrop_kernel_drops_total{reason=\"netfilter_drop\"} %v, nfdrop_ebpf_drops_total %v", c.NetfilterDrop, c.Drops)
	}
	classes := map[string]float64{}
	for s, v := range b.Packets {
		classes[s.Class] += v
	}
	for _, want := range []string{"teardown", "handshake", "probe", "other"} {
		if classes[want] == 0 {
			t.Errorf("no %s drop: the traffic did not cover every class (%v)", want, classes)
		}
	}
	if b.Evidence["destroyed"]+b.Evidence["closing"] == 0 || b.Evidence["none"] == 0 {
		t.Errorf("evidence %v: want real late teardown (destroyed/closing) and scans (none)", b.Evidence)
	}
	t.Logf("%s: %v drops in %d series, equal in both groups (rule counter %d); classes %v; evidence %v; kernel drops by reason %v",
		familyName(v6), b.Total, len(b.Packets), counter, classes, b.Evidence, reasons)
	e.stop()
	return 0
}

// withDstOpts returns the IPv6 datagram b with a Destination Options
// extension header of n bytes (a multiple of 8, at least 8) inserted after
// the fixed header, filled with one PadN option. The transport checksum
// stays valid: its pseudo-header has the final destination and the
// transport length, neither of which changes.
func withDstOpts(b []byte, n int) []byte {
	const ipprotoDstOpts = 60
	opts := make([]byte, n)
	opts[0] = b[6]                  // next header: the transport
	opts[1] = byte(n/8 - 1)         // Hdr Ext Len, in 8-byte units beyond the first 8
	opts[2], opts[3] = 1, byte(n-4) // PadN and its data length
	out := append(append(slices.Clone(b[:40]), opts...), b[40:]...)
	out[6] = ipprotoDstOpts
	binary.BigEndian.PutUint16(out[4:], uint16(len(out)-40))
	return out
}

// TestE2EEBPFCopyLength shows the one place where the two sources decode
// the same drop differently: the program copies at most 128 bytes from the
// network header, the NFLOG rule 256. An IPv6 packet whose extension headers
// end, or whose TCP flags lie, beyond 128 bytes is a teardown packet to the
// NFLOG group and a malformed one to the ebpf group. (The lab's scenarios
// and floods have no such packet.)
func TestE2EEBPFCopyLength(t *testing.T) {
	e2e.Require(t, labTools...)
	bin := e2e.Binary(t)
	l := e2elab.NewLab(t, ebpfPrefix("c"), lab.Iptables, filepath.Join(e2e.Root(), "deploy", "firewall"))
	e := startEBPF(t, l, bin, []string{e2eGroup, ebpfGroup}, "--nflog.group="+e2eGroup, "--ebpf.enable")

	finAck := craft.Packet{Src: lab.ClientIPv6, Dst: lab.ServerIPv6, Proto: craft.ProtoTCP, SrcPort: 40100, DstPort: 443,
		Flags: craft.ACK | craft.FIN, Seq: 1, Ack: 2, Window: 502}
	b, err := finAck.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	// 40 + 120 = 160 bytes of headers before TCP: the copy ends inside the
	// extension header. 40 + 80 = 120: the copy holds 8 bytes of TCP, not
	// its flags (byte 13).
	sends := []struct {
		optsLen int
		reason  string
	}{{120, "truncated_ext_header"}, {80, "truncated_tcp_header"}}
	if err := lab.InNetns(l.Client, func() error {
		snd, err := craft.NewSender(lab.ClientIf, lab.ServerMAC)
		if err != nil {
			return err
		}
		defer snd.Close()
		for _, s := range sends {
			if err := snd.SendRaw(withDstOpts(b, s.optsLen)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	sc := e.settle("both groups to count both packets", 500*time.Millisecond, 20*time.Second, func(sc lab.Scrape) (string, bool) {
		n, b := viewOf(sc, e2eGroup), viewOf(sc, ebpfGroup)
		return fmt.Sprint(n.Total, b.Total), n.Total == 2 && b.Total == 2
	})
	n, v := viewOf(sc, e2eGroup), viewOf(sc, ebpfGroup)
	teardown := lab.Series{Family: "ipv6", Proto: "tcp", Port: "443", Side: classify.SideClient.String(), Flags: "ACK,FIN", Class: classify.ClassTeardown.String()}
	malformed := lab.Series{Family: "ipv6", Proto: packet.ProtoUnknown.String(), Side: classify.SideNone.String(), Class: classify.ClassMalformed.String()}
	if d := lab.DiffSeries(n.Packets, map[lab.Series]float64{teardown: 2}); d != "" {
		t.Errorf("NFLOG group (256 bytes copied):\n%s", d)
	}
	if d := lab.DiffSeries(v.Packets, map[lab.Series]float64{malformed: 2}); d != "" {
		t.Errorf("ebpf group (128 bytes copied):\n%s", d)
	}
	wantErrs := map[string]float64{}
	for _, s := range sends {
		wantErrs[s.reason]++
	}
	if len(n.DecodeErrors) != 0 || !maps.Equal(v.DecodeErrors, wantErrs) {
		t.Errorf("decode errors: nflog %v (want none), ebpf %v (want %v)", n.DecodeErrors, v.DecodeErrors, wantErrs)
	}
	e.stop()
}

// policyDropLab is a lab whose server's INPUT chains drop by policy, with
// no log rule: loopback (the scrapes) and IPv6 neighbour discovery (nmap
// resolves the server itself) are accepted, everything else from the
// client is dropped by the policy.
func policyDropLab(t *testing.T, tag string) *lab.Lab {
	t.Helper()
	l, err := lab.New(ebpfPrefix(tag))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("lab close: %v", err)
		}
	})
	for _, cmd := range [][]string{
		{"iptables", "-w", "-A", "INPUT", "-i", "lo", "-j", "ACCEPT"},
		{"ip6tables", "-w", "-A", "INPUT", "-i", "lo", "-j", "ACCEPT"},
		{"ip6tables", "-w", "-A", "INPUT", "-p", "icmpv6", "--icmpv6-type", "neighbour-solicitation", "-j", "ACCEPT"},
		{"ip6tables", "-w", "-A", "INPUT", "-p", "icmpv6", "--icmpv6-type", "neighbour-advertisement", "-j", "ACCEPT"},
		{"iptables", "-w", "-P", "INPUT", "DROP"},
		{"ip6tables", "-w", "-P", "INPUT", "DROP"},
	} {
		if out, err := l.Run(l.Server, cmd[0], cmd[1:]...); err != nil {
			t.Fatalf("%v: %v %s", cmd, err, out)
		}
	}
	return l
}

// synScanSeries is what an nmap SYN scan of ports first..last (one probe
// each) adds, by the classification rules: a SYN without ACK is a client's
// handshake to its destination port, a listed port by number, others by
// range.
func synScanSeries(v6 bool, first, last int) map[lab.Series]float64 {
	listed := map[int]bool{22: true, 25: true, 53: true, 80: true, 123: true, 443: true, 3389: true}
	m := map[lab.Series]float64{}
	for p := first; p <= last; p++ {
		port := strconv.Itoa(p)
		switch {
		case listed[p]:
		case p < 1024:
			port = classify.PortSystem
		case p < 49152:
			port = classify.PortUser
		default:
			port = classify.PortDynamic
		}
		m[lab.Series{Family: familyName(v6), Proto: "tcp", Port: port, Side: classify.SideClient.String(), Flags: "SYN", Class: classify.ClassHandshake.String()}]++
	}
	return m
}

// TestE2EEBPFPolicyDrop: a chain that drops by policy and has no log rule.
// The ebpf group counts every drop (the policy counters, both families),
// classified as the hand-written expectations say, with the eBPF source
// alone (--no-nflog.enable); drops in a third namespace at the same time
// are not counted.
func TestE2EEBPFPolicyDrop(t *testing.T) {
	e2e.Require(t, "ip", "iptables", "ip6tables", "iptables-save", "ip6tables-save", "nmap")
	bin := e2e.Binary(t)
	watched, other := policyDropLab(t, "p"), policyDropLab(t, "q")
	e := startEBPF(t, watched, bin, []string{ebpfGroup}, "--no-nflog.enable", "--ebpf.enable")

	want := map[lab.Series]float64{}
	var wg sync.WaitGroup
	errs := make(chan error, 6)
	for _, v6 := range []bool{false, true} {
		for k, v := range lab.Crafted(v6).Expected(ebpfGroup, "") {
			k.Group, k.Prefix = "", ""
			want[k] += v
		}
		for k, v := range synScanSeries(v6, 1, 200) {
			want[k] += v
		}
		wg.Add(3)
		go func() { defer wg.Done(); errs <- watched.RunScenario(context.Background(), lab.Crafted(v6), 0, 0, nil) }()
		go func() { defer wg.Done(); errs <- nmap(watched, v6, "-sS", "1-200") }()
		// The other namespace drops the same kind of traffic meanwhile.
		go func() {
			defer wg.Done()
			if err := nmap(other, v6, "-sS", "1-300"); err != nil {
				errs <- err
				return
			}
			errs <- other.RunScenario(context.Background(), lab.Crafted(v6), 0, 0, nil)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	sc := e.settle("the policy drops to be read", time.Second, 30*time.Second, func(sc lab.Scrape) (string, bool) {
		_, policies := dropCounters(t, watched)
		v, c := viewOf(sc, ebpfGroup), ebpfCountsOf(sc)
		return fmt.Sprint(policies, v.Total, v.Lost, c.Drops), v.Total+v.Lost == c.Drops && c.Drops == float64(policies)
	})
	rules, policies := dropCounters(t, watched)
	v, c := viewOf(sc, ebpfGroup), ebpfCountsOf(sc)
	if rules != 0 || policies != uint64(lab.Sum(want)) {
		t.Errorf("the watched namespace dropped %d by rules and %d by its policies, want 0 and the %v packets sent", rules, policies, lab.Sum(want))
	}
	// c.Misses counts skipped runs for drops of any namespace: the
	// equality with the policy counters is what says none of these was.
	if c.Drops != float64(policies) || v.Total+v.Lost != c.Drops {
		t.Errorf("nfdrop_ebpf_drops_total %v, packets %v + lost %v, misses %v; policy counters %d", c.Drops, v.Total, v.Lost, c.Misses, policies)
	}
	if d := lab.DiffSeries(v.Packets, want); d != "" {
		t.Errorf("nfdrop_packets_total{group=%q} differs from the hand-written expectations:\n%s", ebpfGroup, d)
	}
	for s := range sc.Packets(ebpfGroup) {
		if s.Prefix != "" {
			t.Errorf("series %v: the eBPF source has no prefix", s)
		}
	}
	if _, otherPolicies := dropCounters(t, other); otherPolicies < 2*(300+uint64(lab.Crafted(false).Packets())) {
		t.Errorf("the other namespace's policies dropped %d packets: it did not drop alongside", otherPolicies)
	} else if c.NetfilterDrop != c.Drops {
		t.Errorf("nfdrop_kernel_drops_total{reason=\"netfilter_drop\"} %v counts another namespace's drops (ebpf drops %v)", c.NetfilterDrop, c.Drops)
	}
	if sc["nfdrop_log_rules"] != nil || sc["nfdrop_log_rule_packets_total"] != nil {
		t.Error("the rule audit reports on the ebpf group, which has no log rule")
	}
	t.Logf("policy counters %d (IPv4+IPv6) = nfdrop_ebpf_drops_total %v = %v packets + %v lost; %d series exact", policies, c.Drops, v.Total, v.Lost, len(want))
	e.stop()
}

// TestE2EEBPFUFW: Debian's vanilla ufw (deny incoming, allow 80) in a lab
// namespace, with no log rule of ours. With the eBPF source alone the
// exporter counts exactly the IPv4 and IPv6 packets ufw dropped, by its
// rules (INVALID, not-local, skip-to-policy ...) and by its policies.
func TestE2EEBPFUFW(t *testing.T) {
	e2e.Require(t, "ip", "ufw", "iptables", "iptables-save", "ip6tables-save", "conntrack", "nmap")
	bin := e2e.Binary(t)
	l, err := lab.New(ebpfPrefix("u"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("lab close: %v", err)
		}
	})
	if err := l.PrepareTCP(); err != nil {
		t.Fatal(err)
	}
	u := e2elab.NewUFW(t, l.Server)
	u.Run(t, "default", "deny", "incoming")
	u.Run(t, "allow", "80")
	u.Run(t, "--force", "enable")
	e := startEBPF(t, l, bin, []string{ebpfGroup}, "--no-nflog.enable", "--ebpf.enable")

	ctx := context.Background()
	for _, v6 := range []bool{false, true} {
		if err := l.RunScenario(ctx, lab.Crafted(v6), 0, 0, nil); err != nil {
			t.Fatal(err)
		}
		for _, s := range []struct{ scan, ports string }{{"-sS", "1-200"}, {"-sA", "70-90"}, {"-sX", "1-30"}, {"-sU", "1-30"}} {
			if err := nmap(l, v6, s.scan, s.ports); err != nil {
				t.Fatal(err)
			}
		}
		// Real connections to the allowed port that end late: their last
		// packets are INVALID to conntrack, which ufw drops by a rule.
		for _, r := range []lab.TCPRecipe{lab.TCPClean, lab.TCPCTDeleteLateFIN, lab.TCPCTDeleteLateRST} {
			if err := l.RunTCP(ctx, r, 80, v6, 1500*time.Millisecond); err != nil {
				t.Fatalf("%s over %s: %v", r, familyName(v6), err)
			}
		}
	}
	var v4, v6 lab.Drops
	sc := e.settle("ufw's drops to be read", 2*time.Second, 60*time.Second, func(sc lab.Scrape) (string, bool) {
		if v4, v6, err = l.DropCounters(l.Server); err != nil {
			t.Fatal(err)
		}
		v, c := viewOf(sc, ebpfGroup), ebpfCountsOf(sc)
		return fmt.Sprint(v4, v6, v.Total, v.Lost, c.Drops), v.Total+v.Lost == c.Drops && c.Drops == float64(v4.Total()+v6.Total())
	})
	v, c := viewOf(sc, ebpfGroup), ebpfCountsOf(sc)
	perFamily := map[string]float64{}
	for s, n := range v.Packets {
		perFamily[s.Family] += n
	}
	if c.Drops != float64(v4.Total()+v6.Total()) || v.Total+v.Lost != c.Drops || v.Lost != 0 {
		t.Errorf("nfdrop_ebpf_drops_total %v = packets %v + lost %v (misses %v); ufw dropped IPv4 %+v, IPv6 %+v", c.Drops, v.Total, v.Lost, c.Misses, v4, v6)
	}
	if perFamily["ipv4"] != float64(v4.Total()) || perFamily["ipv6"] != float64(v6.Total()) {
		t.Errorf("counted IPv4 %v, IPv6 %v; ufw dropped %d and %d", perFamily["ipv4"], perFamily["ipv6"], v4.Total(), v6.Total())
	}
	// Both kinds of drop happened in both families: the test covers what a
	// log rule in front of the policy would not see.
	for fam, d := range map[string]lab.Drops{"IPv4": v4, "IPv6": v6} {
		if d.Rules == 0 || d.Policies == 0 {
			t.Errorf("%s: ufw dropped %d by rules and %d by policies; want both", fam, d.Rules, d.Policies)
		}
	}
	t.Logf("ufw dropped IPv4 %d by rules + %d by policies, IPv6 %d + %d; the exporter counted %v (%v IPv4, %v IPv6), lost %v",
		v4.Rules, v4.Policies, v6.Rules, v6.Policies, v.Total, perFamily["ipv4"], perFamily["ipv6"], v.Lost)
	e.stop()
}

// TestE2EEBPFFlood: a million frames of the bench's teardown mix into a
// chain that drops by policy, as fast as the sender goes (bounded to 90 s).
// Once drained, every drop the program matched was read or counted lost,
// and the program matched every drop of the policy.
func TestE2EEBPFFlood(t *testing.T) {
	e2e.Require(t, "ip", "iptables", "ip6tables", "iptables-save", "ip6tables-save")
	bin := e2e.Binary(t)
	const frames = 1_000_000
	l := policyDropLab(t, "f")
	e := startEBPF(t, l, bin, []string{ebpfGroup}, "--no-nflog.enable", "--ebpf.enable")
	pool, err := lab.BuildPool(lab.MixTeardown, lab.PoolSize, 7)
	if err != nil {
		t.Fatal(err)
	}
	var fr lab.FloodResult
	if err := lab.InNetns(l.Client, func() error {
		fr, err = lab.Flood(lab.ClientIf, pool, frames, 0, 90*time.Second, nil)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	sc := e.settle("the flood to be drained", time.Second, 60*time.Second, func(sc lab.Scrape) (string, bool) {
		_, policies := dropCounters(t, l)
		v, c := viewOf(sc, ebpfGroup), ebpfCountsOf(sc)
		return fmt.Sprint(policies, v.Total, v.Lost, c.Drops), v.Total+v.Lost == c.Drops && c.Drops+c.Misses == float64(policies)
	})
	_, policies := dropCounters(t, l)
	v, c := viewOf(sc, ebpfGroup), ebpfCountsOf(sc)
	t.Logf("sent %d frames at %.0f/s: policy dropped %d; nfdrop_ebpf_drops_total %v = %v packets + %v lost (%.2f %%); program misses %v",
		fr.Sent, fr.PPS(), policies, c.Drops, v.Total, v.Lost, 100*v.Lost/c.Drops, c.Misses)
	if fr.Sent != frames || policies != frames {
		t.Errorf("sent %d frames, the policies dropped %d: want %d each", fr.Sent, policies, frames)
	}
	if v.Total+v.Lost != c.Drops {
		t.Errorf("sum(nfdrop_packets_total{group=\"ebpf\"}) %v + lost %v != nfdrop_ebpf_drops_total %v", v.Total, v.Lost, c.Drops)
	}
	if c.Drops+c.Misses != float64(policies) {
		t.Errorf("nfdrop_ebpf_drops_total %v + misses %v != policy counters %d", c.Drops, c.Misses, policies)
	}
	if c.Misses != 0 {
		t.Logf("the kernel did not run the program for %v drops (nfdrop_ebpf_program_misses_total)", c.Misses)
	}
	e.stop()
}

// kernelBTFFile writes the running kernel's BTF to a file, re-encoded
// type by type; without the reason, with the enumerator
// SKB_DROP_REASON_NETFILTER_DROP taken out of enum skb_drop_reason: a kernel
// of today that lacks only that reason.
func kernelBTFFile(t *testing.T, withReason bool) string {
	t.Helper()
	kernel, err := btf.LoadKernelSpec()
	if err != nil {
		t.Fatal(err)
	}
	s := kernel.Copy()
	var e *btf.Enum
	if err := s.TypeByName("skb_drop_reason", &e); err != nil {
		t.Fatal(err)
	}
	n := len(e.Values)
	if !withReason {
		e.Values = slices.DeleteFunc(slices.Clone(e.Values), func(v btf.EnumValue) bool { return v.Name == "SKB_DROP_REASON_NETFILTER_DROP" })
		if len(e.Values) != n-1 {
			t.Fatalf("the kernel's enum skb_drop_reason has no NETFILTER_DROP to take out")
		}
	}
	var types []btf.Type
	for typ, err := range s.All() {
		if err != nil {
			t.Fatal(err)
		}
		types = append(types, typ)
	}
	b, err := btf.NewBuilder(types, nil)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := b.Marshal(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), fmt.Sprintf("vmlinux-netfilter-drop-%v.btf", withReason))
	if err := os.WriteFile(p, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	// The file reads back, with the rest of the enum intact.
	back, err := btf.LoadSpec(p)
	if err != nil {
		t.Fatal(err)
	}
	var e2 *btf.Enum
	if err := back.TypeByName("skb_drop_reason", &e2); err != nil || len(e2.Values) != len(e.Values) {
		t.Fatalf("the written BTF: enum skb_drop_reason %v, %v", e2, err)
	}
	return p
}

// exitStatus waits for the exporter to end and returns its exit code.
func exitStatus(t *testing.T, exited <-chan error, within time.Duration) int {
	t.Helper()
	select {
	case err := <-exited:
		if err == nil {
			return 0
		}
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("wait: %v", err)
		}
		return ee.ExitCode()
	case <-time.After(within):
		t.Fatalf("the exporter still runs after %v", within)
	}
	return -1
}

// errorLines are the level=error lines of the exporter's log.
func errorLines(logs string) []string {
	var out []string
	for _, line := range strings.Split(logs, "\n") {
		if strings.Contains(line, "level=error") || strings.Contains(line, "level=ERROR") {
			out = append(out, line)
		}
	}
	return out
}

// The capability sets of the privilege tests, as setpriv takes them, and as
// /proc/PID/status prints the effective set: CAP_NET_ADMIN (12), CAP_PERFMON
// (38), CAP_BPF (39).
const (
	capsEBPF   = "net_admin,+bpf,+perfmon"
	capEffEBPF = "000000c000001000"
)

// setprivUser is setpriv running a program as nobody holding exactly caps
// (a "+"-joined list) as ambient capabilities, as systemd's
// AmbientCapabilities= does.
func setprivUser(caps string) []string {
	return []string{"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all,+" + caps,
		"--ambient-caps=-all,+" + caps, "--bounding-set=-all,+" + caps, "--no-new-privs", "--"}
}

// TestE2EEBPFErrors: what the binary says when the eBPF source cannot run,
// and that an unprivileged user with exactly CAP_NET_ADMIN, CAP_BPF and
// CAP_PERFMON runs both sources.
func TestE2EEBPFErrors(t *testing.T) {
	e2e.Require(t, append(labTools, "setpriv")...)
	bin := e2e.Binary(t)
	l := e2elab.NewLab(t, ebpfPrefix("e"), lab.Iptables, filepath.Join(e2e.Root(), "deploy", "firewall"))
	listen := "--web.listen-address=127.0.0.1:9786"

	fails := []struct {
		name      string
		argv      []string // the command in the server namespace
		want      []string // in the one error sentence
		wantNot   []string
		wantExit2 bool
	}{
		{
			name: "BTF without SKB_DROP_REASON_NETFILTER_DROP",
			argv: []string{bin, listen, "--ebpf.enable", "--ebpf.kernel-btf=" + kernelBTFFile(t, false)},
			want: []string{"SKB_DROP_REASON_NETFILTER_DROP", "this kernel's BTF does not have", "the NFLOG source works without it"},
		},
		{
			name: "root with CAP_NET_ADMIN only (capabilities dropped)",
			argv: append([]string{"setpriv", "--inh-caps=-all", "--bounding-set=-all,+net_admin", "--no-new-privs", "--"}, bin, listen, "--ebpf.enable"),
			want: []string{"lacks CAP_BPF and CAP_PERFMON", "the NFLOG source works without it"},
		},
		{
			name:    "nobody with CAP_NET_ADMIN and CAP_BPF, no CAP_PERFMON",
			argv:    append(setprivUser("net_admin,+bpf"), bin, listen, "--ebpf.enable"),
			want:    []string{"lacks CAP_PERFMON", "the NFLOG source works without it"},
			wantNot: []string{"lacks CAP_BPF"},
		},
	}
	for _, tc := range fails {
		t.Run(tc.name, func(t *testing.T) {
			_, exited, logs := e2elab.StartExporter(t, l, tc.argv[0], tc.argv[1:]...)
			if code := exitStatus(t, exited, 20*time.Second); code != 2 {
				t.Errorf("exit status %d, want 2", code)
			}
			errs := errorLines(logs.String())
			if len(errs) != 1 {
				t.Fatalf("want one error line, got %q", errs)
			}
			msg := errs[0]
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q lacks %q", msg, w)
				}
			}
			for _, w := range tc.wantNot {
				if strings.Contains(msg, w) {
					t.Errorf("error %q says %q", msg, w)
				}
			}
			// One sentence: the only full stop ends it.
			if m := strings.TrimSuffix(strings.TrimSpace(msg), `"`); strings.Count(m, ". ") != 0 {
				t.Errorf("error %q is more than one sentence", msg)
			}
			t.Log(msg)
		})
	}

	// The control: the same file with the reason left in loads, so the
	// failure above is the reason's, not the file's.
	t.Run("BTF file with SKB_DROP_REASON_NETFILTER_DROP", func(t *testing.T) {
		e := startEBPF(t, l, bin, []string{ebpfGroup}, "--no-nflog.enable", "--ebpf.enable", "--ebpf.kernel-btf="+kernelBTFFile(t, true))
		e.stop()
	})

	t.Run("nobody with exactly CAP_NET_ADMIN, CAP_BPF and CAP_PERFMON", func(t *testing.T) {
		argv := append(setprivUser(capsEBPF), bin, listen, "--nflog.group="+e2eGroup, "--ebpf.enable")
		exp, exited, logs := e2elab.StartExporter(t, l, argv[0], argv[1:]...)
		e := &ebpfExporter{t: t, l: l, exp: exp, exited: exited, logs: logs}
		e2elab.WaitUp(t, l, exited, e2eGroup, ebpfGroup)
		st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", exp.Process.Pid))
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"Uid:\t65534\t65534\t65534\t65534", "CapEff:\t" + capEffEBPF, "CapBnd:\t" + capEffEBPF, "NoNewPrivs:\t1"} {
			if !strings.Contains(string(st), want+"\n") {
				t.Errorf("/proc/%d/status lacks %q:\n%s", exp.Process.Pid, want, st)
			}
		}
		for _, v6 := range []bool{false, true} {
			if err := l.RunScenario(context.Background(), lab.Crafted(v6), 0, 0, nil); err != nil {
				t.Fatal(err)
			}
		}
		sc := e.settle("both groups to count the crafted sets", time.Second, 30*time.Second, func(sc lab.Scrape) (string, bool) {
			counter, err := l.RuleCounter(0)
			if err != nil {
				t.Fatal(err)
			}
			n, b := viewOf(sc, e2eGroup), viewOf(sc, ebpfGroup)
			return fmt.Sprint(counter, n.Total, b.Total), counter > 0 && n.Total == float64(counter) && b.Total == float64(counter)
		})
		n, b := viewOf(sc, e2eGroup), viewOf(sc, ebpfGroup)
		if d := lab.DiffSeries(b.Packets, n.Packets); d != "" {
			t.Errorf("the groups differ:\n%s", d)
		}
		if strings.Contains(logs.String(), "running as root") {
			t.Error("the unprivileged exporter warns about root")
		}
		t.Logf("as nobody with CapEff %s: NFLOG %v, eBPF %v drops", capEffEBPF, n.Total, b.Total)
		e.stop()
	})
}
