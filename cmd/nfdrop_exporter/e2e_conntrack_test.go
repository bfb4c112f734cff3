//go:build linux

package main

import (
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mdlayher/netlink"
	"github.com/nfdrop/nfdrop_exporter/cmd/internal/lab"
	"github.com/ti-mo/conntrack"
)

// End-to-end tests of teardown evidence (design §7) with the real binary and
// real TCP connections in a lab namespace pair, switched on with NFDROP_E2E=1
// and run as root:
//
//	sudo NFDROP_E2E=1 go test -run E2EConntrack -v ./cmd/nfdrop_exporter/
//
// What they prove:
//   - late teardown drops of real connections (recipe 1: CLOSE_WAIT
//     expired, late FIN/ACK; recipe 2: entry deleted, late FIN/ACK; recipe
//     4: entry deleted, late RST) all get evidence destroyed or closing,
//     never none/skipped/established, and every destroyed one has a delay
//     inside the window in nfdrop_teardown_delay_seconds;
//   - nmap's ACK scan (-sA -p 22), also teardown-shaped, gets evidence none,
//     exactly one per logged packet;
//   - every teardown drop gets exactly one evidence, and with or without
//     correlation sum(nfdrop_packets_total) + lost equals the log rule's
//     counter.

const ctGroup = "0"

func ctE2E(t *testing.T) string {
	t.Helper()
	if os.Getenv("NFDROP_E2E") != "1" {
		t.Skip("end-to-end conntrack test disabled: set NFDROP_E2E=1 (needs root, iproute2, iptables, conntrack, nmap)")
	}
	if os.Geteuid() != 0 {
		t.Skip("end-to-end conntrack test needs root (network namespaces, firewall rules, NFLOG, conntrack events)")
	}
	for _, tool := range []string{"ip", "iptables-restore", "ip6tables-restore", "iptables-save", "ip6tables-save", "conntrack", "sysctl", "nmap"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("NFDROP_E2E=1 but %s is missing (apt-get install iproute2 iptables conntrack procps nmap): %v", tool, err)
		}
	}
	bin := exporterBinary(t)
	if out, _ := exec.Command(bin, "serve", "--help").CombinedOutput(); !strings.Contains(string(out), "--[no-]conntrack.correlate") {
		t.Fatal("the binary has no --conntrack.correlate flag: wire addConntrackFlags/build (conntrack_flags.go) into main.go")
	}
	return bin
}

// ctLab is a lab with the exporter running in its server namespace.
type ctLab struct {
	*lab.Lab
	t      *testing.T
	exp    *exec.Cmd
	exited chan error
	logs   *lab.SyncBuffer
	url    string
}

func startCTLab(t *testing.T, bin, tag string, args ...string) *ctLab {
	t.Helper()
	fwDir, err := filepath.Abs(filepath.Join("..", "..", "deploy", "firewall"))
	if err != nil {
		t.Fatal(err)
	}
	l, err := lab.New(fmt.Sprintf("nfdF-%s%d", tag, os.Getpid()%100000))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("lab close: %v", err)
		}
	})
	if err := l.Apply(lab.Iptables, fwDir); err != nil {
		t.Fatal(err)
	}
	if err := l.PrepareTCP(); err != nil {
		t.Fatal(err)
	}
	c := &ctLab{Lab: l, t: t, exited: make(chan error, 1), logs: &lab.SyncBuffer{}, url: "http://127.0.0.1:9786/metrics"}
	args = append([]string{"--nflog.group=" + ctGroup, "--web.listen-address=127.0.0.1:9786", "--log.level=debug"}, args...)
	c.exp, err = l.Start(l.Server, c.logs, c.logs, bin, args...)
	if err != nil {
		t.Fatal(err)
	}
	go func() { c.exited <- c.exp.Wait() }()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("exporter output:\n%s", c.logs.String())
		}
	})
	return c
}

func (c *ctLab) scrape() lab.Scrape {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	sc, err := lab.FetchMetrics(ctx, lab.HTTPClient(c.Server, 2*time.Second), c.url)
	if err != nil {
		c.t.Fatal(err)
	}
	return sc
}

