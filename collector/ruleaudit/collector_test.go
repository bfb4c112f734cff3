package ruleaudit

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
)

// fakeReader serves a fixed ruleset and counts reads; it stands in for the
// kernel, which kernel_linux_test.go reads for real.
type fakeReader struct {
	rules []Rule
	errs  []error // returned by the next reads, in order
	reads int
}

func (f *fakeReader) LogRules() ([]Rule, error) {
	f.reads++
	if len(f.errs) > 0 {
		err := f.errs[0]
		f.errs = f.errs[1:]
		if err != nil {
			return nil, err
		}
	}
	return f.rules, nil
}

type clock struct{ now time.Time }

func (c *clock) Now() time.Time { return c.now }

func newTest(r Reader, groups []uint16, last func(uint16) time.Time) (*Collector, *clock, *bytes.Buffer) {
	var logs bytes.Buffer
	clk := &clock{now: time.Unix(1e9, 0)}
	c := New(Config{Groups: groups, Reader: r, MaxAge: 5 * time.Second, LastPacket: last, Now: clk.Now},
		slog.New(slog.NewTextHandler(&logs, nil)))
	return c, clk, &logs
}

func TestCollectorExposition(t *testing.T) {
	r := &fakeReader{rules: []Rule{
		{Family: "ip", Table: "filter", Chain: "INPUT", LogTarget: LogTarget{Group: 0, Counted: true, Packets: 10}},
		{Family: "ip", Table: "filter", Chain: "INPUT", LogTarget: LogTarget{Group: 0, Counted: true, Packets: 5}},
		{Family: "ip6", Table: "filter", Chain: "INPUT", LogTarget: LogTarget{Group: 0, Counted: true, Packets: 2}},
		{Family: "inet", Table: "fw", Chain: "input", LogTarget: LogTarget{Group: 0}},
		{Family: "inet", Table: "fw", Chain: "input", LogTarget: LogTarget{Group: 9, Counted: true, Packets: 99}}, // not bound
	}}
	c, _, logs := newTest(r, []uint16{0, 1}, nil)
	want := `
# HELP nfdrop_log_rule_audit_success 1 if the last read of the nf_tables ruleset succeeded; while 0 the other nfdrop_log_rule* series are absent.
# TYPE nfdrop_log_rule_audit_success gauge
nfdrop_log_rule_audit_success 1
# HELP nfdrop_log_rule_packets_total Sum of the packet counters of the log rules of the group in one chain, as the kernel counts them.
# TYPE nfdrop_log_rule_packets_total counter
nfdrop_log_rule_packets_total{chain="INPUT",family="ip",group="0",table="filter"} 15
nfdrop_log_rule_packets_total{chain="INPUT",family="ip6",group="0",table="filter"} 2
# HELP nfdrop_log_rules nf_tables rules that log to the NFLOG group (nft log group, iptables-nft -j NFLOG), read from the kernel; 0 means nothing can reach the group.
# TYPE nfdrop_log_rules gauge
nfdrop_log_rules{group="0"} 4
nfdrop_log_rules{group="1"} 0
# HELP nfdrop_log_rules_without_counter Log rules of the group that have no counter, so that their packets are missing from nfdrop_log_rule_packets_total; add "counter" to them.
# TYPE nfdrop_log_rules_without_counter gauge
nfdrop_log_rules_without_counter{group="0"} 1
nfdrop_log_rules_without_counter{group="1"} 0
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
	if n := strings.Count(logs.String(), "without a counter"); n != 1 {
		t.Errorf("logged the uncounted rule %d times, want once:\n%s", n, logs)
	}
	if problems, err := testutil.CollectAndLint(c); err != nil || len(problems) != 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
}

func TestCollectorCache(t *testing.T) {
	r := &fakeReader{rules: []Rule{{Family: "ip", Table: "filter", Chain: "INPUT", LogTarget: LogTarget{Counted: true, Packets: 1}}}}
	c, clk, _ := newTest(r, []uint16{0}, nil)
	for range 3 {
		testutil.CollectAndCount(c)
	}
	if r.reads != 1 {
		t.Errorf("3 scrapes within max-age: %d reads, want 1", r.reads)
	}
	clk.now = clk.now.Add(5 * time.Second)
	testutil.CollectAndCount(c)
	if r.reads != 2 {
		t.Errorf("scrape at max-age: %d reads, want 2", r.reads)
	}
}

func TestCollectorReadError(t *testing.T) {
	boom := errors.New("netlink: operation not permitted")
	tests := []struct {
		name        string
		errs        []error
		wantSuccess float64
		wantSeries  int
		wantReads   int
	}{
		// A reload that removes a chain between listing and dumping it.
		{"one failure is retried", []error{boom}, 1, 4, 2},
		{"two failures fail the read", []error{boom, boom}, 0, 1, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := &fakeReader{errs: tc.errs, rules: []Rule{{Family: "ip", Table: "filter", Chain: "INPUT", LogTarget: LogTarget{Counted: true}}}}
			c, _, logs := newTest(r, []uint16{0}, nil)
			if n := testutil.CollectAndCount(c); n != tc.wantSeries {
				t.Errorf("%d series, want %d", n, tc.wantSeries)
			}
			if got := testutil.ToFloat64(gaugeOnly(c, "nfdrop_log_rule_audit_success")); got != tc.wantSuccess {
				t.Errorf("success %v, want %v", got, tc.wantSuccess)
			}
			if r.reads != tc.wantReads {
				t.Errorf("%d reads, want %d", r.reads, tc.wantReads)
			}
			if failed := strings.Contains(logs.String(), "failed"); failed != (tc.wantSuccess == 0) {
				t.Errorf("failure logged %v:\n%s", failed, logs)
			}
		})
	}
}

// gaugeOnly is a collector of one metric family of c.
func gaugeOnly(c prometheus.Collector, name string) prometheus.Collector {
	return filtered{c, name}
}

type filtered struct {
	prometheus.Collector
	name string
}

func (f filtered) Collect(ch chan<- prometheus.Metric) {
	all := make(chan prometheus.Metric, 64)
	f.Collector.Collect(all)
	close(all)
	for m := range all {
		if strings.Contains(m.Desc().String(), `"`+f.name+`"`) {
			ch <- m
		}
	}
}

func TestCollectorLegacyWarning(t *testing.T) {
	var last time.Time
	r := &fakeReader{}
	c, clk, logs := newTest(r, []uint16{0}, func(uint16) time.Time { return last })
	start := clk.now
	step := func(d time.Duration) {
		clk.now = clk.now.Add(d)
		testutil.CollectAndCount(c)
	}
	const warning = "iptables-legacy"
	step(0) // first read: no rule since now
	// A packet logged just before the rule vanished is no evidence.
	last = start.Add(-time.Second)
	step(6 * time.Second)
	if strings.Contains(logs.String(), warning) {
		t.Fatalf("warned about a packet older than the missing rule:\n%s", logs)
	}
	// Packets arriving while no rule is seen: warn once.
	last = clk.now
	step(6 * time.Second)
	last = clk.now
	step(6 * time.Second)
	if n := strings.Count(logs.String(), warning); n != 1 {
		t.Fatalf("warned %d times, want once:\n%s", n, logs)
	}
	// A rule appears and vanishes again: a new episode warns again.
	r.rules = []Rule{{Family: "ip", Table: "filter", Chain: "INPUT", LogTarget: LogTarget{Counted: true}}}
	step(6 * time.Second)
	r.rules = nil
	step(6 * time.Second) // no rule since now
	last = clk.now.Add(2 * time.Second)
	step(6 * time.Second)
	if n := strings.Count(logs.String(), warning); n != 2 {
		t.Fatalf("warned %d times after a second episode, want 2:\n%s", n, logs)
	}
}

// TestCollectorCapsChains: beyond MaxChainSeries chains per group, the rest
// is summed per family into "(other)", and the group's total stays exact.
func TestCollectorCapsChains(t *testing.T) {
	r := &fakeReader{}
	for i := range MaxChainSeries + 10 {
		r.rules = append(r.rules, Rule{Family: "ip", Table: "filter", Chain: fmt.Sprintf("c%03d", i), LogTarget: LogTarget{Counted: true, Packets: 1}})
	}
	r.rules = append(r.rules, Rule{Family: "inet", Table: "fw", Chain: "input", LogTarget: LogTarget{Group: 1, Counted: true, Packets: 5}})
	c, _, _ := newTest(r, []uint16{0, 1}, nil)
	ch := make(chan prometheus.Metric, 256)
	c.Collect(ch)
	close(ch)
	series := map[string]float64{}
	for m := range ch {
		if !strings.Contains(m.Desc().String(), `"nfdrop_log_rule_packets_total"`) {
			continue
		}
		var d dto.Metric
		if err := m.Write(&d); err != nil {
			t.Fatal(err)
		}
		l := map[string]string{}
		for _, p := range d.GetLabel() {
			l[p.GetName()] = p.GetValue()
		}
		series[l["group"]+"/"+l["family"]+"/"+l["table"]+"/"+l["chain"]] = d.GetCounter().GetValue()
	}
	if len(series) != MaxChainSeries+2 {
		t.Errorf("%d series, want %d kept + (other) + group 1's", len(series), MaxChainSeries+2)
	}
	if got := series["0/ip/(other)/(other)"]; got != 10 {
		t.Errorf("(other) = %v, want the 10 chains beyond the cap", got)
	}
	if got := series[fmt.Sprintf("0/ip/filter/c%03d", MaxChainSeries-1)]; got != 1 {
		t.Errorf("the last kept chain: %v, want 1", got)
	}
	if got := series["1/inet/fw/input"]; got != 5 {
		t.Errorf("group 1 under the cap: %v, want 5", got)
	}
}
