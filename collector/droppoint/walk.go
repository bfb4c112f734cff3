package droppoint

import (
	"slices"

	"github.com/nfdrop/nfdrop_exporter/collector/ruleset"
)

// walker walks one chain's rules in order.
type walker struct {
	a       *analyzer
	chain   *ruleset.Chain
	record  bool // record drop points and call sites (not for fallThrough)
	weakAll bool // every conditional log statement is weak
	points  []DropPoint

	s     state // what is known of every packet reaching the current rule
	conds []condLog
	many  bool // more conditional log statements than maxCondLogs
	// passed is how many of conds every packet leaving the chain passed:
	// those before its first return or goto.
	passed  int
	exiting bool // a return or goto has been seen
}

// walk returns the state of the packets that leave the chain by falling
// through, return or goto.
func (w *walker) walk(entry state, inherited []condLog) state {
	w.s = entry
	w.conds = append(w.conds[:0], inherited...)
	w.passed, w.exiting = 0, false
	exit := state{cov: Unreachable}
	for _, r := range w.chain.Rules {
		at := w.at(r.Terms)
		for _, l := range r.Logs {
			// The rule's own verdict applies to packets that passed its
			// log statement: a rate limit in front of both leaves the
			// verdict as many packets as it leaves the statement.
			if w.a.counts(l) {
				at = better(at, state{cov: Covered, by: r})
			}
		}
		exit = worse(exit, w.verdict(r, r.Verdict, at))
		if r.Map != nil {
			var drops []ruleset.VerdictKind
			for _, e := range r.Map.Elements {
				if e.Verdict.Kind.Drops() && !slices.Contains(drops, e.Verdict.Kind) {
					drops = append(drops, e.Verdict.Kind)
				}
				if e.Verdict.Kind != ruleset.Drop && e.Verdict.Kind != ruleset.Reject {
					exit = worse(exit, w.verdict(r, e.Verdict, at))
				}
			}
			if len(drops) > 0 && w.record {
				w.points = append(w.points, DropPoint{Kind: MapDrop, Chain: w.chain, Rule: r, Verdict: drops[0], Coverage: at.cov, By: at.by})
			}
		}
		if !w.exiting && exits(r) {
			w.exiting, w.passed = true, len(w.conds)
		}
		w.after(r)
	}
	if !w.exiting {
		w.passed = len(w.conds)
	}
	return worse(exit, w.at(nil))
}

// exits says that some packets leave the chain at r by return or goto.
func exits(r *ruleset.Rule) bool {
	if r.Verdict.Kind == ruleset.Return || r.Verdict.Kind == ruleset.Goto {
		return true
	}
	if r.Map != nil {
		for _, e := range r.Map.Elements {
			if e.Verdict.Kind == ruleset.Return || e.Verdict.Kind == ruleset.Goto {
				return true
			}
		}
	}
	return false
}

// logged is the state a log statement gives to the packets it sees.
func logged(l ruleset.Log, r *ruleset.Rule) state {
	if l.Sampled {
		return state{cov: Sampled, by: r}
	}
	return state{cov: Covered, by: r}
}

// at is what is known of the packets that reach a rule with these terms and
// pass them.
func (w *walker) at(terms []string) state {
	st := w.s
	for _, c := range w.conds {
		if c.gone {
			if subset(c.terms, terms) {
				return state{cov: Unreachable}
			}
			continue
		}
		if len(c.exits) > 0 {
			continue
		}
		if subset(c.terms, terms) {
			st = better(st, logged(ruleset.Log{Sampled: c.sampled}, c.rule))
		} else if !c.weak && !w.weakAll {
			st = better(st, state{cov: CannotTell, by: c.rule})
		}
	}
	if w.many {
		st = better(st, state{cov: CannotTell})
	}
	return st
}

