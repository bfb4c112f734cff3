//go:build linux

package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop-lab/e2e"
	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop-lab/e2e/e2elab"
	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop-lab/lab"
)

// The self-audit end-to-end tests run the real exporter in the lab's server
// namespace with each shipped ruleset and check what it reads from the
// kernel against the kernel's own tools:
//   - nfdrop_log_rule_packets_total equals the log rule's counter as
//     iptables -nvxL / nft -j list ruleset print it, exactly, per family;
//   - nfdrop_log_rules is 0 while the rule is flushed and back when the
//     ruleset is restored;
//   - nfdrop_conntrack_stat_invalid_total rises by exactly the number of
//     INVALID packets sent, and equals conntrack -S (summed over CPUs).
//
// They need root and NFDROP_E2E=1:
//
//	NFDROP_E2E=1 go test -run Audit -v ./cmd/nfdrop_exporter/

func TestAuditE2E(t *testing.T) {
	e2e.Require(t, "ip", "iptables-restore", "ip6tables-restore", "iptables", "ip6tables", "nft", "conntrack")
	bin := e2e.Binary(t)
	fwDir, err := filepath.Abs(filepath.Join("..", "..", "deploy", "firewall"))
	if err != nil {
		t.Fatal(err)
	}
	for i, rs := range []lab.Ruleset{lab.Iptables, lab.Nftables} {
		t.Run(string(rs), func(t *testing.T) {
			runAuditE2E(t, bin, fwDir, fmt.Sprintf("nfaud%d-%d", os.Getpid()%100000, i), rs)
		})
	}
}

// auditChain is one nfdrop_log_rule_packets_total series.
type auditChain struct{ family, table, chain string }

// kernelRuleCounters reads the log rules' packet counters with the
// firewall's own tools, per series the exporter must expose.
func kernelRuleCounters(t *testing.T, l *lab.Lab, rs lab.Ruleset) map[auditChain]float64 {
	t.Helper()
	out := map[auditChain]float64{}
	switch rs {
	case lab.Iptables:
		for fam, tool := range map[string]string{"ip": "iptables", "ip6": "ip6tables"} {
			s, err := l.Run(l.Server, tool, "-nvxL", "INPUT")
			if err != nil {
				t.Fatal(err)
			}
			n, err := nflogPackets(s)
			if err != nil {
				t.Fatalf("%s -nvxL INPUT: %v\n%s", tool, err, s)
			}
			out[auditChain{fam, "filter", "INPUT"}] = n
		}
	case lab.Nftables:
		n, err := l.RuleCounter(0) // nft -j list ruleset
		if err != nil {
			t.Fatal(err)
		}
		out[auditChain{"inet", "nfdrop_filter", "input"}] = float64(n)
	}
	return out
}

// nflogPackets returns the pkts column of the one NFLOG line of
// iptables -nvxL output.
func nflogPackets(s string) (float64, error) {
	var n float64
	found := 0
	for _, line := range strings.Split(s, "\n") {
		f := strings.Fields(line)
		if len(f) > 2 && f[2] == "NFLOG" {
			v, err := strconv.ParseUint(f[0], 10, 64)
			if err != nil {
				return 0, err
			}
			n += float64(v)
			found++
		}
	}
	if found != 1 {
		return 0, fmt.Errorf("%d NFLOG rules, want 1", found)
	}
	return n, nil
}

// exportedRuleCounters returns the nfdrop_log_rule_packets_total series of
// group 0.
func exportedRuleCounters(s lab.Scrape) map[auditChain]float64 {
	return exportedPerChain(s, "nfdrop_log_rule_packets_total", "0")
}

// exportedFirewallDrops returns the nfdrop_firewall_drops_total series.
func exportedFirewallDrops(s lab.Scrape) map[auditChain]float64 {
	return exportedPerChain(s, "nfdrop_firewall_drops_total", "")
}

// exportedPerChain returns the counter name by family, table and chain, for
// the series of group ("" for every series).
func exportedPerChain(s lab.Scrape, name, group string) map[auditChain]float64 {
	out := map[auditChain]float64{}
	for _, m := range s[name].GetMetric() {
		l := map[string]string{}
		for _, p := range m.GetLabel() {
			l[p.GetName()] = p.GetValue()
		}
		if group == "" || l["group"] == group {
			out[auditChain{l["family"], l["table"], l["chain"]}] = m.GetCounter().GetValue()
		}
	}
	return out
}

