package droppoint

import (
	"fmt"
	"slices"
	"testing"

	"github.com/nfdrop/nfdrop_exporter/collector/ruleset"
)

// name is a drop point as the tests write it: "chain#index" for a rule
// (index in the chain, from 0), "chain#policy", "chain#index map".
func name(p DropPoint) string {
	switch p.Kind {
	case PolicyDrop:
		return p.Chain.Name + "#policy"
	case MapDrop:
		return fmt.Sprintf("%s#%d map", p.Chain.Name, p.Rule.Index)
	}
	return fmt.Sprintf("%s#%d", p.Chain.Name, p.Rule.Index)
}

// coverages returns "point=coverage" for each drop point of the table.
func coverages(a *Analysis, table string) []string {
	var out []string
	for _, p := range a.DropPoints {
		if p.Chain.Table.Name == table {
			out = append(out, name(p)+"="+p.Coverage.String())
		}
	}
	return out
}

func check(t *testing.T, a *Analysis, table string, want ...string) {
	t.Helper()
	if got := coverages(a, table); !slices.Equal(got, want) {
		t.Errorf("table %s:\n got %q\nwant %q", table, got, want)
	}
}

// rules builds a chain from rule specs: terms, "limit" (a rate limit:
// the statements after it are sampled), "log" (an NFLOG statement to group
// 0 after the terms), then the verdict ("drop", "reject", "accept",
// "return", "jump X"); "" for none.
func rules(c *ruleset.Chain, specs ...[]string) {
	for i, spec := range specs {
		r := &ruleset.Rule{Chain: c, Handle: uint64(i + 1), Index: i}
		for _, w := range spec {
			switch {
			case w == "limit":
				r.RateLimit = &ruleset.RateLimit{Kind: "limit"}
			case w == "log":
				r.Logs = append(r.Logs, ruleset.Log{Kind: ruleset.LogNFT, NFLOG: true, Before: len(r.Terms), Sampled: r.RateLimit != nil})
			case w == "drop":
				r.Verdict.Kind = ruleset.Drop
			case w == "reject":
				r.Verdict.Kind = ruleset.Reject
			case w == "accept":
				r.Verdict.Kind = ruleset.Accept
			case w == "return":
				r.Verdict.Kind = ruleset.Return
			case len(w) > 5 && w[:5] == "jump ":
				r.Verdict = ruleset.Verdict{Kind: ruleset.Jump, Chain: w[5:]}
			default:
				r.Terms = append(r.Terms, w)
			}
		}
		c.Rules = append(c.Rules, r)
	}
}

// TestLogUsedUp: ufw with an NFLOG rule in front of its INVALID drop
// (as the ufw recipe writes it): once the drop has taken every packet the
// log rule saw, that log rule says nothing about later drops. A ufw deny
// rule in the chain jumped to at the end, and a drop later in the same
// chain, are not covered (not "cannot tell"); a drop whose condition
// includes the used-up one matches no packet. Packets that leave a chain
// by return after a log rule reach the caller logged.
func TestLogUsedUp(t *testing.T) {
	tb := &ruleset.Table{Family: ruleset.FamilyIP, Name: "filter"}
	chain := func(name string, base bool) *ruleset.Chain {
		c := &ruleset.Chain{Table: tb, Name: name}
		if base {
			c.Base = &ruleset.BaseChain{Type: "filter", Hook: 1, Policy: ruleset.Accept}
		}
		tb.Chains = append(tb.Chains, c)
		return c
	}
	rules(chain("INPUT", true), []string{"jump before"})
	rules(chain("before", false),
		[]string{"ct invalid", "log"},
		[]string{"ct invalid", "drop"},
		[]string{"dport 80", "accept"},
		[]string{"jump user"},
		[]string{"dport 25", "drop"},
		[]string{"ct invalid", "saddr X", "drop"},
	)
	rules(chain("user", false), []string{"dport 23", "drop"})
	rules(chain("OUTPUT", true), []string{"jump ret"}, []string{"dport 1", "drop"})
	rules(chain("ret", false),
		[]string{"dport 1", "log"},
		[]string{"dport 1", "return"},
		[]string{"dport 2", "drop"},
	)
	s := &ruleset.Snapshot{Tables: []*ruleset.Table{tb}}
	a := Analyze(s, Options{Groups: []uint16{0}})
	check(t, a, "filter",
		"before#1=covered",
		"before#4=not covered",
		"before#5=unreachable",
		"user#0=not covered",
		"OUTPUT#1=covered",
		"ret#2=not covered",
	)
}

