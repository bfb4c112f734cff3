//go:build linux

package prometheus

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop-lab/e2e"
	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop-lab/e2e/e2elab"
	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop-lab/lab"
	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop-lab/lab/craft"
	yaml "go.yaml.in/yaml/v2"
)

// TestPrometheusE2E proves the shipped dashboard and rules against real
// Prometheus servers (Debian's package) scraping the real exporter in the
// lab:
//
//	sudo NFDROP_E2E=1 go test -run Prometheus -v ./deploy/prometheus/
//
// The exporter reads NFLOG group 0 and the eBPF source (--ebpf.enable):
// every drop of the lab's ruleset is logged, so both groups see the same
// packets, and everything below is checked for each of them.
//
// Two servers scrape the exporter every second inside the lab's server
// namespace, one with native histograms enabled (it ingests only their
// native form) and one without (classic buckets only), so that every
// "native or classic" query is exercised both ways. Both load the shipped
// deploy/prometheus/rules.yml and alerts.yml unchanged (threshold 10/s,
// for 10m) and evaluate them every second. Scenario:
//
//  1. teardown storm: crafted late FIN/ACK, RST and ACK,RST to 443 and 80
//     (IPv4 and IPv6) plus one real late RST, ~6000/s for 10s; during and
//     after it the NfdropNonTeardownDropsHigh expression must be empty and
//     the alert absent from ALERTS, while the teardown rate is far above
//     the threshold;
//  2. SYN scan: one SYN to each of 6000 closed ports at 600/s, then a few
//     probes (NULL/XMAS/SYN+FIN) and UDP/ICMP; the expression must become
//     true (ALERTS shows it pending: "for: 10m" is not waited out);
//  3. every dashboard query, with the variables substituted as Grafana
//     would for group 0 and for group ebpf, returns data on both servers
//     (for ebpf, the queries of the rule audit, which it has no rule for,
//     return none); every recording rule has series; every variable's
//     label_values() finds the lab's values, both groups among them.
func TestPrometheusE2E(t *testing.T) {
	e2e.Require(t, "ip", "iptables-restore", "ip6tables-restore", "iptables-save", "ip6tables-save", "conntrack", "sysctl", "prometheus")
	promBin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Fatal(err)
	}
	bin := e2e.Binary(t)
	root := e2e.Root()
	rulesFile := filepath.Join(root, "deploy", "prometheus", "rules.yml")
	alertsFile := filepath.Join(root, "deploy", "prometheus", "alerts.yml")
	dashFile := filepath.Join(root, "dashboards", "nfdrop.json")

	l := e2elab.NewLab(t, fmt.Sprintf("nfprom%d", os.Getpid()%100000), lab.Iptables, filepath.Join(root, "deploy", "firewall"))
	if err := l.PrepareTCP(); err != nil {
		t.Fatal(err)
	}

	var expLog lab.SyncBuffer
	exp, err := l.Start(l.Server, &expLog, &expLog, bin, "--nflog.group=0", "--ebpf.enable", "--web.listen-address=127.0.0.1:9786")
	if err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- exp.Wait() }()

	servers := []*promServer{
		{name: "native", port: 9090, native: true},
		{name: "classic", port: 9091},
	}
	for _, s := range servers {
		s.start(t, l, promBin, rulesFile, alertsFile)
	}
	defer func() {
		if t.Failed() {
			t.Logf("exporter output:\n%s", expLog.String())
			for _, s := range servers {
				t.Logf("prometheus %s output:\n%s", s.name, s.log.String())
			}
		}
	}()

	ctx := context.Background()
	// Traffic only once both servers scrape the bound exporter. Series that
	// first appear later are still born with their value at their first
	// scrape (rate() misses that first second); the counts are checked
	// exactly below, from the raw counters.
	for _, s := range servers {
		s.waitFor(t, `count by (job, instance) (nfdrop_up{job="nfdrop", group=~"0|ebpf"} == 1) == 2 and on(job, instance) up == 1`, 30*time.Second, exited)
	}

	alertExpr := alertExpr(t, alertsFile, "NfdropNonTeardownDropsHigh")
	const alertsQ = `ALERTS{alertname="NfdropNonTeardownDropsHigh"}`
	groups := []string{"0", "ebpf"}

	// 1. Teardown storm (60,000 packets, ten times the scan below): the key
	// alert stays silent.
	storm := teardownStorm()
	stormDone := make(chan error, 1)
	go func() {
		err := l.RunScenario(ctx, storm, 6000, 0, nil)
		if err == nil {
			err = l.RunScenario(ctx, lab.LateRST(false), 0, time.Second, nil)
		}
		stormDone <- err
	}()
	checks := 0
	var waitEnd time.Time
	for ; ; time.Sleep(time.Second) {
		select {
		case err := <-stormDone:
			if err != nil {
				t.Fatalf("teardown storm: %v", err)
			}
			// Keep checking until the last packets are scraped and the
			// rules evaluated several times over them.
			waitEnd = time.Now().Add(4 * time.Second)
		default:
		}
		for _, s := range servers {
			if r := s.query(t, alertExpr); len(r) != 0 {
				t.Errorf("%s: during the teardown storm the alert expression is true: %s", s.name, fmtResult(r))
			}
			if r := s.query(t, alertsQ); len(r) != 0 {
				t.Errorf("%s: during the teardown storm ALERTS has %s", s.name, fmtResult(r))
			}
		}
		checks++
		if !waitEnd.IsZero() && time.Now().After(waitEnd) {
			break
		}
		if checks > 60 {
			t.Fatal("teardown storm did not finish within 60s")
		}
	}
	stormEvidence := map[string]string{}
	for _, s := range servers {
		for _, g := range groups {
			td := s.query(t, `instance_group:nfdrop_packets_teardown:rate5m{group="`+g+`"}`)
			nt := s.query(t, `instance_group:nfdrop_packets_non_teardown:rate5m{group="`+g+`"}`)
			if len(td) != 1 || td[0].value() <= 10 {
				t.Errorf("%s: group %s: teardown rate5m after the storm = %s, want one series far above the 10/s threshold", s.name, g, fmtResult(td))
			}
			if len(nt) != 1 || nt[0].value() != 0 {
				t.Errorf("%s: group %s: non-teardown rate5m after the storm = %s, want exactly 0 (zero-filled, not absent)", s.name, g, fmtResult(nt))
			}
			stormEvidence[s.name+"/"+g] = fmt.Sprintf("teardown rate5m %s, non-teardown rate5m %s, alert expr empty and ALERTS empty in %d checks",
				fmtResult(td), fmtResult(nt), checks)
			t.Logf("after teardown storm (%s, group %s): %s", s.name, g, stormEvidence[s.name+"/"+g])
		}
	}

	// 2. SYN scan, then probes and UDP/ICMP: the key alert's expression
	// turns true and the alert goes pending.
	scanDone := make(chan error, 1)
	go func() {
		err := l.RunScenario(ctx, synScan(), 600, 0, nil)
		if err == nil {
			err = l.RunScenario(ctx, probesAndUDP(), 200, 0, nil)
		}
		scanDone <- err
	}()
	fired := map[string]string{}
	deadline := time.Now().Add(60 * time.Second)
	for len(fired) < len(servers) {
		if time.Now().After(deadline) {
			t.Fatalf("the alert expression never became true on all servers during the scan (true on %v)", fired)
		}
		time.Sleep(time.Second)
		for _, s := range servers {
			if fired[s.name] != "" {
				continue
			}
			// Both groups see the scan: the expression and the pending
			// alert, once for each.
			r := s.query(t, alertExpr)
			a := s.query(t, alertsQ)
			if len(r) == len(groups) && len(a) == len(groups) {
				fired[s.name] = fmt.Sprintf("alert expr %s, %s", fmtResult(r), fmtResult(a))
				t.Logf("during SYN scan (%s): %s", s.name, fired[s.name])
				var got []string
				for i := range r {
					if st := a[i].Metric["alertstate"]; st != "pending" {
						t.Errorf("%s: alertstate %q, want pending (for: 10m has not passed)", s.name, st)
					}
					if r[i].Metric["instance"] != "127.0.0.1:9786" || r[i].Metric["job"] != "nfdrop" {
						t.Errorf("%s: alert expression labels %v, want job, instance and group kept", s.name, r[i].Metric)
					}
					got = append(got, r[i].Metric["group"])
				}
				if sort.Strings(got); strings.Join(got, ",") != strings.Join(groups, ",") {
					t.Errorf("%s: alert expression for groups %v, want %v", s.name, got, groups)
				}
			}
		}
	}
	if err := <-scanDone; err != nil {
		t.Fatalf("scan: %v", err)
	}
	// Let the last packets be scraped and the rules see them.
	time.Sleep(4 * time.Second)

	// Prometheus holds the exact counts: every packet sent reached a series
	// (the storm's late RST included), by class.
	wantClass := map[string]float64{"teardown": float64(storm.Packets() + 1), "handshake": 6000, "probe": 150, "other": 300}
	for _, s := range servers {
		for _, g := range groups {
			got := map[string]float64{}
			for _, x := range s.query(t, `sum by (class) (nfdrop_packets_total{job="nfdrop", group="`+g+`"})`) {
				got[x.Metric["class"]] = x.value()
			}
			lost := s.query(t, `nfdrop_messages_lost_total{job="nfdrop", group="`+g+`"}`)
			if len(lost) != 1 || lost[0].value() != 0 {
				t.Errorf("%s: nfdrop_messages_lost_total{group=%q} = %s, want 0", s.name, g, fmtResult(lost))
			}
			for c, w := range wantClass {
				if got[c] != w {
					t.Errorf("%s: sum(nfdrop_packets_total{group=%q, class=%q}) = %v, want %v (all: %v)", s.name, g, c, got[c], w, got)
				}
			}
			t.Logf("%s: group %s: packets by class in Prometheus: %v", s.name, g, got)
		}
	}

	// 3a. Every dashboard query returns data.
	scrape, err := lab.FetchMetrics(ctx, lab.HTTPClient(l.Server, 5*time.Second), "http://127.0.0.1:9786/metrics")
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range groups {
		vars := dashVars(g)
		queries := dashboardQueries(t, dashFile, vars)
		if len(queries) < 15 {
			t.Fatalf("%d dashboard queries found, want >= 15", len(queries))
		}
		for _, s := range servers {
			for _, q := range queries {
				t.Run(s.name+"/group-"+g+"/"+q.panel+"/"+q.ref, func(t *testing.T) {
					if missing := missingFamilies(q.expr, scrape); len(missing) > 0 {
						if evidenceOnly(missing) {
							t.Skipf("this exporter build exposes no %v (teardown evidence): panel not checked", missing)
						}
						t.Fatalf("the exporter exposes no %v; the dashboard cannot show it", missing)
					}
					r := s.query(t, q.expr)
					if g == "ebpf" && ruleAuditOnly(q.expr) {
						// The rule audit has only NFLOG groups.
						if len(r) != 0 {
							t.Fatalf("the ebpf group has no log rule, yet\n%s\nreturns %s", q.expr, fmtResult(r))
						}
						return
					}
					if len(r) == 0 {
						t.Fatalf("no data for\n%s", q.expr)
					}
					t.Logf("%s", fmtResult(r))
				})
			}
			// The native server must really answer histogram panels from
			// native histograms, the classic one from buckets.
			hm := s.query(t, substitute(`sum(rate(nfdrop_packet_size_bytes{job=~"$job", instance=~"$instance", group=~"$group"}[$__rate_interval]))`, vars))
			if got := len(hm) == 1 && hm[0].Histogram != nil; got != s.native {
				t.Errorf("%s: group %s: native packet-size histogram present = %v, want %v", s.name, g, got, s.native)
			}
		}
	}

	// 3b. Every variable finds the lab's values.
	for _, v := range dashboardVariables(t, dashFile) {
		for _, s := range servers {
			vals := s.labelValues(t, v.label, substitute(v.match, dashVars("0")))
			for _, want := range v.want {
				if !contains(vals, want) {
					t.Errorf("%s: variable %s = label_values(%s, %s) -> %v, want %q among them", s.name, v.name, v.match, v.label, vals, want)
				}
			}
		}
	}

	// 3c. Every recording rule produces series.
	for _, rec := range recordNames(t, rulesFile) {
		for _, s := range servers {
			t.Run(s.name+"/"+rec, func(t *testing.T) {
				if strings.Contains(rec, ":nfdrop_teardown_evidence:") && scrape["nfdrop_teardown_evidence_total"] == nil {
					t.Skip("this exporter build exposes no nfdrop_teardown_evidence_total: rule not checked")
				}
				r := s.query(t, rec)
				if len(r) == 0 {
					t.Fatalf("recording rule %s has no series", rec)
				}
				t.Logf("%s", fmtResult(r))
			})
		}
	}
	if !t.Failed() {
		t.Logf("EVIDENCE storm: %v", stormEvidence)
		t.Logf("EVIDENCE scan: %v", fired)
	}
}

