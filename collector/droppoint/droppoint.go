// Package droppoint finds where a ruleset drops packets and whether a log
// statement sees each of those packets first.
//
// A drop point is a rule whose verdict is drop or reject, a verdict map with
// drop or reject elements, or a base chain whose policy is drop. It is
// covered when a log statement that counts (to one of the given NFLOG
// groups) runs for every packet it drops: in the same rule before the
// verdict; earlier in the same chain with a condition no narrower than the
// drop's own; at the call site of a jump or goto (or verdict map element)
// that leads to the drop's chain, on every path; for a base chain's policy,
// on every path that falls through to the policy; or in a base chain that
// runs before it at the same hook (lower priority), among the rules every
// packet passes. See README.md for the exact rule.
package droppoint

import (
	"slices"

	"github.com/nfdrop/nfdrop_exporter/collector/ruleset"
)

// Coverage says whether a log statement sees the packets a drop point drops.
type Coverage uint8

// Coverages, from best to worst; the analysis combines paths by keeping the
// worse and a log statement with the better.
const (
	// Unreachable: no packet gets to the drop point (it follows a rule
	// that ends the chain for every packet).
	Unreachable Coverage = iota
	// Covered: every dropped packet was logged.
	Covered
	// Sampled: every dropped packet passed a log statement, but a rate
	// limit lets it log a sample only.
	Sampled
	// CannotTell: a log statement runs before, but with a condition that
	// differs from the drop's, so whether it saw each dropped packet is
	// not decidable from the rules.
	CannotTell
	// NotCovered: packets are dropped that no log statement saw.
	NotCovered
)

var coverageNames = [...]string{"unreachable", "covered", "sampled", "cannot tell", "not covered"}

func (c Coverage) String() string {
	if int(c) < len(coverageNames) {
		return coverageNames[c]
	}
	return "unknown"
}

// DropKind says what kind of drop point it is.
type DropKind uint8

// Drop point kinds.
const (
	RuleDrop   DropKind = iota // a rule's drop or reject verdict
	MapDrop                    // drop or reject elements of a rule's verdict map
	PolicyDrop                 // a base chain's drop policy
)

// DropPoint is one place where the ruleset drops packets.
type DropPoint struct {
	Kind    DropKind
	Chain   *ruleset.Chain
	Rule    *ruleset.Rule       // nil for PolicyDrop
	Verdict ruleset.VerdictKind // Drop or Reject
	Coverage
	// By is the rule whose log statement decided Coverage: the one that
	// logs the packets (Covered, Sampled) or the one whose condition
	// differs (CannotTell); nil otherwise.
	By *ruleset.Rule
	// Counted says that the kernel counts exactly the packets this drop
	// point drops (an exact rule counter, or the policy's chain counter);
	// Packets is then that count.
	Counted bool
	Packets uint64
}

// LogStatement is one log statement of the ruleset.
type LogStatement struct {
	Rule *ruleset.Rule
	ruleset.Log
	// Counted says that the rule has a counter; Packets is its count.
	Counted bool
	Packets uint64
}

// Options says which log statements count as coverage.
type Options struct {
	// Groups are the NFLOG groups whose log statements count (the groups
	// the exporter reads).
	Groups []uint16
	// KernelLog counts log statements that write to the kernel log as
	// well (to find those that would cover a drop if they were NFLOG).
	KernelLog bool
}

// Analysis is the result of Analyze.
type Analysis struct {
	Snapshot   *ruleset.Snapshot
	DropPoints []DropPoint    // in table, chain, rule order
	Logs       []LogStatement // every log statement, in table, chain, rule order
}

// maxCondLogs bounds the conditional log statements a chain walk compares
// a rule with; beyond them a drop not covered by the first ones is "cannot
// tell", so that a chain of many thousands of log rules stays linear.
const maxCondLogs = 256

// Analyze finds the drop points of s and their coverage.
func Analyze(s *ruleset.Snapshot, o Options) *Analysis {
	a := &analyzer{opts: o, ft: map[*ruleset.Chain]fallThrough{}, busy: map[*ruleset.Chain]bool{},
		calls: map[*ruleset.Chain][]callSite{}, out: &Analysis{Snapshot: s}}
	a.run(s)
	return a.out
}

type state struct {
	cov Coverage
	by  *ruleset.Rule
}

// better keeps the better of two states for the same packets (a log
// statement ran for them).
func better(a, b state) state {
	if b.cov < a.cov {
		return b
	}
	return a
}

// worse keeps the worse of two paths' states.
func worse(a, b state) state {
	if b.cov > a.cov {
		return b
	}
	return a
}