// checkMetricsWithPromtool runs Prometheus' own linter on a live scrape,
// every part on: promtool check metrics flags bad names (a counter's name
// that holds "counter", missing _total, ...) and help.
func checkMetricsWithPromtool(t *testing.T, client *http.Client, url string) {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(e2e.Tool(t, "promtool"), "check", "metrics")
	cmd.Stdin = bytes.NewReader(body)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

// conntrackInvalid sums invalid= over the CPUs of conntrack -S in the
// server namespace.
func conntrackInvalid(t *testing.T, l *lab.Lab) float64 {
	t.Helper()
	out, err := l.Run(l.Server, "conntrack", "-S")
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, f := range strings.Fields(out) {
		if v, ok := strings.CutPrefix(f, "invalid="); ok {
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				t.Fatalf("conntrack -S: %q", f)
			}
			sum += float64(n)
		}
	}
	return sum
}

func runAuditE2E(t *testing.T, bin, fwDir, prefix string, rs lab.Ruleset) {
	l := e2elab.NewLab(t, prefix, rs, fwDir)
	wantRules := map[lab.Ruleset]float64{lab.Iptables: 2, lab.Nftables: 1}[rs] // iptables: one per family

	// max-age 0: every scrape reads the kernel, so that the test needs no sleeps.
	exp, exited, _ := e2elab.StartExporter(t, l, bin, "--nflog.group=0", "--web.listen-address=127.0.0.1:9786",
		"--collector.rule-audit.max-age=0s")
	client := lab.HTTPClient(l.Server, 2*time.Second)
	ctx := context.Background()
	scrape := func() lab.Scrape {
		t.Helper()
		s, err := lab.FetchMetrics(ctx, client, "http://127.0.0.1:9786/metrics")
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	value := func(s lab.Scrape, name string, labels map[string]string) float64 {
		t.Helper()
		v, ok := s.Value(name, labels)
		if !ok {
			t.Fatalf("%s%v is not exposed", name, labels)
		}
		return v
	}
	g0 := map[string]string{"group": "0"}
	poll := func(what string, ok func(lab.Scrape) bool) lab.Scrape {
		t.Helper()
		return e2elab.Poll(t, l, exited, what, ok)
	}
	s := poll("nfdrop_up{group=\"0\"} == 1", func(s lab.Scrape) bool { v, ok := s.Value("nfdrop_up", g0); return ok && v == 1 })

	// Before any traffic: the rules are found, counted, at 0.
	if got := value(s, "nfdrop_log_rules", g0); got != wantRules {
		t.Errorf("nfdrop_log_rules = %v, want %v", got, wantRules)
	}
	if got := value(s, "nfdrop_log_rules_uncounted", g0); got != 0 {
		t.Errorf("nfdrop_log_rules_uncounted = %v, want 0", got)
	}
	for _, name := range []string{"nfdrop_log_rule_audit_success", "nfdrop_conntrack_stats_success"} {
		if got := value(s, name, nil); got != 1 {
			t.Errorf("%s = %v, want 1", name, got)
		}
	}
	invalidBefore := value(s, "nfdrop_conntrack_stat_invalid_total", nil)
	if k := conntrackInvalid(t, l); k != invalidBefore {
		t.Errorf("before traffic: nfdrop_conntrack_stat_invalid_total %v, conntrack -S invalid %v", invalidBefore, k)
	}

	// The crafted set, both families.
	var wantInvalid, wantTotal float64
	for _, v6 := range []bool{false, true} {
		inv, val := e2elab.AuditSet(v6)
		for _, sc := range []lab.Scenario{inv, val} {
			if err := l.RunScenario(ctx, sc, 0, 0, nil); err != nil {
				t.Fatal(err)
			}
			wantTotal += float64(sc.Packets())
		}
		wantInvalid += float64(inv.Packets())
	}
	// Every packet reached the log rule and the exporter.
	s = poll("all packets counted", func(s lab.Scrape) bool { return lab.Sum(s.Packets("0")) == wantTotal })

	kernel := kernelRuleCounters(t, l, rs)
	var kernelSum float64
	for _, n := range kernel {
		kernelSum += n
	}
	if kernelSum != wantTotal {
		t.Errorf("kernel rule counters %v sum to %v, want the %v packets sent", kernel, kernelSum, wantTotal)
	}
	got := exportedRuleCounters(s)
	if fmt.Sprint(got) != fmt.Sprint(kernel) {
		t.Errorf("nfdrop_log_rule_packets_total{group=\"0\"} = %v, kernel's counters %v", got, kernel)
	}
	// The shipped rulesets log every drop, and count both: the firewall's
	// drop counters are the log rules' per chain, and every drop point is
	// counted.
	if drops := exportedFirewallDrops(s); fmt.Sprint(drops) != fmt.Sprint(kernel) {
		t.Errorf("nfdrop_firewall_drops_total = %v, want the log rules' counters %v", drops, kernel)
	}
	uncounted := s["nfdrop_firewall_drop_rules_uncounted"].GetMetric()
	if len(uncounted) == 0 {
		t.Error("no nfdrop_firewall_drop_rules_uncounted series: every table with drop points has one")
	}
	for _, m := range uncounted {
		if v := m.GetGauge().GetValue(); v != 0 {
			t.Errorf("nfdrop_firewall_drop_rules_uncounted%v = %v, want 0: every drop point of the shipped ruleset has a counter", m.GetLabel(), v)
		}
	}
	checkMetricsWithPromtool(t, client, "http://127.0.0.1:9786/metrics")

	invalidAfter := value(s, "nfdrop_conntrack_stat_invalid_total", nil)
	k := conntrackInvalid(t, l)
	if d := invalidAfter - invalidBefore; d != wantInvalid {
		t.Errorf("nfdrop_conntrack_stat_invalid_total rose by %v, want %v (the INVALID packets sent)", d, wantInvalid)
	}
	if k != invalidAfter {
		t.Errorf("nfdrop_conntrack_stat_invalid_total %v, conntrack -S invalid %v", invalidAfter, k)
	}
	limit, err := l.Run(l.Server, "cat", "/proc/sys/net/netfilter/nf_conntrack_max")
	if err != nil {
		t.Fatal(err)
	}
	if got := value(s, "nfdrop_conntrack_entries_limit", nil); strconv.FormatFloat(got, 'f', -1, 64) != strings.TrimSpace(limit) {
		t.Errorf("nfdrop_conntrack_entries_limit %v, nf_conntrack_max %s", got, limit)
	}
	if got := value(s, "nfdrop_conntrack_entries", nil); got < 1 {
		t.Errorf("nfdrop_conntrack_entries %v, want at least the scrape's own connection", got)
	}
	t.Logf("%s: exported rule counters %v = kernel %v (%v packets sent); invalid +%v (sent %v INVALID), conntrack -S invalid %v = exported %v",
		rs, got, kernel, wantTotal, invalidAfter-invalidBefore, wantInvalid, k, invalidAfter)

	// The rule vanishes (a firewall reload without it), then comes back.
	e2elab.FlushLogRule(t, l, rs)
	s = scrape()
	if got := value(s, "nfdrop_log_rules", g0); got != 0 {
		t.Errorf("after flushing the rule: nfdrop_log_rules = %v, want 0", got)
	}
	if got := exportedRuleCounters(s); len(got) != 0 {
		t.Errorf("after flushing the rule: nfdrop_log_rule_packets_total still %v", got)
	}
	if got := value(s, "nfdrop_up", g0); got != 1 {
		t.Errorf("after flushing the rule: nfdrop_up = %v, want 1 (the group is still bound)", got)
	}
	if err := l.Apply(rs, fwDir); err != nil {
		t.Fatal(err)
	}
	s = scrape()
	if got := value(s, "nfdrop_log_rules", g0); got != wantRules {
		t.Errorf("after restoring the ruleset: nfdrop_log_rules = %v, want %v", got, wantRules)
	}
	if got, want := exportedRuleCounters(s), kernelRuleCounters(t, l, rs); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("after restoring: nfdrop_log_rule_packets_total %v, kernel %v", got, want)
	}

	e2elab.StopExporter(t, exp, exited)
}