// dashVars are the lab's values of the dashboard variables with group
// selected, substituted the way Grafana formats a single selected value for
// a regex matcher. The ebpf group's series have no prefix: its Prefix
// variable offers none, and All (".*") matches the empty one.
func dashVars(group string) map[string]string {
	prefix := "denied"
	if group == "ebpf" {
		prefix = ".*"
	}
	return map[string]string{
		"$__rate_interval": "1m",
		"$__range":         "10m",
		"$job":             "nfdrop",
		"$instance":        `127\\.0\\.0\\.1:9786`,
		"$group":           group,
		"$prefix":          prefix,
	}
}

func substitute(expr string, vars map[string]string) string {
	// Longest first: $__rate_interval before anything shorter.
	keys := make([]string, 0, len(vars))
	for k := range vars {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return len(keys[i]) > len(keys[j]) })
	for _, k := range keys {
		expr = strings.ReplaceAll(expr, k, vars[k])
	}
	return expr
}

// ruleAuditOnly reports whether every metric a query reads is one of the
// rule audit's (nfdrop_log_rule*), which only NFLOG groups have.
func ruleAuditOnly(expr string) bool {
	ms := familyRE.FindAllStringSubmatch(expr, -1)
	for _, m := range ms {
		if !strings.HasPrefix(m[1], "nfdrop_log_rule") {
			return false
		}
	}
	return len(ms) > 0
}