// TestPriorChainMirrorsAccepts: firewalld's INVALID drop comes after its
// accepts (established, loopback); the firewalld recipe's table runs just
// before it at the same hook, returns where firewalld accepts and logs
// what is left. The log covers the drop of a chain that accepts the same
// packets first, and not that of a chain that does not.
func TestPriorChainMirrorsAccepts(t *testing.T) {
	base := func(tb *ruleset.Table, name string, prio int32) *ruleset.Chain {
		c := &ruleset.Chain{Table: tb, Name: name, Base: &ruleset.BaseChain{Type: "filter", Hook: 1, Priority: prio, Policy: ruleset.Accept}}
		tb.Chains = append(tb.Chains, c)
		return c
	}
	ours := &ruleset.Table{Family: ruleset.FamilyINet, Name: "nfdrop_firewalld"}
	rules(base(ours, "input", 5),
		[]string{"ct established", "return"},
		[]string{"iif lo", "return"},
		[]string{"ct invalid", "log"},
	)
	fw := &ruleset.Table{Family: ruleset.FamilyINet, Name: "firewalld"}
	rules(base(fw, "filter_INPUT", 10),
		[]string{"ct established", "accept"},
		[]string{"iif lo", "accept"},
		[]string{"ct invalid", "drop"},
		[]string{"dport 23", "drop"},
	)
	other := &ruleset.Table{Family: ruleset.FamilyINet, Name: "other"}
	rules(base(other, "input", 20),
		[]string{"ct established", "accept"},
		[]string{"ct invalid", "drop"},
	)
	s := &ruleset.Snapshot{Tables: []*ruleset.Table{ours, fw, other}}
	a := Analyze(s, Options{Groups: []uint16{0}})
	var got []string
	for _, p := range a.DropPoints {
		got = append(got, p.Chain.Table.Name+" "+name(p)+"="+p.Coverage.String())
	}
	want := []string{
		"firewalld filter_INPUT#2=covered",
		"firewalld filter_INPUT#3=not covered",
		"other input#1=not covered",
	}
	if !slices.Equal(got, want) {
		t.Errorf("coverage:\n got %q\nwant %q", got, want)
	}
}

// TestLimitBeforeLogAndVerdict: nft's "udp dport 9 limit rate 1/hour log
// group 0 reject" (the nftables recipe puts the log into the rule): the
// limit passes the reject exactly the packets it passes the log, so the
// reject is covered; a rate-limited log rule of its own covers a later
// drop by sample only.
func TestLimitBeforeLogAndVerdict(t *testing.T) {
	tb := &ruleset.Table{Family: ruleset.FamilyINet, Name: "filter"}
	c := &ruleset.Chain{Table: tb, Name: "input", Base: &ruleset.BaseChain{Type: "filter", Hook: 1, Policy: ruleset.Accept}}
	tb.Chains = []*ruleset.Chain{c}
	rules(c,
		[]string{"udp dport 9", "limit", "log", "reject"},
		[]string{"tcp dport 23", "limit", "log"},
		[]string{"tcp dport 23", "drop"},
	)
	a := Analyze(&ruleset.Snapshot{Tables: []*ruleset.Table{tb}}, Options{Groups: []uint16{0}})
	check(t, a, "filter", "input#0=covered", "input#2=sampled")
}
