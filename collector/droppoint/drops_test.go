package droppoint

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/nfdrop/nfdrop_exporter/collector/internal/nlmsg"
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
	if !slices.Equal(tu, []TableUncounted{{"inet", "big", 0}, {"inet", "t\uFFFD", 2}}) {
		t.Errorf("uncounted %+v", tu)
	}
	small := Analyze(snapshot(map[string][]string{"t\xff": {"x\xfe", "x\xff"}}), Options{})
	cd, _ = small.FirewallDrops()
	if !slices.Equal(cd, []ChainDrops{{"inet", "t\uFFFD", "x\uFFFD", 3}}) {
		t.Errorf("merged names: %+v", cd)
	}
}

// maxFuzzInput bounds what the fuzz target analyzes. Go's fuzzer spends up to
// a minute minimizing each new input, and on a whole recorded ruleset that
// took the run: TestAnalyzeRecorded checks those.
const maxFuzzInput = 8 << 10

// FuzzAnalyze: any ruleset that decodes can be analyzed, loops and
// dangling jumps included, and every drop point has a coverage.
func FuzzAnalyze(f *testing.F) {
	for _, name := range recordedRulesets {
		// The read's first messages: tables, chains and, for ufw, a few rules.
		b := nlmsg.Prefix(recordedRuleset(f, name), maxFuzzInput)
		if _, err := ruleset.Decode(b); err != nil {
			f.Fatalf("%s: the first %d bytes: %v", name, len(b), err)
		}
		f.Add(b)
	}
	f.Add(tinyRuleset())
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > maxFuzzInput {
			return
		}
		checkAnalyzes(t, b)
	})
}

// TestAnalyzeRecorded is FuzzAnalyze's check on the whole recorded rulesets.
func TestAnalyzeRecorded(t *testing.T) {
	for _, name := range recordedRulesets {
		checkAnalyzes(t, recordedRuleset(t, name))
	}
}

var recordedRulesets = []string{"ufw.nlmsg", "firewalld.nlmsg"}

func recordedRuleset(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "ruleset", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// checkAnalyzes analyzes b, if it decodes, with and without kernel logging
// counted: every drop point has a coverage, a chain, and a rule unless it is
// a policy.
func checkAnalyzes(t *testing.T, b []byte) {
	t.Helper()
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
}

// tinyRuleset encodes, as the kernel would send it, a table with a base
// chain that jumps to a chain that jumps back (a loop the kernel refuses to
// load, but a message can hold), a log rule and a drop.
func tinyRuleset() []byte {
	attr := func(typ uint16, data []byte) []byte {
		b := binary.NativeEndian.AppendUint16(nil, uint16(4+len(data)))
		b = binary.NativeEndian.AppendUint16(b, typ)
		b = append(b, data...)
		for len(b)%4 != 0 {
			b = append(b, 0)
		}
		return b
	}
	str := func(s string) []byte { return append([]byte(s), 0) }
	be32 := func(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	msg := func(typ uint16, attrs ...[]byte) []byte {
		payload := cat(append([][]byte{{byte(ruleset.FamilyINet), 0, 0, 1}}, attrs...)...)
		b := binary.NativeEndian.AppendUint32(nil, uint32(16+len(payload)))
		b = binary.NativeEndian.AppendUint16(b, 10<<8|typ)
		b = append(b, make([]byte, 10)...)
		return append(b, payload...)
	}
	expr := func(name string, data ...[]byte) []byte {
		return attr(1, cat(attr(1, str(name)), attr(2|0x8000, cat(data...))))
	}
	verdict := func(code int32, chain string) []byte {
		v := attr(1, be32(uint32(code)))
		if chain != "" {
			v = cat(v, attr(2, str(chain)))
		}
		return expr("immediate", attr(1, be32(0)), attr(2|0x8000, attr(2|0x8000, v)))
	}
	rule := func(chain string, exprs ...[]byte) []byte {
		return msg(6, attr(1, str("t")), attr(2, str(chain)), attr(4|0x8000, cat(exprs...)))
	}
	return cat(
		msg(0, attr(1, str("t"))),
		msg(3, attr(1, str("t")), attr(3, str("a")), attr(4|0x8000, cat(attr(1, be32(1)), attr(2, be32(0)))), attr(5, be32(0)), attr(7, str("filter"))),
		msg(3, attr(1, str("t")), attr(3, str("b"))),
		rule("a", verdict(-3, "b")),
		rule("b", expr("log", attr(1, []byte{0, 0})), verdict(-3, "a")),
		rule("b", expr("counter", attr(1, make([]byte, 8)), attr(2, make([]byte, 8))), verdict(0, "")),
	)
}

// TestTinyRuleset: the hand-encoded loop decodes and analyzes.
func TestTinyRuleset(t *testing.T) {
	s, err := ruleset.Decode(tinyRuleset())
	if err != nil {
		t.Fatal(err)
	}
	a := Analyze(s, Options{Groups: []uint16{0}})
	var got []string
	for _, p := range a.DropPoints {
		got = append(got, p.Chain.Name+"="+p.Coverage.String())
	}
	// b logs every packet before its drop; nothing returns from b, so a's
	// policy is never reached.
	if !slices.Equal(got, []string{"a=unreachable", "b=covered"}) {
		t.Errorf("%q", got)
	}
}