type dashQuery struct{ panel, ref, expr string }

func dashboardQueries(t *testing.T, file string, vars map[string]string) []dashQuery {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	type target struct{ RefID, Expr string }
	type panel struct {
		Title   string
		Targets []target
		Panels  []struct {
			Title   string
			Targets []target
		}
	}
	var d struct{ Panels []panel }
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	var out []dashQuery
	add := func(title string, ts []target) {
		for _, tg := range ts {
			out = append(out, dashQuery{title, tg.RefID, substitute(tg.Expr, vars)})
		}
	}
	for _, p := range d.Panels {
		add(p.Title, p.Targets)
		for _, c := range p.Panels {
			add(c.Title, c.Targets)
		}
	}
	return out
}

type dashVariable struct {
	name, match, label string
	want               []string
}

var labelValuesRE = regexp.MustCompile(`^label_values\((.+), (\w+)\)$`)

func dashboardVariables(t *testing.T, file string) []dashVariable {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Templating struct {
			List []struct {
				Name, Type string
				Query      json.RawMessage
			}
		}
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{"job": {"nfdrop"}, "instance": {"127.0.0.1:9786"}, "group": {"0", "ebpf"}, "prefix": {"denied"}}
	var out []dashVariable
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		var q struct{ Query string }
		if err := json.Unmarshal(v.Query, &q); err != nil {
			_ = json.Unmarshal(v.Query, &q.Query)
		}
		m := labelValuesRE.FindStringSubmatch(q.Query)
		if m == nil || want[v.Name] == nil {
			t.Errorf("variable %s: query %q is not label_values(selector, label) of a known variable", v.Name, q.Query)
			continue
		}
		out = append(out, dashVariable{v.Name, m[1], m[2], want[v.Name]})
	}
	if len(out) != 4 {
		t.Errorf("%d query variables, want job, instance, group, prefix", len(out))
	}
	return out
}