// TestAuditLegacyE2E: an iptables-legacy NFLOG rule is invisible to
// nf_tables. The exporter reports no rule (never a guessed one), says once at
// its first read that no nf_tables rule feeds the group and that
// iptables-legacy rules are invisible to nf_tables, and, once packets arrive
// while it sees none, says in exactly one more line that the rule is most
// likely iptables-legacy.
func TestAuditLegacyE2E(t *testing.T) {
	e2e.Require(t, "ip", "iptables-restore", "ip6tables-restore", "iptables", "ip6tables", "nft", "conntrack")
	if _, err := exec.LookPath("iptables-legacy"); err != nil {
		t.Fatalf("NFDROP_E2E=1 but iptables-legacy is missing (apt-get install iptables): %v", err)
	}
	bin := e2e.Binary(t)
	l, err := lab.New(fmt.Sprintf("nfaul%d", os.Getpid()%100000))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("lab close: %v", err)
		}
	})
	if _, err := l.Run(l.Server, "iptables-legacy", "-A", "INPUT", "-p", "udp", "-j", "NFLOG", "--nflog-group", "0"); err != nil {
		t.Fatal(err)
	}
	_, exited, logs := e2elab.StartExporter(t, l, bin, "--nflog.group=0", "--web.listen-address=127.0.0.1:9786", "--collector.rule-audit.max-age=0s")
	ctx := context.Background()
	g0 := map[string]string{"group": "0"}
	poll := func(what string, ok func(lab.Scrape) bool) lab.Scrape {
		t.Helper()
		return e2elab.Poll(t, l, exited, what, ok)
	}
	s := poll("bound", func(s lab.Scrape) bool { v, ok := s.Value("nfdrop_up", g0); return ok && v == 1 })
	if v, ok := s.Value("nfdrop_log_rules", g0); !ok || v != 0 {
		t.Errorf("legacy rule only: nfdrop_log_rules = %v (present %v), want 0", v, ok)
	}
	const notice = "iptables-legacy rules are invisible to nf_tables"
	if n := strings.Count(logs.String(), notice); n != 1 {
		t.Errorf("%d notices that no nf_tables rule feeds the group, want 1 before any packet:\n%s", n, logs.String())
	}
	const warning = "Packets arrive on the group but no nf_tables rule logs to it"
	if strings.Contains(logs.String(), warning) {
		t.Fatalf("warned of arriving packets before any packet arrived:\n%s", logs.String())
	}
	// The margin between "no rule seen" and an arrival that counts.
	time.Sleep(1500 * time.Millisecond)
	_, val := e2elab.AuditSet(false)
	if err := l.RunScenario(ctx, val, 0, 0, nil); err != nil {
		t.Fatal(err)
	}
	udp := float64(val.Sends[2].Count)
	poll("the legacy rule's datagrams counted", func(s lab.Scrape) bool { return lab.Sum(s.Packets("0")) == udp })
	s = poll("the warning", func(lab.Scrape) bool { return strings.Contains(logs.String(), warning) })
	for range 3 { // later reads do not repeat it
		s = poll("scrape", func(lab.Scrape) bool { return true })
	}
	if n := strings.Count(logs.String(), warning); n != 1 {
		t.Errorf("%d warnings of packets arriving without a rule, want 1:\n%s", n, logs.String())
	}
	if n := strings.Count(logs.String(), notice); n != 1 {
		t.Errorf("%d notices that no nf_tables rule feeds the group, want still 1:\n%s", n, logs.String())
	}
	if v, ok := s.Value("nfdrop_log_rules", g0); !ok || v != 0 {
		t.Errorf("nfdrop_log_rules = %v (present %v), want 0: a legacy rule is never guessed", v, ok)
	}
	if got := exportedRuleCounters(s); len(got) != 0 {
		t.Errorf("nfdrop_log_rule_packets_total %v with a legacy rule only, want none", got)
	}
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, "iptables-legacy") {
			t.Logf("log line: %s", line)
		}
	}
}
