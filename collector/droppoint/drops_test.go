package droppoint

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/nfdrop/nfdrop_exporter/collector/ruleset"
)

// snapshot builds a ruleset in memory: one table per name, each chain with
// a counted drop rule of n packets.
func snapshot(tables map[string][]string) *ruleset.Snapshot {
	s := &ruleset.Snapshot{}
	names := make([]string, 0, len(tables))
	for n := range tables {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, tn := range names {
		t := &ruleset.Table{Family: ruleset.FamilyINet, Name: tn}
		for i, cn := range tables[tn] {
			c := &ruleset.Chain{Table: t, Name: cn, Base: &ruleset.BaseChain{Hook: 1, Policy: ruleset.Accept}}
			c.Rules = []*ruleset.Rule{{Chain: c, Handle: 1, Verdict: ruleset.Verdict{Kind: ruleset.Drop},
				Counter: &ruleset.Counter{Packets: uint64(i + 1)}, CounterExact: true}}
			t.Chains = append(t.Chains, c)
		}
		s.Tables = append(s.Tables, t)
	}
	return s
}

// TestFirewallDropsCap: beyond MaxChainSeries chains the counts are summed
// into (other), so the family's sum stays exact; names that are not UTF-8
// become valid label values, and names that become equal are summed.
func TestFirewallDropsCap(t *testing.T) {
	var chains []string
	want := uint64(0)
	for i := 0; i < MaxChainSeries+6; i++ {
		chains = append(chains, fmt.Sprintf("c%03d", i))
		want += uint64(i + 1)
	}
	s := snapshot(map[string][]string{"big": chains, "t\xff": {"x\xfe", `x\xfe`}})
	// A drop without a counter and a native drop policy are uncounted.
	extra := s.Tables[1].Chains[0]
	extra.Rules = append(extra.Rules, &ruleset.Rule{Chain: extra, Index: 1, Verdict: ruleset.Verdict{Kind: ruleset.Reject}})
	extra.Base.Policy = ruleset.Drop
	a := Analyze(s, Options{Groups: []uint16{0}})
	cd, tu := a.FirewallDrops()
	if len(cd) != MaxChainSeries+1 {
		t.Fatalf("%d series, want %d", len(cd), MaxChainSeries+1)
	}
	sum := uint64(0)
	for _, c := range cd {
		sum += c.Packets
	}
	if sum != want+1+2 {
		t.Errorf("sum %d, want %d", sum, want+3)
	}
	last := cd[len(cd)-1]
	if last.Table != Other || last.Chain != Other || last.Family != "inet" {
		t.Errorf("last series %+v", last)
	}
	// "t\xff" sorts after "big" and falls into (other); check its label in
	// the uncounted series instead.
	if !slices.Equal(tu, []TableUncounted{{"inet", `t\xff`, 2}}) {
		t.Errorf("uncounted %+v", tu)
	}
	small := Analyze(snapshot(map[string][]string{"t\xff": {"x\xfe", `x\xfe`}}), Options{})
	cd, _ = small.FirewallDrops()
	if !slices.Equal(cd, []ChainDrops{{"inet", `t\xff`, `x\xfe`, 3}}) {
		t.Errorf("merged names: %+v", cd)
	}
}

// FuzzAnalyze: any ruleset that decodes can be analyzed, loops and
// dangling jumps included, and every drop point has a coverage.
func FuzzAnalyze(f *testing.F) {
	for _, name := range []string{"ufw.nlmsg", "firewalld.nlmsg"} {
		b, err := os.ReadFile(filepath.Join("..", "ruleset", "testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ruleset.Decode(b)
		if err != nil {
			return
		}
		for _, kernel := range []bool{false, true} {
			a := Analyze(s, Options{Groups: []uint16{0, 1}, KernelLog: kernel})
			for _, p := range a.DropPoints {
				if p.Coverage > NotCovered || p.Chain == nil || (p.Kind != PolicyDrop && p.Rule == nil) {
					t.Fatalf("drop point %+v", p)
				}
			}
			a.FirewallDrops()
		}
	})
}