func alertExpr(t *testing.T, file, alert string) string {
	t.Helper()
	var f struct {
		Groups []struct {
			Rules []struct{ Alert, Expr string }
		}
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			if r.Alert == alert {
				return r.Expr
			}
		}
	}
	t.Fatalf("alert %s not in %s", alert, file)
	return ""
}

func recordNames(t *testing.T, file string) []string {
	t.Helper()
	var f struct {
		Groups []struct {
			Rules []struct{ Record string }
		}
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			if r.Record != "" {
				out = append(out, r.Record)
			}
		}
	}
	if len(out) == 0 {
		t.Fatalf("no recording rules in %s", file)
	}
	return out
}

// familyRE finds exporter metric names; a name inside a recording rule's
// name (level:nfdrop_...:ops) is preceded by ':' and is not one.
var familyRE = regexp.MustCompile(`(?:^|[^:a-z0-9_])(nfdrop_[a-z0-9_]+)`)

// missingFamilies lists the metric families a query reads that the
// exporter does not expose at all (a histogram counts as exposed through its
// name).
func missingFamilies(expr string, s lab.Scrape) []string {
	var out []string
	for _, m := range familyRE.FindAllStringSubmatch(expr, -1) {
		n := m[1]
		base := strings.TrimSuffix(n, "_bucket")
		if s[n] == nil && s[base] == nil {
			out = append(out, n)
		}
	}
	return out
}

// evidenceOnly reports whether all missing families belong to the
// teardown-evidence feature (conntrack correlation), which a build
// may lack; everything else the dashboard reads is the core contract.
func evidenceOnly(missing []string) bool {
	for _, n := range missing {
		if !strings.HasPrefix(n, "nfdrop_teardown_") && !strings.HasPrefix(n, "nfdrop_conntrack_") {
			return false
		}
	}
	return true
}

// teardownStorm is the problem's deny log at scale: late FIN/ACK, RST and
// ACK,RST of visitors to 443 and 80, over both families. Every one of them
// is INVALID for conntrack and hits the log rule.
func teardownStorm() lab.Scenario {
	s := lab.Scenario{Name: "teardown-storm"}
	for _, v6 := range []bool{false, true} {
		src, dst := lab.ClientIPv4, lab.ServerIPv4
		if v6 {
			src, dst = lab.ClientIPv6, lab.ServerIPv6
		}
		for i, k := range []struct {
			flags uint8
			port  uint16
			n     int
		}{
			{craft.ACK | craft.FIN, 443, 15000},
			{craft.RST, 443, 6000},
			{craft.ACK | craft.RST, 443, 3000},
			{craft.ACK | craft.FIN, 80, 6000},
		} {
			s.Sends = append(s.Sends, lab.Send{
				Desc: fmt.Sprintf("late flags %#x to %d", k.flags, k.port),
				Packet: craft.Packet{Src: src, Dst: dst, Proto: craft.ProtoTCP, SrcPort: uint16(41000 + i), DstPort: k.port,
					Flags: k.flags, Window: 254, Seq: 7919, Ack: 104729},
				Count: k.n,
			})
		}
	}
	return s
}