// condLog is a log statement that ran for the packets that passed terms.
// A weak one (from a base chain that runs before, from the caller of the
// chain, or from a chain jumped to) covers a drop whose condition it
// includes and says nothing about others: it was written for other drops.
// A gone one's packets have all left the chain (a later rule with a
// condition no narrower than its own ended the chain for them): it says
// nothing about the rules after that, and a rule whose condition includes
// its own matches no packet. A log statement of an earlier base chain
// that some packets skipped (rules before it returned or accepted them)
// waits for exits: it covers nothing until the chain being walked has ended
// the chain, in an earlier rule, for the packets of each of those rules.
type condLog struct {
	terms   []string
	sampled bool
	rule    *ruleset.Rule
	weak    bool
	gone    bool
	exits   [][]string
}

type analyzer struct {
	opts  Options
	out   *Analysis
	ft    map[*ruleset.Chain]fallThrough
	busy  map[*ruleset.Chain]bool
	calls map[*ruleset.Chain][]callSite
}

// fallThrough is what a chain's own log statements give to every packet it
// returns to its caller: st for all of them (Unreachable: it returns none),
// and the conditional log statements every returned packet passed.
type fallThrough struct {
	st    state
	conds []condLog
}

// callSite is a jump, goto or map element that leads to a chain: the state
// of the packets there, the conditional log statements they passed, and the
// terms they matched.
type callSite struct {
	st    state
	conds []condLog
	terms []string
}

func (a *analyzer) counts(l ruleset.Log) bool {
	if !l.NFLOG {
		return a.opts.KernelLog
	}
	return slices.Contains(a.opts.Groups, l.Group)
}

func (a *analyzer) run(s *ruleset.Snapshot) {
	for _, t := range s.Tables {
		for _, c := range t.Chains {
			for _, r := range c.Rules {
				for _, l := range r.Logs {
					ls := LogStatement{Rule: r, Log: l}
					if r.Counter != nil {
						ls.Counted, ls.Packets = true, r.Counter.Packets
					}
					a.out.Logs = append(a.out.Logs, ls)
				}
			}
		}
	}
	order, cyclic := callOrder(s)
	points := map[*ruleset.Chain][]DropPoint{}
	for _, c := range order {
		entry := state{cov: NotCovered}
		var inherited []condLog
		switch {
		case cyclic[c]:
			entry = state{cov: CannotTell}
		case c.Base != nil:
			inherited = a.priorLogs(s, c)
		default:
			entry = state{cov: Unreachable} // a chain nothing jumps to
			for _, site := range a.calls[c] {
				entry = worse(entry, site.st)
			}
			if sites := a.calls[c]; len(sites) == 1 {
				inherited = inherit(sites[0])
			}
		}
		w := walker{a: a, chain: c, record: true}
		exit := w.walk(entry, inherited)
		if c.Base != nil && c.Base.Policy == ruleset.Drop {
			p := DropPoint{Kind: PolicyDrop, Chain: c, Verdict: ruleset.Drop, Coverage: exit.cov, By: exit.by}
			if c.Base.Counter != nil {
				p.Counted, p.Packets = true, c.Base.Counter.Packets
			}
			w.points = append(w.points, p)
		}
		points[c] = w.points
	}
	for _, c := range s.Chains() {
		a.out.DropPoints = append(a.out.DropPoints, points[c]...)
	}
}

// priorLogs are the log statements of base chains that run before c at the
// same hook (lower priority), up to the first rule that sends packets
// elsewhere (jump, goto, queue, verdict map, unconditional accept or
// return). A packet accepted there still reaches c. The conditions of the
// accept and return rules before a statement are its exits: the packets
// they let go skipped it, so it covers a drop of c only where c has ended
// the chain for those packets already (a table that mirrors the manager's
// accepts with returns).
func (a *analyzer) priorLogs(s *ruleset.Snapshot, c *ruleset.Chain) []condLog {
	var out []condLog
	for _, p := range s.Chains() {
		if p == c || p.Base == nil || p.Base.Hook != c.Base.Hook || p.Base.Priority >= c.Base.Priority || !sameHookSpace(p, c) {
			continue
		}
		var exits [][]string
	rules:
		for _, r := range p.Rules {
			for _, l := range r.Logs {
				if a.counts(l) {
					out = append(out, condLog{terms: r.Terms[:l.Before], sampled: l.Sampled, rule: r, weak: true, exits: slices.Clone(exits)})
				}
			}
			if r.Map != nil {
				break
			}
			switch r.Verdict.Kind {
			case ruleset.Continue, ruleset.Drop, ruleset.Reject:
				// Dropped packets reach no later chain; the others go on.
			case ruleset.Accept, ruleset.Return, ruleset.NAT:
				if len(r.Terms) == 0 {
					break rules
				}
				exits = append(exits, r.Terms)
			default:
				break rules
			}
		}
	}
	return out
}

