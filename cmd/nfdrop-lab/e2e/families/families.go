// Package families lists the metric families the exporter's collector
// describes with chosen parts on, for the tests that check docs, dashboards
// and rules against what a live exporter can expose.
package families

import (
	"testing"
	"time"

	"github.com/nfdrop/nfdrop_exporter/collector"
	"github.com/nfdrop/nfdrop_exporter/collector/classify"
	"github.com/nfdrop/nfdrop_exporter/collector/conntrack"
	"github.com/nfdrop/nfdrop_exporter/collector/ctlog"
	"github.com/nfdrop/nfdrop_exporter/collector/ctstats"
	"github.com/nfdrop/nfdrop_exporter/collector/ebpf"
	"github.com/nfdrop/nfdrop_exporter/collector/ruleaudit"
	"github.com/prometheus/common/promslog"
)

// Part names what Of turns on besides the packet counters.
type Part int

const (
	Evidence       Part = 1 << iota // conntrack evidence, its settings and histogram
	Reasons                         // conntrack's messages, the reasons join and conntrack's logging settings
	RuleAudit                       // the nf_tables log rules
	ConntrackStats                  // conntrack's statistics
	EBPF                            // the eBPF source's kernel-side counts
	AllParts       = Evidence | Reasons | RuleAudit | ConntrackStats | EBPF
)

// Of returns the names of the metric families a collector with the
// given parts describes: the families a live exporter can expose beyond
// those of a replayed capture, which has none of the kernel's own views. No
// kernel is read: the parts are built, not started.
func Of(t testing.TB, parts Part) map[string]bool {
	t.Helper()
	cfg := collector.Config{Groups: []classify.Group{0}, MaxPrefixes: 1, KernelSettings: true}
	if parts&Evidence != 0 {
		cfg.Conntrack = &conntrack.Config{Window: conntrack.DefaultWindow, Hold: conntrack.DefaultHold, MaxFlows: 16, LookupsPerSecond: 1, QueueSize: 16}
	}
	if parts&Reasons != 0 {
		cfg.Reasons = &ctlog.Config{ReasonsGroup: 0, Join: true}
	}
	if parts&RuleAudit != 0 {
		cfg.RuleAudit = &ruleaudit.Config{Reader: ruleaudit.Netlink{Timeout: time.Second}}
	}
	if parts&ConntrackStats != 0 {
		cfg.ConntrackStats = ctstats.Netlink{}
	}
	if parts&EBPF != 0 {
		cfg.Groups = append(cfg.Groups, classify.GroupEBPF)
		cfg.EBPF = noCounts{}
	}
	c, err := collector.New(cfg, promslog.NewNopLogger())
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, n := range c.FamilyNames() {
		names[n] = true
	}
	return names
}

// noCounts stands for the eBPF program, which Of does not load.
type noCounts struct{}

func (noCounts) Counts() (ebpf.Counts, error)             { return ebpf.Counts{}, nil }
func (noCounts) KernelDrops() ([]ebpf.ReasonCount, error) { return nil, nil }
