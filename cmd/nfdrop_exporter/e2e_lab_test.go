//go:build linux

package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop-lab/e2e"
	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop-lab/e2e/e2elab"
	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop-lab/lab"
)

// The end-to-end lab tests drive the real exporter binary inside a network
// namespace pair whose server side runs the very rulesets shipped in
// deploy/firewall. They need root and are switched on with NFDROP_E2E=1:
//
//	sudo NFDROP_E2E=1 go test -run E2E -v ./cmd/nfdrop_exporter/
//
// What they prove, for iptables and nftables and for IPv4 and IPv6:
//   - every crafted packet lands in exactly the nfdrop_packets_total series
//     the classification rules prescribe (all eight labels, exact values, no extra
//     series), with expectations written by hand in cmd/nfdrop-lab/lab;
//   - a clean real TCP connection to 443 produces no drop, a real late
//     abortive close produces exactly one ACK,RST teardown drop;
//   - nfdrop_up{group="0"} is 1, and the accounting invariant
//     sum(nfdrop_packets_total) + nfdrop_messages_lost_total equals the
//     kernel's packet counter of the NFLOG/log rule;
//   - SIGTERM ends the exporter with exit status 0.

const e2eGroup = "0"

// labTools are what the lab needs (cmd/nfdrop-lab/lab): namespaces, both firewalls, conntrack.
var labTools = []string{"ip", "iptables-restore", "ip6tables-restore", "iptables-save", "ip6tables-save", "nft", "conntrack", "sysctl"}

