//go:build linux

package main

import (
	"context"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/mdlayher/netlink"
	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop-lab/e2e/e2elab"
	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop-lab/lab"
	"github.com/ti-mo/conntrack"
)

// End-to-end tests of teardown evidence (collector/README.md) with the real binary and
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

func TestE2EConntrackEvidence(t *testing.T) {
	bin := e2elab.ConntrackBinary(t)
	for i, v6 := range []bool{false, true} {
		t.Run(map[bool]string{false: "ipv4", true: "ipv6"}[v6], func(t *testing.T) {
			t.Parallel()
			c := e2elab.StartExporterLab(t, bin, fmt.Sprintf("ev%d-", i), "--conntrack.hold=1s")
			c.WaitReady(true)

			// Real connections whose last packets are dropped.
			for i, r := range []lab.TCPRecipe{lab.TCPCloseWaitLateFIN, lab.TCPCTDeleteLateFIN, lab.TCPCTDeleteLateRST} {
				c.RunRecipe(r, []int{443, 80}[i%2], v6)
			}
			real := c.Settle(true, 3*time.Second)
			if real.Teardown == 0 || real.Teardown != float64(real.Counter) {
				t.Fatalf("real teardown: %v teardown drops counted, rule counter %d: want every drop teardown, at least one", real.Teardown, real.Counter)
			}
			ev := real.Evidence
			if got := ev["destroyed"] + ev["closing"]; got != real.Teardown {
				t.Errorf("real teardown evidence %v: destroyed+closing = %v, want all %v drops", ev, got, real.Teardown)
			}
			for _, e := range []string{"none", "skipped", "established"} {
				if ev[e] != 0 {
					t.Errorf("real teardown: evidence %s = %v, want 0", e, ev[e])
				}
			}
			if real.DelayN != ev["destroyed"] || real.DelayIn != real.DelayN {
				t.Errorf("delay histogram: %v observations, %v within the 2m window; want one per destroyed drop (%v), all within", real.DelayN, real.DelayIn, ev["destroyed"])
			}
			if real.DelaySum < 0 || real.DelaySum > 120*real.DelayN || math.IsNaN(real.DelaySum) {
				t.Errorf("delay sum %v for %v drops: not inside the window", real.DelaySum, real.DelayN)
			}
			t.Logf("real teardown: %v drops, evidence %v, mean delay %.3fs", real.Teardown, ev, real.DelaySum/math.Max(real.DelayN, 1))

			// The counter-case: nmap's ACK scan is teardown-shaped, but no
			// connection ever existed.
			c.AckScan(v6)
			scan := c.Settle(true, 2*time.Second)
			probes := scan.Teardown - real.Teardown
			if probes < 1 || float64(scan.Counter-real.Counter) != probes {
				t.Fatalf("ACK scan: %v teardown drops for %d logged packets, want every logged packet, at least one", probes, scan.Counter-real.Counter)
			}
			for _, e := range []string{"destroyed", "closing", "established", "none", "skipped"} {
				want := real.Evidence[e]
				if e == "none" {
					want += probes
				}
				if scan.Evidence[e] != want {
					t.Errorf("after the ACK scan: evidence %s = %v, want %v", e, scan.Evidence[e], want)
				}
			}
			if scan.Lost != 0 {
				t.Errorf("nfdrop_messages_lost_total %v, want 0", scan.Lost)
			}
			t.Logf("ACK scan: %v probes, evidence none", probes)
			c.Stop()
		})
	}
}

// TestE2EConntrackOff: without correlation the exporter exposes no evidence
// and still counts every packet exactly.
func TestE2EConntrackOff(t *testing.T) {
	bin := e2elab.ConntrackBinary(t)
	c := e2elab.StartExporterLab(t, bin, "off", "--no-conntrack.correlate")
	c.WaitReady(false)
	c.RunRecipe(lab.TCPCTDeleteLateFIN, 443, false)
	c.AckScan(false)
	tt := c.Settle(false, 3*time.Second)
	if tt.Packets+tt.Lost != float64(tt.Counter) || tt.Counter == 0 {
		t.Errorf("sum(nfdrop_packets_total) %v + lost %v != log rule counter %d (want > 0)", tt.Packets, tt.Lost, tt.Counter)
	}
	if tt.Teardown != float64(tt.Counter) {
		t.Errorf("teardown %v of %d drops, want all", tt.Teardown, tt.Counter)
	}
	sc := c.Scrape()
	for _, name := range []string{"nfdrop_teardown_evidence_total", "nfdrop_conntrack_up", "nfdrop_teardown_delay_seconds"} {
		if sc[name] != nil {
			t.Errorf("%s exported with --no-conntrack.correlate", name)
		}
	}
	c.Stop()
}

// TestE2EConntrackFlood: a flood of DESTROY events, from many real short
// connections and then from synthetic conntrack entries, leaves at most
// --conntrack.max-flows flows remembered, accounts for every event
// (received + lost), and keeps the exporter's RSS bounded.
func TestE2EConntrackFlood(t *testing.T) {
	bin := e2elab.ConntrackBinary(t)
	const maxFlows = 1000
	c := e2elab.StartExporterLab(t, bin, "flood", fmt.Sprintf("--conntrack.max-flows=%d", maxFlows))
	c.WaitReady(true)
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
			sc := c.Scrape()
			if events(sc) >= want {
				return sc
			}
			if time.Now().After(deadline) {
				t.Fatalf("DESTROY events: received+lost %v after 30s, want %v", events(sc), want)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	rss0 := gauge(c.Scrape(), "process_resident_memory_bytes")

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
	c.Stop()
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