// synScan is one SYN to each of 6000 closed ports (1024-7023: none of them
// is 80 or 443, which the ruleset accepts).
func synScan() lab.Scenario {
	s := lab.Scenario{Name: "syn-scan"}
	for p := 1024; p < 7024; p++ {
		s.Sends = append(s.Sends, lab.Send{
			Desc: fmt.Sprintf("SYN to %d", p),
			Packet: craft.Packet{Src: lab.ClientIPv4, Dst: lab.ServerIPv4, Proto: craft.ProtoTCP, SrcPort: 52000,
				DstPort: uint16(p), Flags: craft.SYN, Window: 1024, Seq: uint32(p)},
			Count: 1,
		})
	}
	return s
}

// probesAndUDP feeds the probe, UDP/ICMP and flags panels.
func probesAndUDP() lab.Scenario {
	tcp := func(flags uint8, port uint16, n int) lab.Send {
		return lab.Send{Desc: fmt.Sprintf("flags %#x to %d", flags, port), Count: n,
			Packet: craft.Packet{Src: lab.ClientIPv4, Dst: lab.ServerIPv4, Proto: craft.ProtoTCP, SrcPort: 52001, DstPort: port, Flags: flags}}
	}
	udp := func(port uint16, n int) lab.Send {
		return lab.Send{Desc: fmt.Sprintf("UDP to %d", port), Count: n,
			Packet: craft.Packet{Src: lab.ClientIPv4, Dst: lab.ServerIPv4, Proto: craft.ProtoUDP, SrcPort: 52002, DstPort: port, Payload: []byte("x")}}
	}
	return lab.Scenario{Name: "probes-udp", Sends: []lab.Send{
		tcp(0, 443, 50), // NULL
		tcp(craft.URG|craft.PSH|craft.FIN, 22, 50), // XMAS
		tcp(craft.SYN|craft.FIN, 443, 50),
		udp(53, 100),
		udp(123, 100),
		{Desc: "ICMP echo", Count: 100, Packet: craft.Packet{Src: lab.ClientIPv4, Dst: lab.ServerIPv4, Proto: craft.ProtoICMP, SrcPort: 7}},
	}}
}

// promServer is one Prometheus server in the lab's server namespace.
type promServer struct {
	name   string
	port   int
	native bool
	log    lab.SyncBuffer
	client *http.Client
}

func (s *promServer) start(t *testing.T, l *lab.Lab, bin, rulesFile, alertsFile string) {
	t.Helper()
	dir := t.TempDir()
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 900ms
  evaluation_interval: 1s
rule_files:
  - %s
  - %s
scrape_configs:
  - job_name: nfdrop
    static_configs:
      - targets: ['127.0.0.1:9786']
`, rulesFile, alertsFile)
	cfgFile := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{
		"--config.file=" + cfgFile,
		"--storage.tsdb.path=" + filepath.Join(dir, "data"),
		fmt.Sprintf("--web.listen-address=127.0.0.1:%d", s.port),
		"--log.level=warn",
	}
	if s.native {
		// Prometheus 2.40-3.7; from 3.8 "scrape_native_histograms: true"
		// does the same (scrape-config.yml).
		args = append(args, "--enable-feature=native-histograms")
	}
	if _, err := l.Start(l.Server, &s.log, &s.log, bin, args...); err != nil {
		t.Fatal(err)
	}
	s.client = lab.HTTPClient(l.Server, 5*time.Second)
}

type promSample struct {
	Metric    map[string]string `json:"metric"`
	Value     []any             `json:"value"`
	Histogram []any             `json:"histogram"`
}

func (p promSample) value() float64 {
	if len(p.Value) != 2 {
		return -1
	}
	var f float64
	if s, ok := p.Value[1].(string); ok {
		_, _ = fmt.Sscan(s, &f)
	}
	return f
}

func (s *promServer) get(t *testing.T, path string, v url.Values, out any) error {
	t.Helper()
	resp, err := s.client.Get(fmt.Sprintf("http://127.0.0.1:%d%s?%s", s.port, path, v.Encode()))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	var env struct {
		Status string          `json:"status"`
		Error  string          `json:"error"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(b, &env); err != nil {
		return fmt.Errorf("%s: %v: %s", path, err, b)
	}
	if env.Status != "success" {
		return fmt.Errorf("%s %v: %s", path, v, env.Error)
	}
	return json.Unmarshal(env.Data, out)
}