func TestE2ELab(t *testing.T) {
	e2e.Require(t, labTools...)
	bin := e2e.Binary(t)
	fwDir, err := filepath.Abs(filepath.Join("..", "..", "deploy", "firewall"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, rs := range []lab.Ruleset{lab.Iptables, lab.Nftables} {
		for _, v6 := range []bool{false, true} {
			fam := map[bool]string{false: "ipv4", true: "ipv6"}[v6]
			for _, c := range []struct {
				name  string
				parts []part
			}{
				// Every class, flag and port rule with crafted packets,
				// plus a clean real connection and a real late RST.
				{"crafted", []part{{lab.Crafted(v6), 0}, {lab.LateRST(v6), 1500 * time.Millisecond}}},
				// The problem's main case with real sockets: late FIN/ACK
				// retransmissions. 4.5 s outlasts the client's retries.
				{"late-fin", []part{{lab.LateFIN(v6), 4500 * time.Millisecond}}},
			} {
				prefix := fmt.Sprintf("nfe2e%d-%d", os.Getpid()%100000, n)
				n++
				t.Run(fmt.Sprintf("%s/%s/%s", rs, fam, c.name), func(t *testing.T) {
					t.Parallel()
					runE2E(t, bin, fwDir, prefix, rs, c.parts...)
				})
			}
		}
	}
}

// part is one scenario and how long to let its stragglers (TCP
// retransmissions) arrive after it.
type part struct {
	sc     lab.Scenario
	settle time.Duration
}

func runE2E(t *testing.T, bin, fwDir, prefix string, rs lab.Ruleset, parts ...part) {
	l := e2elab.NewLab(t, prefix, rs, fwDir)
	if err := l.PrepareTCP(); err != nil {
		t.Fatal(err)
	}
	if n, err := l.RuleCounter(0); err != nil || n != 0 {
		t.Fatalf("fresh lab: log rule counter %d, %v; want 0", n, err)
	}

	exp, exited, _ := e2elab.StartExporter(t, l, bin, "--nflog.group="+e2eGroup, "--web.listen-address=127.0.0.1:9786", "--log.level=debug")

	client := lab.HTTPClient(l.Server, 2*time.Second)
	url := "http://127.0.0.1:9786/metrics"
	ctx := context.Background()

	sc := e2elab.WaitUp(t, l, exited, e2eGroup)
	if got := sc.Packets(e2eGroup); len(got) != 0 {
		t.Fatalf("packets counted before any traffic:\n%s", lab.DiffSeries(got, nil))
	}

	// Expectations, all written by hand in cmd/nfdrop-lab/lab from the
	// classification rules: exact series and sizes, plus at most one series whose count
	// depends on timing (real FIN/ACK retransmissions) and is therefore
	// taken from the log rule counter (everything else being exact).
	want := map[lab.Series]float64{}
	wantSizes := map[string]lab.SizeStats{}
	var timed *lab.TCPRun
	timedRuns := 0
	for _, p := range parts {
		if err := l.RunScenario(ctx, p.sc, 0, p.settle, nil); err != nil {
			t.Fatal(err)
		}
		for k, v := range p.sc.Expected(e2eGroup, "denied") {
			want[k] += v
		}
		sz, _ := p.sc.ExpectedSizes()
		for c, st := range sz {
			w := wantSizes[c]
			w.Count += st.Count
			w.Sum += st.Sum
			wantSizes[c] = w
		}
		for i, r := range p.sc.TCP {
			if r.Exact >= 0 {
				continue
			}
			if timed != nil && (timed.Want != r.Want || timed.Size != r.Size) {
				t.Fatal("test setup: more than one timing-dependent series")
			}
			timed = &p.sc.TCP[i]
			timedRuns++
		}
	}

	// Kernel batches reach the exporter up to a flush timeout later: poll
	// until the exporter's sum matches the rule counter and is stable.
	var got map[lab.Series]float64
	var lost float64
	var counter uint64
	var err error
	stable := 0
	deadline := time.Now().Add(5 * time.Second)
	for {
		counter, err = l.RuleCounter(0)
		if err != nil {
			t.Fatal(err)
		}
		sc, err = lab.FetchMetrics(ctx, client, url)
		if err != nil {
			t.Fatal(err)
		}
		got = sc.Packets(e2eGroup)
		lost, _ = sc.Value("nfdrop_messages_lost_total", map[string]string{"group": e2eGroup})
		if lab.Sum(got)+lost == float64(counter) {
			stable++
		} else {
			stable = 0
		}
		if stable >= 3 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}

	if timed != nil {
		w := timed.Want
		w.Group, w.Prefix = e2eGroup, "denied"
		n := float64(counter) - lab.Sum(want)
		if n < float64(timedRuns) {
			t.Fatalf("real late FIN/ACK: log rule counted %v packets beyond the exact ones, want at least %d (one per connection)", n, timedRuns)
		}
		want[w] += n
		st := wantSizes[w.Class]
		st.Count += n
		st.Sum += n * float64(timed.Size)
		wantSizes[w.Class] = st
	}
	if wantN := uint64(lab.Sum(want)); counter != wantN {
		t.Errorf("log rule counter %d, want %d (the lab sent a packet that did not, or should not, reach the log rule)", counter, wantN)
	}
	if s := lab.Sum(got); s+lost != float64(counter) {
		t.Errorf("invariant broken: sum(nfdrop_packets_total) %v + nfdrop_messages_lost_total %v != log rule counter %d", s, lost, counter)
	}
	if lost != 0 {
		t.Errorf("nfdrop_messages_lost_total = %v at %d packets, want 0", lost, counter)
	}
	if d := lab.DiffSeries(got, want); d != "" {
		t.Errorf("nfdrop_packets_total differs from the hand-written expectations:\n%s", d)
	}
	// nfdrop_packet_size_bytes: per class, one observation per packet of
	// its IP datagram length.
	for _, c := range []string{"teardown", "handshake", "probe", "other", "fragment", "malformed"} {
		h := histogram(sc, "nfdrop_packet_size_bytes", map[string]string{"group": e2eGroup, "class": c})
		if h == nil {
			t.Errorf("nfdrop_packet_size_bytes{group=%q,class=%q} missing", e2eGroup, c)
			continue
		}
		if got := (lab.SizeStats{Count: float64(h.GetSampleCount()), Sum: h.GetSampleSum()}); got != wantSizes[c] {
			t.Errorf("nfdrop_packet_size_bytes{class=%q}: count/sum %v/%v, want %v/%v", c, got.Count, got.Sum, wantSizes[c].Count, wantSizes[c].Sum)
		}
	}
	if up, ok := sc.Value("nfdrop_up", map[string]string{"group": e2eGroup}); !ok || up != 1 {
		t.Errorf("nfdrop_up{group=%q} = %v (present %v), want 1", e2eGroup, up, ok)
	}

	if !t.Failed() {
		t.Logf("%d series exact, %v packets counted, %v lost, log rule counter %d", len(want), lab.Sum(got), lost, counter)
	}

	e2elab.StopExporter(t, exp, exited)
}

// histogram returns the histogram of name whose labels include want.
func histogram(sc lab.Scrape, name string, want map[string]string) *dto.Histogram {
	mf := sc[name]
	if mf == nil {
		return nil
	}
next:
	for _, m := range mf.GetMetric() {
		l := map[string]string{}
		for _, lp := range m.GetLabel() {
			l[lp.GetName()] = lp.GetValue()
		}
		for k, v := range want {
			if l[k] != v {
				continue next
			}
		}
		return m.GetHistogram()
	}
	return nil
}
