//go:build linux

// Package e2elab runs the real exporter in a lab namespace pair for end-to-end
// tests: it starts the lab with the shipped iptables ruleset, the exporter in
// its server namespace, and reads back what the exporter and the kernel counted.
package e2elab

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop-lab/e2e"
	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop-lab/lab"
)

// Group is the NFLOG group the shipped rulesets log to, which an ExporterLab reads.
const Group = "0"

func ConntrackBinary(t *testing.T) string {
	t.Helper()
	e2e.Require(t, "ip", "iptables-restore", "ip6tables-restore", "iptables-save", "ip6tables-save", "conntrack", "sysctl", "nmap")
	bin := e2e.Binary(t)
	if out, _ := exec.Command(bin, "serve", "--help").CombinedOutput(); !strings.Contains(string(out), "--[no-]conntrack.correlate") {
		t.Fatal("the binary has no --conntrack.correlate flag: wire addConntrackFlags/build (conntrack_flags.go) into main.go")
	}
	return bin
}

// ExporterLab is a lab with the exporter running in its server namespace.
type ExporterLab struct {
	*lab.Lab
	T      *testing.T
	Exp    *exec.Cmd  // the exporter, in the server namespace
	Exited chan error // its exit status, once it ended
	Logs   *lab.SyncBuffer
	URL    string // its metrics, reached from the server namespace
}

func StartExporterLab(t *testing.T, bin, tag string, args ...string) *ExporterLab {
	t.Helper()
	fwDir, err := filepath.Abs(filepath.Join(e2e.Root(), "deploy", "firewall"))
	if err != nil {
		t.Fatal(err)
	}
	l := NewLab(t, fmt.Sprintf("nfdF-%s%d", tag, os.Getpid()%100000), lab.Iptables, fwDir)
	if err := l.PrepareTCP(); err != nil {
		t.Fatal(err)
	}
	c := &ExporterLab{Lab: l, T: t, URL: "http://127.0.0.1:9786/metrics"}
	args = append([]string{"--nflog.group=" + Group, "--web.listen-address=127.0.0.1:9786", "--log.level=debug"}, args...)
	c.Exp, c.Exited, c.Logs = StartExporter(t, l, bin, args...)
	return c
}

// StartExporter starts the exporter bin with args in l's server namespace;
// exited receives its exit status, and its output is logged if the test fails.
func StartExporter(t testing.TB, l *lab.Lab, bin string, args ...string) (exp *exec.Cmd, exited chan error, logs *lab.SyncBuffer) {
	t.Helper()
	logs = &lab.SyncBuffer{}
	exp, err := l.Start(l.Server, logs, logs, bin, args...)
	if err != nil {
		t.Fatal(err)
	}
	exited = make(chan error, 1)
	go func() { exited <- exp.Wait() }()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("exporter output:\n%s", logs.String())
		}
	})
	return exp, exited, logs
}

// StopExporter sends SIGTERM and expects a clean exit (status 0) within 10 s.
func StopExporter(t testing.TB, exp *exec.Cmd, exited <-chan error) {
	t.Helper()
	if err := exp.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("exporter exit after SIGTERM: %v, want status 0", err)
		}
	case <-time.After(10 * time.Second):
		t.Errorf("exporter did not exit within 10s of SIGTERM")
	}
}

// WaitUp polls the exporter's metrics until nfdrop_up is 1 for every group,
// and returns that scrape: nothing may be sent before (the accounting
// identity holds only from the bind on).
func WaitUp(t testing.TB, l *lab.Lab, exited <-chan error, groups ...string) lab.Scrape {
	t.Helper()
	return Poll(t, l, exited, fmt.Sprintf("nfdrop_up of groups %v", groups), func(sc lab.Scrape) bool {
		for _, g := range groups {
			if v, ok := sc.Value("nfdrop_up", map[string]string{"group": g}); !ok || v != 1 {
				return false
			}
		}
		return true
	})
}

// Poll scrapes the exporter in l's server namespace until ok holds, for at
// most 10 s, and returns that scrape; what names the condition in a failure.
func Poll(t testing.TB, l *lab.Lab, exited <-chan error, what string, ok func(lab.Scrape) bool) lab.Scrape {
	t.Helper()
	client := lab.HTTPClient(l.Server, 2*time.Second)
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case err := <-exited:
			t.Fatalf("exporter exited before %s: %v", what, err)
		default:
		}
		sc, err := lab.FetchMetrics(context.Background(), client, "http://127.0.0.1:9786/metrics")
		if err == nil && ok(sc) {
			return sc
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10s (last error %v)", what, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// FlushLogRule removes every rule of the INPUT chain of ruleset rs, the
// NFLOG rule with them: what a firewall reload that forgets it leaves.
func FlushLogRule(t testing.TB, l *lab.Lab, rs lab.Ruleset) {
	t.Helper()
	switch rs {
	case lab.Iptables:
		for _, tool := range []string{"iptables", "ip6tables"} {
			if _, err := l.Run(l.Server, tool, "-F", "INPUT"); err != nil {
				t.Fatal(err)
			}
		}
	case lab.Nftables:
		if _, err := l.Run(l.Server, "nft", "flush", "chain", "inet", "nfdrop_filter", "input"); err != nil {
			t.Fatal(err)
		}
	}
}

// NewLab creates the lab named prefix with the ruleset rs of fwDir applied,
// and removes it when the test ends.
func NewLab(t testing.TB, prefix string, rs lab.Ruleset, fwDir string) *lab.Lab {
	t.Helper()
	l, err := lab.New(prefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("lab close: %v", err)
		}
	})
	if err := l.Apply(rs, fwDir); err != nil {
		t.Fatal(err)
	}
	return l
}

