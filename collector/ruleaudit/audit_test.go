package ruleaudit

import (
	"bytes"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nfdrop/nfdrop_exporter/collector/classify"
)

// fakeReader serves a fixed ruleset and counts reads; it stands in for the
// kernel, which kernel_linux_test.go reads for real.
type fakeReader struct {
	mu    sync.Mutex
	rules []Rule
	errs  []error // returned by the next reads, in order
	reads int
	delay time.Duration // each read takes this long
}

func (f *fakeReader) Read() (Ruleset, error) {
	time.Sleep(f.delay)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads++
	if len(f.errs) > 0 {
		err := f.errs[0]
		f.errs = f.errs[1:]
		if err != nil {
			return Ruleset{}, err
		}
	}
	return Ruleset{LogRules: f.rules}, nil
}

type clock struct{ now time.Time }

func (c *clock) Now() time.Time { return c.now }

func newTest(r Reader, groups []classify.Group, last func(classify.Group) time.Time) (*Auditor, *clock, *bytes.Buffer) {
	var logs bytes.Buffer
	clk := &clock{now: time.Unix(1e9, 0)}
	a := New(Config{Groups: groups, Reader: r, MaxAge: 5 * time.Second, LastPacket: last, Now: clk.Now},
		slog.New(slog.NewTextHandler(&logs, nil)))
	return a, clk, &logs
}

func TestAuditorCache(t *testing.T) {
	r := &fakeReader{rules: []Rule{{Family: "ip", Table: "filter", Chain: "INPUT", LogTarget: LogTarget{Counted: true, Packets: 1}}}}
	a, clk, _ := newTest(r, []classify.Group{0}, nil)
	for range 3 {
		a.Read()
	}
	if r.reads != 1 {
		t.Errorf("3 scrapes within max-age: %d reads, want 1", r.reads)
	}
	clk.now = clk.now.Add(5 * time.Second)
	a.Read()
	if r.reads != 2 {
		t.Errorf("scrape at max-age: %d reads, want 2", r.reads)
	}
}

// TestAuditorSharesConcurrentReads: with no max-age every scrape reads,
// but scrapes that arrive while a read runs share it.
func TestAuditorSharesConcurrentReads(t *testing.T) {
	r := &fakeReader{delay: 50 * time.Millisecond}
	a := New(Config{Groups: []classify.Group{0}, Reader: r}, slog.New(slog.DiscardHandler))
	a.Read()
	if r.reads != 1 {
		t.Fatalf("%d reads, want 1", r.reads)
	}
	a.Read()
	if r.reads != 2 {
		t.Fatalf("a scrape after a read: %d reads in all, want 2", r.reads)
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() { defer wg.Done(); a.Read() }()
	}
	wg.Wait()
	if r.reads > 4 {
		t.Errorf("4 concurrent scrapes: %d more reads, want at most 2 (one running, one all the others share)", r.reads-2)
	}
}

func TestAuditorLegacyWarning(t *testing.T) {
	var last time.Time
	r := &fakeReader{}
	a, clk, logs := newTest(r, []classify.Group{0}, func(classify.Group) time.Time { return last })
	start := clk.now
	step := func(d time.Duration) {
		clk.now = clk.now.Add(d)
		a.Read()
	}
	const warning = "Packets arrive on the group but no nf_tables rule logs to it"
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

// TestAuditorNoRuleNotice: a group no nf_tables rule logs to (a mistyped
// group, or iptables-legacy rules) is said once per episode, in words that
// claim no more than the read shows.
func TestAuditorNoRuleNotice(t *testing.T) {
	r := &fakeReader{rules: []Rule{{Family: "ip", Table: "filter", Chain: "INPUT", LogTarget: LogTarget{Group: 0, Counted: true}}}}
	a, clk, logs := newTest(r, []classify.Group{0, 5}, nil)
	for range 3 {
		clk.now = clk.now.Add(6 * time.Second)
		a.Read()
	}
	const notice = "No nf_tables rule logs to this NFLOG group"
	if n := strings.Count(logs.String(), notice); n != 1 || !strings.Contains(logs.String(), "group=5") || !strings.Contains(logs.String(), "iptables-legacy rules are invisible to nf_tables") {
		t.Fatalf("notice given %d times, want once for group 5 naming iptables-legacy:\n%s", n, logs)
	}
	if n, ok := a.LogRules(5); !ok || n != 0 {
		t.Errorf("LogRules(5) = %d, %v; want 0, true", n, ok)
	}
	if n, ok := a.LogRules(0); !ok || n != 1 {
		t.Errorf("LogRules(0) = %d, %v; want 1, true", n, ok)
	}
	if _, ok := a.LogRules(classify.GroupEBPF); ok {
		t.Error("LogRules of a group that is not audited")
	}
}

// TestAuditorCapsChains: beyond MaxChainSeries chains per group, the rest
// is summed per family into "(other)", and the group's total stays exact.
func TestAuditorCapsChains(t *testing.T) {
	r := &fakeReader{}
	for i := range MaxChainSeries + 10 {
		r.rules = append(r.rules, Rule{Family: "ip", Table: "filter", Chain: fmt.Sprintf("c%03d", i), LogTarget: LogTarget{Counted: true, Packets: 1}})
	}
	r.rules = append(r.rules, Rule{Family: "inet", Table: "fw", Chain: "input", LogTarget: LogTarget{Group: 1, Counted: true, Packets: 5}})
	a, _, _ := newTest(r, []classify.Group{0, 1}, nil)
	series := map[string]uint64{}
	for _, c := range a.Read().Chains {
		series[c.Group.String()+"/"+c.Family+"/"+c.Table+"/"+c.Chain] = c.Packets
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

// TestAuditorNamesNotUTF8: table and chain names are bytes to the kernel;
// those that are not UTF-8 become valid label values, and two that then read
// alike are one series with both counts.
func TestAuditorNamesNotUTF8(t *testing.T) {
	r := &fakeReader{rules: []Rule{
		{Family: "ip", Table: "t\xff", Chain: "c\xfe", LogTarget: LogTarget{Counted: true, Packets: 2}},
		{Family: "ip", Table: "t\xfe", Chain: "c\xff", LogTarget: LogTarget{Counted: true, Packets: 3}},
		{Family: "ip", Table: "filter", Chain: "INPUT", LogTarget: LogTarget{Counted: true, Packets: 1}},
	}}
	a, _, _ := newTest(r, []classify.Group{0}, nil)
	want := []ChainPackets{{0, "ip", "filter", "INPUT", 1}, {0, "ip", "t\uFFFD", "c\uFFFD", 5}}
	if got := a.Read().Chains; !reflect.DeepEqual(got, want) {
		t.Errorf("Chains = %+v, want %+v", got, want)
	}
}