// sameHookSpace says that every packet c sees at its hook also passes p:
// the same family, or p is inet and c is ip or ip6.
func sameHookSpace(p, c *ruleset.Chain) bool {
	pf, cf := p.Table.Family, c.Table.Family
	return pf == cf || (pf == ruleset.FamilyINet && (cf == ruleset.FamilyIP || cf == ruleset.FamilyIP6))
}

// inherit turns the conditional log statements a chain's only caller passed
// into the chain's own: every packet in the chain matched the call site's
// terms, so those terms are dropped from the statements' conditions.
func inherit(site callSite) []condLog {
	var out []condLog
	for _, c := range site.conds {
		var rest []string
		for _, t := range c.terms {
			if !slices.Contains(site.terms, t) {
				rest = append(rest, t)
			}
		}
		out = append(out, condLog{terms: rest, sampled: c.sampled, rule: c.rule, weak: true})
	}
	return out
}

// fallThroughOf computes (once) what chain c's own log statements give to
// the packets it returns.
func (a *analyzer) fallThroughOf(c *ruleset.Chain) fallThrough {
	if ft, ok := a.ft[c]; ok {
		return ft
	}
	if a.busy[c] {
		return fallThrough{st: state{cov: CannotTell}} // a loop, which the kernel refuses to load
	}
	a.busy[c] = true
	// Its conditional log statements are handed to the caller as weak
	// ones; they make no "cannot tell" of what it returns.
	w := walker{a: a, chain: c, weakAll: true}
	st := w.walk(state{cov: NotCovered}, nil)
	delete(a.busy, c)
	// The packets of a gone statement that left by return or goto reach
	// the caller logged; those that were dropped or accepted reach no
	// rule of the caller.
	conds := slices.Clone(w.conds[:w.passed])
	for i := range conds {
		conds[i].gone = false
	}
	ft := fallThrough{st: st, conds: conds}
	a.ft[c] = ft
	return ft
}

// callOrder orders the chains so that every chain comes after the chains
// that jump or go to it; chains on a loop (which the kernel refuses, but a
// decoded message may hold) are marked cyclic and come last.
func callOrder(s *ruleset.Snapshot) ([]*ruleset.Chain, map[*ruleset.Chain]bool) {
	callees := map[*ruleset.Chain][]*ruleset.Chain{}
	indeg := map[*ruleset.Chain]int{}
	all := s.Chains()
	for _, c := range all {
		for _, r := range c.Rules {
			targets := []string{}
			if r.Verdict.Kind == ruleset.Jump || r.Verdict.Kind == ruleset.Goto {
				targets = append(targets, r.Verdict.Chain)
			}
			if r.Map != nil {
				for _, e := range r.Map.Elements {
					if e.Verdict.Kind == ruleset.Jump || e.Verdict.Kind == ruleset.Goto {
						targets = append(targets, e.Verdict.Chain)
					}
				}
			}
			for _, name := range targets {
				if t := c.Table.Chain(name); t != nil {
					callees[c] = append(callees[c], t)
					indeg[t]++
				}
			}
		}
	}
	var order, queue []*ruleset.Chain
	for _, c := range all {
		if indeg[c] == 0 {
			queue = append(queue, c)
		}
	}
	for len(queue) > 0 {
		c := queue[0]
		queue = queue[1:]
		order = append(order, c)
		for _, t := range callees[c] {
			if indeg[t]--; indeg[t] == 0 {
				queue = append(queue, t)
			}
		}
	}
	cyclic := map[*ruleset.Chain]bool{}
	for _, c := range all {
		if indeg[c] > 0 {
			cyclic[c] = true
			order = append(order, c)
		}
	}
	return order, cyclic
}

// Recount reads the packet counts of the drop points and log statements
// again from their rules and chains, after ruleset.Snapshot.Recount changed
// the snapshot's counters: coverage depends on the ruleset's structure
// only, so the analysis of one generation serves all its reads.
func (a *Analysis) Recount() {
	for i := range a.DropPoints {
		p := &a.DropPoints[i]
		switch {
		case !p.Counted:
		case p.Kind == PolicyDrop:
			p.Packets = p.Chain.Base.Counter.Packets
		default:
			p.Packets = p.Rule.Counter.Packets
		}
	}
	for i := range a.Logs {
		if l := &a.Logs[i]; l.Counted {
			l.Packets = l.Rule.Counter.Packets
		}
	}
}