// Scrape reads the exporter's metrics.
func (c *ExporterLab) Scrape() lab.Scrape {
	c.T.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	sc, err := lab.FetchMetrics(ctx, lab.HTTPClient(c.Server, 2*time.Second), c.URL)
	if err != nil {
		c.T.Fatal(err)
	}
	return sc
}

// waitReady waits until the group is bound and, if wantCT, conntrack is
// subscribed: nothing may be sent before (the accounting identity).
func (c *ExporterLab) WaitReady(wantCT bool) {
	c.T.Helper()
	client := lab.HTTPClient(c.Server, 2*time.Second)
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case err := <-c.Exited:
			c.T.Fatalf("exporter exited before becoming ready: %v", err)
		default:
		}
		sc, err := lab.FetchMetrics(context.Background(), client, c.URL)
		if err == nil {
			up, _ := sc.Value("nfdrop_up", map[string]string{"group": Group})
			ct, _ := sc.Value("nfdrop_conntrack_up", nil)
			if up == 1 && (!wantCT || ct == 1) {
				return
			}
		}
		if time.Now().After(deadline) {
			c.T.Fatalf("exporter not ready after 10s (last error %v)", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Totals is what the tests compare.
type Totals struct {
	Counter  uint64             // log rule counter
	Packets  float64            // sum(nfdrop_packets_total)
	Lost     float64            // nfdrop_messages_lost_total
	Teardown float64            // sum(nfdrop_packets_total{class="teardown"})
	Evidence map[string]float64 // nfdrop_teardown_evidence_total by evidence
	DelayN   float64            // histogram count
	DelaySum float64
	DelayIn  float64 // observations <= the window (le="120")
}

func (c *ExporterLab) Totals() Totals {
	c.T.Helper()
	n, err := c.RuleCounter(0)
	if err != nil {
		c.T.Fatal(err)
	}
	sc := c.Scrape()
	tt := Totals{Counter: n, Evidence: map[string]float64{}}
	pk := sc.Packets(Group)
	tt.Packets = lab.Sum(pk)
	for k, v := range pk {
		if k.Class == "teardown" {
			tt.Teardown += v
		}
	}
	tt.Lost, _ = sc.Value("nfdrop_messages_lost_total", map[string]string{"group": Group})
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
			if g == Group {
				tt.Evidence[ev] += m.GetCounter().GetValue()
			}
		}
	}
	if mf := sc["nfdrop_teardown_delay_seconds"]; mf != nil {
		for _, m := range mf.GetMetric() {
			h := m.GetHistogram()
			tt.DelayN += float64(h.GetSampleCount())
			tt.DelaySum += h.GetSampleSum()
			for _, b := range h.GetBucket() {
				if b.GetUpperBound() == 120 {
					tt.DelayIn += float64(b.GetCumulativeCount())
				}
			}
		}
	}
	return tt
}

func SumEvidence(m map[string]float64) float64 {
	var s float64
	for _, v := range m {
		s += v
	}
	return s
}

// settle polls until the log rule counter has not moved for quiet, the
// exporter accounts for every packet and (if correlating) every teardown
// drop has its evidence.
func (c *ExporterLab) Settle(correlating bool, quiet time.Duration) Totals {
	c.T.Helper()
	deadline := time.Now().Add(40 * time.Second)
	var last Totals
	lastChange := time.Now()
	for {
		tt := c.Totals()
		if tt.Counter != last.Counter {
			lastChange = time.Now()
		}
		last = tt
		done := tt.Packets+tt.Lost == float64(tt.Counter) && time.Since(lastChange) >= quiet
		if correlating {
			done = done && SumEvidence(tt.Evidence) == tt.Teardown
		}
		if done {
			return tt
		}
		if time.Now().After(deadline) {
			c.T.Fatalf("not settled after 40s: rule counter %d, packets %v, lost %v, teardown %v, evidence %v",
				tt.Counter, tt.Packets, tt.Lost, tt.Teardown, tt.Evidence)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func (c *ExporterLab) Stop() {
	c.T.Helper()
	StopExporter(c.T, c.Exp, c.Exited)
}

// runTCP runs one real-TCP recipe. The server port can still be held for a
// moment by the previous recipe's orphaned server socket (its peer's FIN was
// dropped, by design): retry the listen a few times.
func (c *ExporterLab) RunRecipe(r lab.TCPRecipe, port int, v6 bool) {
	c.T.Helper()
	for i := 0; ; i++ {
		err := c.RunTCP(context.Background(), r, port, v6, 500*time.Millisecond)
		if err == nil {
			return
		}
		if i == 10 || !strings.Contains(err.Error(), "address already in use") {
			c.T.Fatalf("%s to :%d: %v", r, port, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func (c *ExporterLab) AckScan(v6 bool) {
	c.T.Helper()
	args := []string{"-Pn", "-n", "-sA", "-p", "22", "--max-retries", "0", lab.ServerIPv4.String()}
	if v6 {
		args = append([]string{"-6"}, args[:len(args)-1]...)
		args = append(args, lab.ServerIPv6.String())
	}
	if out, err := c.Run(c.Client, "nmap", args...); err != nil {
		c.T.Fatalf("nmap: %v\n%s", err, out)
	}
}