// waitReady waits until the group is bound and, if wantCT, conntrack is
// subscribed: nothing may be sent before (design §5 invariant).
func (c *ctLab) waitReady(wantCT bool) {
	c.t.Helper()
	client := lab.HTTPClient(c.Server, 2*time.Second)
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case err := <-c.exited:
			c.t.Fatalf("exporter exited before becoming ready: %v", err)
		default:
		}
		sc, err := lab.FetchMetrics(context.Background(), client, c.url)
		if err == nil {
			up, _ := sc.Value("nfdrop_up", map[string]string{"group": ctGroup})
			ct, _ := sc.Value("nfdrop_conntrack_up", nil)
			if up == 1 && (!wantCT || ct == 1) {
				return
			}
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("exporter not ready after 10s (last error %v)", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// ctTotals is what the tests compare.
type ctTotals struct {
	counter  uint64             // log rule counter
	packets  float64            // sum(nfdrop_packets_total)
	lost     float64            // nfdrop_messages_lost_total
	teardown float64            // sum(nfdrop_packets_total{class="teardown"})
	evidence map[string]float64 // nfdrop_teardown_evidence_total by evidence
	delayN   float64            // histogram count
	delaySum float64
	delayIn  float64 // observations <= the window (le="120")
}

func (c *ctLab) totals() ctTotals {
	c.t.Helper()
	n, err := c.RuleCounter(0)
	if err != nil {
		c.t.Fatal(err)
	}
	sc := c.scrape()
	tt := ctTotals{counter: n, evidence: map[string]float64{}}
	pk := sc.Packets(ctGroup)
	tt.packets = lab.Sum(pk)
	for k, v := range pk {
		if k.Class == "teardown" {
			tt.teardown += v
		}
	}
	tt.lost, _ = sc.Value("nfdrop_messages_lost_total", map[string]string{"group": ctGroup})
	if mf := sc["nfdrop_teardown_evidence_total"]; mf != nil {
		for _, m := range mf.GetMetric() {
			var ev, g string
			for _, lp := range m.GetLabel() {
				switch lp.GetName() {
				case "evidence":
					ev = lp.GetValue()
				case "group":
					g = lp.GetValue()
				}
			}
			if g == ctGroup {
				tt.evidence[ev] += m.GetCounter().GetValue()
			}
		}
	}
	if mf := sc["nfdrop_teardown_delay_seconds"]; mf != nil {
		for _, m := range mf.GetMetric() {
			h := m.GetHistogram()
			tt.delayN += float64(h.GetSampleCount())
			tt.delaySum += h.GetSampleSum()
			for _, b := range h.GetBucket() {
				if b.GetUpperBound() == 120 {
					tt.delayIn += float64(b.GetCumulativeCount())
				}
			}
		}
	}
	return tt
}

func sumEvidence(m map[string]float64) float64 {
	var s float64
	for _, v := range m {
		s += v
	}
	return s
}

// settle polls until the log rule counter has not moved for quiet, the
// exporter accounts for every packet and (if correlating) every teardown
// drop has its evidence.
func (c *ctLab) settle(correlating bool, quiet time.Duration) ctTotals {
	c.t.Helper()
	deadline := time.Now().Add(40 * time.Second)
	var last ctTotals
	lastChange := time.Now()
	for {
		tt := c.totals()
		if tt.counter != last.counter {
			lastChange = time.Now()
		}
		last = tt
		done := tt.packets+tt.lost == float64(tt.counter) && time.Since(lastChange) >= quiet
		if correlating {
			done = done && sumEvidence(tt.evidence) == tt.teardown
		}
		if done {
			return tt
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("not settled after 40s: rule counter %d, packets %v, lost %v, teardown %v, evidence %v",
				tt.counter, tt.packets, tt.lost, tt.teardown, tt.evidence)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func (c *ctLab) stop() {
	c.t.Helper()
	if err := c.exp.Process.Signal(syscall.SIGTERM); err != nil {
		c.t.Fatal(err)
	}
	select {
	case err := <-c.exited:
		if err != nil {
			c.t.Errorf("exporter exit after SIGTERM: %v, want status 0", err)
		}
	case <-time.After(10 * time.Second):
		c.t.Errorf("exporter did not exit within 10s of SIGTERM")
	}
}

// runTCP runs one real-TCP recipe. The server port can still be held for a
// moment by the previous recipe's orphaned server socket (its peer's FIN was
// dropped, by design): retry the listen a few times.
func (c *ctLab) runTCP(r lab.TCPRecipe, port int, v6 bool) {
	c.t.Helper()
	for i := 0; ; i++ {
		err := c.RunTCP(context.Background(), r, port, v6, 500*time.Millisecond)
		if err == nil {
			return
		}
		if i == 10 || !strings.Contains(err.Error(), "address already in use") {
			c.t.Fatalf("%s to :%d: %v", r, port, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func (c *ctLab) ackScan(v6 bool) {
	c.t.Helper()
	args := []string{"-Pn", "-n", "-sA", "-p", "22", "--max-retries", "0", lab.ServerIPv4.String()}
	if v6 {
		args = append([]string{"-6"}, args[:len(args)-1]...)
		args = append(args, lab.ServerIPv6.String())
	}
	if out, err := c.Run(c.Client, "nmap", args...); err != nil {
		c.t.Fatalf("nmap: %v\n%s", err, out)
	}
}

func TestE2EConntrackEvidence(t *testing.T) {
	bin := ctE2E(t)
	for i, v6 := range []bool{false, true} {
		t.Run(map[bool]string{false: "ipv4", true: "ipv6"}[v6], func(t *testing.T) {
			t.Parallel()
			c := startCTLab(t, bin, fmt.Sprintf("ev%d-", i), "--conntrack.hold=1s")
			c.waitReady(true)

			// Real connections whose last packets are dropped.
			for i, r := range []lab.TCPRecipe{lab.TCPCloseWaitLateFIN, lab.TCPCTDeleteLateFIN, lab.TCPCTDeleteLateRST} {
				c.runTCP(r, []int{443, 80}[i%2], v6)
			}
			real := c.settle(true, 3*time.Second)
			if real.teardown == 0 || real.teardown != float64(real.counter) {
				t.Fatalf("real teardown: %v teardown drops counted, rule counter %d: want every drop teardown, at least one", real.teardown, real.counter)
			}
			ev := real.evidence
			if got := ev["destroyed"] + ev["closing"]; got != real.teardown {
				t.Errorf("real teardown evidence %v: destroyed+closing = %v, want all %v drops", ev, got, real.teardown)
			}
			for _, e := range []string{"none", "skipped", "established"} {
				if ev[e] != 0 {
					t.Errorf("real teardown: evidence %s = %v, want 0", e, ev[e])
				}
			}
			if real.delayN != ev["destroyed"] || real.delayIn != real.delayN {
				t.Errorf("delay histogram: %v observations, %v within the 2m window; want one per destroyed drop (%v), all within", real.delayN, real.delayIn, ev["destroyed"])
			}
			if real.delaySum < 0 || real.delaySum > 120*real.delayN || math.IsNaN(real.delaySum) {
				t.Errorf("delay sum %v for %v drops: not inside the window", real.delaySum, real.delayN)
			}
			t.Logf("real teardown: %v drops, evidence %v, mean delay %.3fs", real.teardown, ev, real.delaySum/math.Max(real.delayN, 1))

			// The counter-case: nmap's ACK scan is teardown-shaped, but no
			// connection ever existed.
			c.ackScan(v6)
			scan := c.settle(true, 2*time.Second)
			probes := scan.teardown - real.teardown
			if probes < 1 || float64(scan.counter-real.counter) != probes {
				t.Fatalf("ACK scan: %v teardown drops for %d logged packets, want every logged packet, at least one", probes, scan.counter-real.counter)
			}
			for _, e := range []string{"destroyed", "closing", "established", "none", "skipped"} {
				want := real.evidence[e]
				if e == "none" {
					want += probes
				}
				if scan.evidence[e] != want {
					t.Errorf("after the ACK scan: evidence %s = %v, want %v", e, scan.evidence[e], want)
				}
			}
			if scan.lost != 0 {
				t.Errorf("nfdrop_messages_lost_total %v, want 0", scan.lost)
			}
			t.Logf("ACK scan: %v probes, evidence none", probes)
			c.stop()
		})
	}
}

// TestE2EConntrackOff: without correlation the exporter exposes no evidence
// and still counts every packet exactly.
func TestE2EConntrackOff(t *testing.T) {
	bin := ctE2E(t)
	c := startCTLab(t, bin, "off", "--no-conntrack.correlate")
	c.waitReady(false)
	c.runTCP(lab.TCPCTDeleteLateFIN, 443, false)
	c.ackScan(false)
	tt := c.settle(false, 3*time.Second)
	if tt.packets+tt.lost != float64(tt.counter) || tt.counter == 0 {
		t.Errorf("sum(nfdrop_packets_total) %v + lost %v != log rule counter %d (want > 0)", tt.packets, tt.lost, tt.counter)
	}
	if tt.teardown != float64(tt.counter) {
		t.Errorf("teardown %v of %d drops, want all", tt.teardown, tt.counter)
	}
	sc := c.scrape()
	for _, name := range []string{"nfdrop_teardown_evidence_total", "nfdrop_conntrack_up", "nfdrop_teardown_delay_seconds"} {
		if sc[name] != nil {
			t.Errorf("%s exported with --no-conntrack.correlate", name)
		}
	}
	c.stop()
}

// TestE2EConntrackFlood: a flood of DESTROY events, from many real short
// connections and then from synthetic conntrack entries, leaves at most
// --conntrack.max-flows flows remembered, accounts for every event
// (received + lost), and keeps the exporter's RSS bounded.
func TestE2EConntrackFlood(t *testing.T) {
	bin := ctE2E(t)
	const maxFlows = 1000
	c := startCTLab(t, bin, "flood", fmt.Sprintf("--conntrack.max-flows=%d", maxFlows))
	c.waitReady(true)
	gauge := func(sc lab.Scrape, name string) float64 {
		v, ok := sc.Value(name, nil)
		if !ok {
			t.Fatalf("%s missing", name)
		}
		return v
	}
	events := func(sc lab.Scrape) float64 {
		v, _ := sc.Value("nfdrop_conntrack_events_total", map[string]string{"type": "destroy"})
		return v + gauge(sc, "nfdrop_conntrack_events_lost_total")
	}
	// flush deletes the server's conntrack entries (all of them, or those
	// matching args) and waits for their DESTROY events.
	flush := func(want float64, args ...string) lab.Scrape {
		cmd := []string{"-F"}
		if len(args) > 0 {
			cmd = append([]string{"-D"}, args...)
		}
		if _, err := c.Run(c.Server, "conntrack", cmd...); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(30 * time.Second)
		for {
			sc := c.scrape()
			if events(sc) >= want {
				return sc
			}
			if time.Now().After(deadline) {
				t.Fatalf("DESTROY events: received+lost %v after 30s, want %v", events(sc), want)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	rss0 := gauge(c.scrape(), "process_resident_memory_bytes")

	// Phase 1: real short connections, each one a conntrack entry.
	const conns = 3000
	ln, err := lab.ListenTCP(c.Server, "tcp4", lab.ServerIPv4.String()+":443")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			s, err := ln.Accept()
			if err != nil {
				return
			}
			s.Close()
		}
	}()
	ctx := context.Background()
	for i := 0; i < conns; i++ {
		cc, err := lab.DialContext(ctx, c.Client, "tcp4", lab.ServerIPv4.String()+":443")
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		cc.Close()
	}
	time.Sleep(500 * time.Millisecond) // let the last FIN exchanges finish
	// Only the recipe's flows: the scrapes' own loopback connections are
	// tracked too.
	sc := flush(conns, "-p", "tcp", "--dport", "443")
	if got := events(sc); got != conns {
		t.Errorf("received+lost DESTROY events %v, want exactly %d", got, conns)
	}
	rss1 := gauge(sc, "process_resident_memory_bytes")
	if n := gauge(sc, "nfdrop_conntrack_flows_remembered"); n != maxFlows {
		t.Errorf("after %d connections: %v flows remembered, want max-flows %d", conns, n, maxFlows)
	}
	ev1 := events(sc)

	// Phase 2: 50000 more DESTROY events from synthetic entries, deleted
	// in one burst (conntrack -F), faster than any receive buffer drains.
	const synthetic = 50000
	createServerFlows(t, c.Lab, synthetic)
	sc = flush(ev1 + synthetic)
	rss2 := gauge(sc, "process_resident_memory_bytes")
	if n := gauge(sc, "nfdrop_conntrack_flows_remembered"); n != maxFlows {
		t.Errorf("after %v events: %v flows remembered, want max-flows %d", events(sc), n, maxFlows)
	}
	evicted := gauge(sc, "nfdrop_conntrack_flows_evicted_total")
	lost := gauge(sc, "nfdrop_conntrack_events_lost_total")
	t.Logf("RSS: %.1f MiB at start, %.1f MiB after %d connections, %.1f MiB after %v DESTROY events (max-flows %d, %v evicted, %v lost)",
		rss0/(1<<20), rss1/(1<<20), conns, rss2/(1<<20), events(sc), maxFlows, evicted, lost)
	if rss2 > rss1+32<<20 {
		t.Errorf("RSS grew from %.1f to %.1f MiB between %d and %v events: not bounded", rss1/(1<<20), rss2/(1<<20), conns, events(sc))
	}
	c.stop()
}

// createServerFlows inserts n established TCP entries into the server
// namespace's conntrack table through ctnetlink (much faster than real
// connections, for flooding DESTROY events).
func createServerFlows(t *testing.T, l *lab.Lab, n int) {
	t.Helper()
	var c *conntrack.Conn
	if err := lab.InNetns(l.Server, func() error {
		var err error
		c, err = conntrack.Dial(&netlink.Config{})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	src, dst := lab.ClientIPv4, lab.ServerIPv4
	for i := 0; i < n; i++ {
		f := conntrack.NewFlow(6, 0, src, dst, uint16(1024+i%60000), uint16(8000+i/60000), 120, 0)
		f.ProtoInfo.TCP = &conntrack.ProtoInfoTCP{State: 3}
		if err := c.Create(f); err != nil {
			t.Fatalf("create flow %d: %v", i, err)
		}
	}
}