// query runs an instant query; a query Prometheus rejects fails the test.
func (s *promServer) query(t *testing.T, q string) []promSample {
	t.Helper()
	var data struct {
		ResultType string       `json:"resultType"`
		Result     []promSample `json:"result"`
	}
	if err := s.get(t, "/api/v1/query", url.Values{"query": {q}}, &data); err != nil {
		t.Fatalf("%s: %v", s.name, err)
	}
	if data.ResultType != "vector" {
		t.Fatalf("%s: %q returned a %s, want a vector", s.name, q, data.ResultType)
	}
	return data.Result
}

func (s *promServer) labelValues(t *testing.T, label, match string) []string {
	t.Helper()
	var vals []string
	if err := s.get(t, "/api/v1/label/"+label+"/values", url.Values{"match[]": {match}}, &vals); err != nil {
		t.Fatalf("%s: %v", s.name, err)
	}
	return vals
}

// waitFor polls until q returns data.
func (s *promServer) waitFor(t *testing.T, q string, timeout time.Duration, exited <-chan error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		select {
		case err := <-exited:
			t.Fatalf("exporter exited: %v", err)
		default:
		}
		var data struct{ Result []promSample }
		err := s.get(t, "/api/v1/query", url.Values{"query": {q}}, &data)
		if err == nil && len(data.Result) > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %q still empty after %v (last error %v)", s.name, q, timeout, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// fmtResult renders a query result compactly for the evidence log.
func fmtResult(r []promSample) string {
	if len(r) == 0 {
		return "(empty)"
	}
	parts := make([]string, 0, len(r))
	for _, x := range r {
		keys := make([]string, 0, len(x.Metric))
		for k := range x.Metric {
			if k != "__name__" && k != "job" && k != "instance" {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		var ls []string
		for _, k := range keys {
			ls = append(ls, k+"="+x.Metric[k])
		}
		v := "?"
		switch {
		case x.Histogram != nil && len(x.Histogram) == 2:
			h, _ := x.Histogram[1].(map[string]any)
			v = fmt.Sprintf("native histogram count=%v", h["count"])
		case len(x.Value) == 2:
			v = fmt.Sprint(x.Value[1])
		}
		parts = append(parts, "{"+strings.Join(ls, ",")+"} "+v)
	}
	sort.Strings(parts)
	if len(parts) > 6 {
		parts = append(parts[:6], fmt.Sprintf("... %d series", len(r)))
	}
	return strings.Join(parts, "; ")
}

func contains(vs []string, v string) bool {
	for _, x := range vs {
		if x == v {
			return true
		}
	}
	return false
}

// TestPrometheusE2EUnprovenTeardown proves NfdropUnprovenTeardownDropsHigh
// and the evidence recording rules against a real Prometheus scraping the
// real exporter (conntrack correlation on) in the lab:
//
//	sudo NFDROP_E2E=1 go test -run PrometheusE2EUnproven -v ./cmd/nfdrop_exporter/
//
// The server loads rules.yml unchanged and a copy of alerts.yml whose
// unproven-teardown threshold is made reachable by lab traffic within
// seconds (see reachableAlerts): "> 10" becomes "> 1" and "for: 10m"
// becomes "for: 5s"; the rate window stays 5m. Scenario:
//
//  1. storm of real late teardown: real TCP connections (four workers, IPv4
//     and IPv6, ports 443 and 80) whose conntrack entries are deleted
//     before the client closes, so their FIN/ACK retransmissions and RSTs
//     are dropped with evidence destroyed. The proven teardown rate must
//     rise above the threshold while the alert expression stays empty and
//     ALERTS has no such alert;
//  2. nmap -sA from the lab client to 2001 ports the ruleset drops
//     (1000-3000; an ACK to 80/443 would be picked up by conntrack as NEW
//     and accepted): every packet is teardown-shaped with evidence none,
//     the expression turns true and the alert fires.
//
// The exporter also reads the eBPF source, which sees the same drops: the
// alert stays silent and then fires for group ebpf as for group 0. The
// conntrack lookup budget is raised so that both groups' lookups fit.
func TestPrometheusE2EUnprovenTeardown(t *testing.T) {
	bin := e2elab.ConntrackBinary(t)
	promBin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Fatalf("NFDROP_E2E=1 but the prometheus server is missing (apt-get install -y prometheus): %v", err)
	}
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	rulesFile := filepath.Join(root, "deploy", "prometheus", "rules.yml")
	shipped, err := os.ReadFile(filepath.Join(root, "deploy", "prometheus", "alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	alertsFile := filepath.Join(t.TempDir(), "alerts.yml")
	if err := os.WriteFile(alertsFile, []byte(reachableAlerts(t, string(shipped))), 0o644); err != nil {
		t.Fatal(err)
	}

	c := e2elab.StartExporterLab(t, bin, "prom", "--ebpf.enable", "--conntrack.lookups-per-second=1000")
	c.WaitReady(true)
	s := &promServer{name: "unproven", port: 9092}
	s.start(t, c.Lab, promBin, rulesFile, alertsFile)
	defer func() {
		if t.Failed() {
			t.Logf("prometheus output:\n%s", s.log.String())
		}
	}()
	s.waitFor(t, `nfdrop_conntrack_up{job="nfdrop"} == 1 and on(job, instance) nfdrop_up{group="0"} == 1 and on(job, instance) nfdrop_up{group="ebpf"} == 1`, 30*time.Second, c.Exited)

	expr := alertExpr(t, alertsFile, "NfdropUnprovenTeardownDropsHigh")
	const alertsQ = `ALERTS{alertname="NfdropUnprovenTeardownDropsHigh"}`
	const (
		provenQ     = `instance_group:nfdrop_teardown_evidence_proven:rate5m{group="0"}`
		unprovenQ   = `instance_group:nfdrop_teardown_evidence_unproven:rate5m{group="0"}`
		suspiciousQ = `instance_group:nfdrop_packets_suspicious:rate5m{group="0"}`
	)
	// The recording rules exist from their first evaluation on (zero-filled).
	for _, q := range []string{provenQ, unprovenQ, suspiciousQ} {
		s.waitFor(t, q, 30*time.Second, c.Exited)
	}
	one := func(q string) float64 {
		r := s.query(t, q)
		if len(r) != 1 {
			t.Fatalf("%s = %s, want exactly one series", q, fmtResult(r))
		}
		return r[0].value()
	}

	// 1. Storm of real late teardown.
	// One dropped packet per connection (RunTCP aborts the server side
	// right after the client's close, which ends the retransmissions):
	// 480 drops, a rate5m of 1.6/s.
	const workers, runs = 4, 120
	stormDone := make(chan error, workers)
	for w := 0; w < workers; w++ {
		go func(port int, v6 bool) {
			stormDone <- lateTeardownRuns(c.Lab, port, v6, runs)
		}([]int{443, 80}[w%2], w >= 2)
	}
	var maxProven float64
	checks, finished := 0, 0
	var waitEnd time.Time
	for ; ; time.Sleep(time.Second) {
		for done := false; !done; {
			select {
			case err := <-stormDone:
				if err != nil {
					t.Fatalf("late teardown storm: %v", err)
				}
				if finished++; finished == workers {
					// FIN/ACK retransmissions go on for seconds after the
					// last close; then a few more scrapes and evaluations.
					waitEnd = time.Now().Add(10 * time.Second)
				}
			default:
				done = true
			}
		}
		if r := s.query(t, expr); len(r) != 0 {
			t.Errorf("during the real late-teardown storm the alert expression is true: %s", fmtResult(r))
		}
		if r := s.query(t, alertsQ); len(r) != 0 {
			t.Errorf("during the real late-teardown storm ALERTS has %s", fmtResult(r))
		}
		if p := one(provenQ); p > maxProven {
			maxProven = p
		}
		checks++
		if !waitEnd.IsZero() && time.Now().After(waitEnd) {
			break
		}
		if checks > 180 {
			t.Fatal("late teardown storm did not finish within 180s")
		}
	}
	tt := c.Settle(true, 2*time.Second)
	if tt.Evidence["none"] != 0 || tt.Evidence["skipped"] != 0 {
		t.Errorf("real late teardown got evidence %v, want only destroyed/closing/established", tt.Evidence)
	}
	if maxProven <= 1 {
		t.Errorf("proven teardown rate5m peaked at %v, want above the test threshold 1/s (the storm must be big enough to fire if proven drops counted)", maxProven)
	}
	stormEv := fmt.Sprintf("%v teardown drops from %d real connections (evidence %v); %s peaked at %.3f, %s = %v, %s = %v; alert expr and ALERTS empty in all %d checks",
		tt.Teardown, workers*runs, tt.Evidence, provenQ, maxProven, unprovenQ, one(unprovenQ), suspiciousQ, one(suspiciousQ), checks)
	t.Logf("storm: %s", stormEv)
	before := tt

	// 2. nmap ACK scan of ports the ruleset drops, at 100-200 packets/s:
	// within the lookup budget (1000/s, both groups) every one is "none";
	// with the default budget (100/s) some would be "skipped".
	if out, err := c.Run(c.Client, "nmap", "-Pn", "-n", "-sA", "-p", "1000-3000", "--max-retries", "0",
		"--min-rate", "100", "--max-rate", "200", lab.ServerIPv4.String()); err != nil {
		t.Fatalf("nmap: %v\n%s", err, out)
	}
	scanTT := c.Settle(true, 2*time.Second)
	none := scanTT.Evidence["none"] - before.Evidence["none"]
	skipped := scanTT.Evidence["skipped"] - before.Evidence["skipped"]
	if none+skipped != 2001 || none <= 600 {
		t.Errorf("nmap -sA of 2001 ports added %v drops with evidence none and %v skipped, want 2001 in all and more than 600 none (evidence %v)", none, skipped, scanTT.Evidence)
	}
	var exprTrue, firing string
	deadline := time.Now().Add(60 * time.Second)
	for firing == "" {
		if time.Now().After(deadline) {
			t.Fatalf("after the ACK scan: alert expression %q, firing %q within 60s", exprTrue, firing)
		}
		time.Sleep(time.Second)
		// Once for each group: the NFLOG group and the eBPF source saw the scan.
		if r := s.query(t, expr); len(r) == 2 && exprTrue == "" {
			exprTrue = fmtResult(r)
			groups := map[string]bool{}
			for _, x := range r {
				groups[x.Metric["group"]] = true
				if x.Metric["job"] != "nfdrop" || x.Metric["instance"] != "127.0.0.1:9786" {
					t.Errorf("alert expression labels %v, want job, instance and group kept", x.Metric)
				}
			}
			if !groups["0"] || !groups["ebpf"] {
				t.Errorf("alert expression %s, want groups 0 and ebpf", exprTrue)
			}
		}
		if r := s.query(t, `ALERTS{alertname="NfdropUnprovenTeardownDropsHigh", alertstate="firing"}`); len(r) == 2 {
			firing = fmtResult(r)
		}
	}
	if ev := s.query(t, `nfdrop_teardown_evidence_total{group="ebpf", evidence="none"}`); len(ev) != 1 || ev[0].value() != scanTT.Evidence["none"] {
		t.Errorf("group ebpf: evidence none %s, group 0 %v: want equal", fmtResult(ev), scanTT.Evidence["none"])
	}
	scanEv := fmt.Sprintf("%v drops with evidence none, %v skipped; alert expr %s; ALERTS firing %s; %s = %v, %s = %v, %s = %v",
		none, skipped, exprTrue, firing, unprovenQ, one(unprovenQ), provenQ, one(provenQ), suspiciousQ, one(suspiciousQ))
	t.Logf("ACK scan: %s", scanEv)
	if r := s.query(t, `ALERTS{alertname="NfdropNonTeardownDropsHigh"}`); len(r) != 0 {
		t.Errorf("the ACK scan made the non-teardown alert %s", fmtResult(r))
	}
	if !t.Failed() {
		t.Logf("EVIDENCE storm: %s", stormEv)
		t.Logf("EVIDENCE scan: %s", scanEv)
	}
	c.Stop()
}

// reachableAlerts lowers NfdropUnprovenTeardownDropsHigh's threshold
// (UNPROVEN_TEARDOWN_PPS) from 10/s to 1/s and its "for"
// (UNPROVEN_TEARDOWN_FOR) from 10m to 5s, the same edit an operator makes
// in alerts.yml, so that lab traffic reaches it within seconds.
func reachableAlerts(t *testing.T, shipped string) string {
	t.Helper()
	const old = "nfdrop_up * 0\n          ) > 10\n        # UNPROVEN_TEARDOWN_FOR\n        for: 10m\n"
	const new = "nfdrop_up * 0\n          ) > 1\n        # UNPROVEN_TEARDOWN_FOR\n        for: 5s\n"
	if n := strings.Count(shipped, old); n != 1 {
		t.Fatalf("alerts.yml has %d copies of the unproven-teardown threshold and for this test lowers, want 1: update reachableAlerts", n)
	}
	return strings.Replace(shipped, old, new, 1)
}

// lateTeardownRuns runs n real connections to port whose conntrack entry is
// deleted before the client closes (mostly FIN/ACK, whose retransmissions
// are all dropped; every fourth an abortive RST). A listen can briefly fail
// while the previous connection's server socket goes away: retried.
func lateTeardownRuns(l *lab.Lab, port int, v6 bool, n int) error {
	for i := 0; i < n; i++ {
		r := lab.TCPCTDeleteLateFIN
		if i%4 == 3 {
			r = lab.TCPCTDeleteLateRST
		}
		for try := 0; ; try++ {
			err := l.RunTCP(context.Background(), r, port, v6, 0)
			if err == nil {
				break
			}
			if try == 10 || !strings.Contains(err.Error(), "address already in use") {
				return fmt.Errorf("%s to :%d (IPv6 %v): %w", r, port, v6, err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	return nil
}