// verdict records a drop point or a call, and returns the state of the
// packets that leave the chain by this verdict (Unreachable: none).
func (w *walker) verdict(r *ruleset.Rule, v ruleset.Verdict, at state) state {
	switch v.Kind {
	case ruleset.Drop, ruleset.Reject:
		if w.record && r.Verdict == v {
			p := DropPoint{Kind: RuleDrop, Chain: w.chain, Rule: r, Verdict: v.Kind, Coverage: at.cov, By: at.by}
			if r.Counter != nil && r.CounterExact {
				p.Counted, p.Packets = true, r.Counter.Packets
			}
			w.points = append(w.points, p)
		}
	case ruleset.Jump:
		w.call(v.Chain, at, r)
	case ruleset.Goto:
		target := w.call(v.Chain, at, r)
		if target == nil {
			return at
		}
		return better(at, w.a.fallThroughOf(target).st)
	case ruleset.Return:
		return at
	}
	return state{cov: Unreachable}
}

func (w *walker) call(name string, at state, r *ruleset.Rule) *ruleset.Chain {
	target := w.chain.Table.Chain(name)
	if target != nil && w.record {
		conds := slices.DeleteFunc(slices.Clone(w.conds), func(c condLog) bool { return c.gone || len(c.exits) > 0 })
		for _, l := range r.Logs {
			if w.a.counts(l) {
				conds = append(conds, condLog{terms: r.Terms[:l.Before], sampled: l.Sampled, rule: r})
			}
		}
		w.a.calls[target] = append(w.a.calls[target], callSite{st: at, conds: conds, terms: r.Terms})
	}
	return target
}

// after updates what is known of the packets that go on past r.
func (w *walker) after(r *ruleset.Rule) {
	for _, l := range r.Logs {
		if !w.a.counts(l) {
			continue
		}
		if l.Before == 0 {
			w.s = better(w.s, logged(l, r))
		} else {
			w.addCond(condLog{terms: r.Terms[:l.Before], sampled: l.Sampled, rule: r})
		}
	}
	if ends(r) {
		for i, c := range w.conds {
			if subset(r.Terms, c.terms) {
				w.conds[i].gone = true
			}
			if len(c.exits) > 0 {
				w.conds[i].exits = slices.DeleteFunc(slices.Clone(c.exits), func(e []string) bool { return subset(r.Terms, e) })
			}
		}
	}
	if !r.Unconditional() {
		return
	}
	switch {
	case leaves(r.Verdict.Kind):
		w.s = state{cov: Unreachable}
	case r.Verdict.Kind == ruleset.Jump:
		if target := w.chain.Table.Chain(r.Verdict.Chain); target != nil {
			ft := w.a.fallThroughOf(target)
			w.s = better(w.s, ft.st)
			for _, c := range ft.conds {
				c.weak = true
				w.addCond(c)
			}
		}
	}
}

// ends says that r ends the chain for every packet that passes its terms:
// a verdict that leaves the chain, without a rate limit, stateful condition
// or verdict map in the way.
func ends(r *ruleset.Rule) bool {
	return r.RateLimit == nil && !r.Stateful && r.Map == nil && leaves(r.Verdict.Kind)
}

// leaves says that verdict k ends the chain for the packets it applies to.
func leaves(k ruleset.VerdictKind) bool {
	switch k {
	case ruleset.Accept, ruleset.Drop, ruleset.Reject, ruleset.Queue, ruleset.NAT, ruleset.Stolen, ruleset.Return, ruleset.Goto:
		return true
	}
	return false
}

func (w *walker) addCond(c condLog) {
	if len(c.terms) == 0 {
		w.s = better(w.s, logged(ruleset.Log{Sampled: c.sampled}, c.rule))
		return
	}
	if len(w.conds) >= maxCondLogs {
		w.many = true
		return
	}
	w.conds = append(w.conds, c)
}

// subset says that every term of a is in b: a's condition is no narrower
// than b's.
func subset(a, b []string) bool {
	for _, t := range a {
		if !slices.Contains(b, t) {
			return false
		}
	}
	return true
}
