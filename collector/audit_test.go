package collector

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nfdrop/nfdrop_exporter/collector/classify"
	"github.com/nfdrop/nfdrop_exporter/collector/ruleaudit"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// fakeRuleReader serves a fixed ruleset; it stands in for the kernel, which
// collector/ruleaudit reads for real.
type fakeRuleReader struct {
	rules []ruleaudit.Rule
	errs  []error // returned by the next reads, in order
	reads int
}

func (f *fakeRuleReader) Read() (ruleaudit.Ruleset, error) {
	f.reads++
	if len(f.errs) > 0 {
		err := f.errs[0]
		f.errs = f.errs[1:]
		if err != nil {
			return ruleaudit.Ruleset{}, err
		}
	}
	return ruleaudit.Ruleset{LogRules: f.rules}, nil
}

// auditFamilies are the families of the rule audit, but its age, which a
// test cannot know exactly.
var auditFamilies = []string{"nfdrop_log_rule_audit_success", "nfdrop_log_rule_packets_total", "nfdrop_log_rules", "nfdrop_log_rules_uncounted"}

func newAuditCollector(t *testing.T, r ruleaudit.Reader, groups ...classify.Group) (*Collector, *bytes.Buffer) {
	t.Helper()
	var logs bytes.Buffer
	c, err := New(Config{Groups: groups, MaxPrefixes: 2, RuleAudit: &ruleaudit.Config{Reader: r, MaxAge: 5 * time.Second}},
		slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return c, &logs
}

func TestRuleAuditExposition(t *testing.T) {
	r := &fakeRuleReader{rules: []ruleaudit.Rule{
		{Family: "ip", Table: "filter", Chain: "INPUT", LogTarget: ruleaudit.LogTarget{Group: 0, Counted: true, Packets: 10}},
		{Family: "ip", Table: "filter", Chain: "INPUT", LogTarget: ruleaudit.LogTarget{Group: 0, Counted: true, Packets: 5}},
		{Family: "ip6", Table: "filter", Chain: "INPUT", LogTarget: ruleaudit.LogTarget{Group: 0, Counted: true, Packets: 2}},
		{Family: "inet", Table: "fw", Chain: "input", LogTarget: ruleaudit.LogTarget{Group: 0}},
		{Family: "inet", Table: "fw", Chain: "input", LogTarget: ruleaudit.LogTarget{Group: 9, Counted: true, Packets: 99}}, // not bound
	}}
	c, logs := newAuditCollector(t, r, 0, 1)
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
# HELP nfdrop_log_rules_uncounted Log rules of the group that have no counter, so that their packets are missing from nfdrop_log_rule_packets_total; add "counter" to them.
# TYPE nfdrop_log_rules_uncounted gauge
nfdrop_log_rules_uncounted{group="0"} 1
nfdrop_log_rules_uncounted{group="1"} 0
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), auditFamilies...); err != nil {
		t.Error(err)
	}
	if n := strings.Count(logs.String(), "without a counter"); n != 1 {
		t.Errorf("logged the uncounted rule %d times, want once:\n%s", n, logs)
	}
	if problems, err := testutil.CollectAndLint(c); err != nil || len(problems) != 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
}

func TestRuleAuditReadError(t *testing.T) {
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
			r := &fakeRuleReader{errs: tc.errs, rules: []ruleaudit.Rule{{Family: "ip", Table: "filter", Chain: "INPUT", LogTarget: ruleaudit.LogTarget{Counted: true}}}}
			c, logs := newAuditCollector(t, r, 0)
			if n := testutil.CollectAndCount(c, auditFamilies...); n != tc.wantSeries {
				t.Errorf("%d series, want %d", n, tc.wantSeries)
			}
			if got := sumOf(t, c, "nfdrop_log_rule_audit_success"); got != tc.wantSuccess {
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

// TestRuleAuditNamesNotUTF8: a chain or table name that is not UTF-8 (any
// CAP_NET_ADMIN process can make one) never takes the audit's series away.
func TestRuleAuditNamesNotUTF8(t *testing.T) {
	r := &fakeRuleReader{rules: []ruleaudit.Rule{
		{Family: "ip", Table: "t\xff", Chain: "c\xfe", LogTarget: ruleaudit.LogTarget{Counted: true, Packets: 2}},
		{Family: "ip", Table: "t\xfe", Chain: "c\xff", LogTarget: ruleaudit.LogTarget{Counted: true, Packets: 3}},
	}}
	c, _ := newAuditCollector(t, r, 0)
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	if _, err := reg.Gather(); err != nil {
		t.Fatalf("scrape failed: %v", err)
	}
	want := `
# HELP nfdrop_log_rule_packets_total Sum of the packet counters of the log rules of the group in one chain, as the kernel counts them.
# TYPE nfdrop_log_rule_packets_total counter
nfdrop_log_rule_packets_total{chain="c�",family="ip",group="0",table="t�"} 5
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), "nfdrop_log_rule_packets_total"); err != nil {
		t.Error(err)
	}
}

// TestRuleAuditAge: a scrape says how old the read it shows is.
func TestRuleAuditAge(t *testing.T) {
	c, _ := newAuditCollector(t, &fakeRuleReader{}, 0)
	if n := testutil.CollectAndCount(c, "nfdrop_log_rule_audit_age_seconds"); n != 1 {
		t.Fatalf("%d age series, want 1", n)
	}
	time.Sleep(30 * time.Millisecond)
	if age := sumOf(t, c, "nfdrop_log_rule_audit_age_seconds"); age < 0.03 || age > 5 {
		t.Errorf("age %v s of a read 30 ms old served within max-age 5s", age)
	}
}
