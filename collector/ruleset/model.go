// Package ruleset reads the nf_tables ruleset of a network namespace, with
// its counters and chain policies, and models it for analysis: tables,
// chains (base chain hook, priority, policy and the policy's packet
// counter), rules with their verdict, log statements, rate limits, counters
// and their match conditions in a canonical form that two rules can be
// compared by.
//
// Names are kept as the kernel holds them: any CAP_NET_ADMIN process can
// create a table or chain whose name is not valid UTF-8. Turn a name into
// terminal output with Printable (label values: classify.LabelText).
package ruleset

import (
	"slices"
	"time"
)

// Family is an nf_tables family (NFPROTO_*).
type Family uint8

// The families nf_tables knows.
const (
	FamilyINet   Family = 1
	FamilyIP     Family = 2
	FamilyARP    Family = 3
	FamilyNetdev Family = 5
	FamilyBridge Family = 7
	FamilyIP6    Family = 10
)

// String is the family as nft spells it.
func (f Family) String() string {
	switch f {
	case FamilyINet:
		return "inet"
	case FamilyIP:
		return "ip"
	case FamilyARP:
		return "arp"
	case FamilyNetdev:
		return "netdev"
	case FamilyBridge:
		return "bridge"
	case FamilyIP6:
		return "ip6"
	}
	return "unknown"
}

// Snapshot is one consistent read of the ruleset: every dump it was built
// from carried the same ruleset generation.
type Snapshot struct {
	Generation uint32 // the nf_tables generation id the read saw
	Tables     []*Table
	ReadAt     time.Time     // when the read finished
	ReadTook   time.Duration // how long the successful attempt took
	Attempts   int           // reads needed: more than 1 when the ruleset changed while read

	rules []*Rule // in the order of their messages (Recount)
	// expiring says that a verdict map's elements can expire or be
	// updated from the packet path, which changes the ruleset without a
	// new generation (Recount).
	expiring bool
}

// Age is how old the snapshot is at now.
func (s *Snapshot) Age(now time.Time) time.Duration { return now.Sub(s.ReadAt) }

// Chains returns every chain, table by table, in the kernel's order.
func (s *Snapshot) Chains() []*Chain {
	var out []*Chain
	for _, t := range s.Tables {
		out = append(out, t.Chains...)
	}
	return out
}

// RuleCount is the number of rules in the snapshot.
func (s *Snapshot) RuleCount() int {
	n := 0
	for _, t := range s.Tables {
		for _, c := range t.Chains {
			n += len(c.Rules)
		}
	}
	return n
}

// Table finds a table by family and name.
func (s *Snapshot) Table(f Family, name string) *Table {
	for _, t := range s.Tables {
		if t.Family == f && t.Name == name {
			return t
		}
	}
	return nil
}

// Table is an nf_tables table.
type Table struct {
	Family Family
	Name   string // the kernel's bytes; may be invalid UTF-8
	Handle uint64
	Flags  uint32
	Chains []*Chain // in the kernel's order
	Sets   []*Set
}

// Chain finds a chain of the table by name.
func (t *Table) Chain(name string) *Chain {
	for _, c := range t.Chains {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// Set finds a set (or map) of the table by name.
func (t *Table) Set(name string) *Set {
	for _, s := range t.Sets {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// Chain is an nf_tables chain; Base is set for a base chain (one attached to
// a hook).
type Chain struct {
	Table  *Table
	Name   string // the kernel's bytes; may be invalid UTF-8
	Handle uint64
	Base   *BaseChain
	Rules  []*Rule // in evaluation order
}

// BaseChain is what a chain attached to a netfilter hook adds.
type BaseChain struct {
	Type     string // filter, nat, route
	Hook     uint32 // the family's hook number; see HookName
	Priority int32
	Policy   VerdictKind // Accept or Drop
	// Counter is the chain's own counter, which the kernel bumps for the
	// packets the policy decides; nil when the chain has none (native nft
	// chains; iptables-nft creates its base chains with one).
	Counter *Counter
	Devices []string
}

// HookName names the chain's hook as nft does (input, forward, ...).
func (c *Chain) HookName() string {
	if c.Base == nil {
		return ""
	}
	h := c.Base.Hook
	switch c.Table.Family {
	case FamilyNetdev:
		return pick(h, "ingress", "egress")
	case FamilyARP:
		return pick(h, "input", "output", "", "forward")
	}
	return pick(h, "prerouting", "input", "forward", "output", "postrouting", "ingress")
}

func pick(i uint32, names ...string) string {
	if int(i) < len(names) && names[i] != "" {
		return names[i]
	}
	return "hook" + uitoa(uint64(i))
}

// Counter is a packet and byte count.
type Counter struct {
	Packets uint64
	Bytes   uint64
}

// Rule is one rule, with what the analysis needs decoded from its
// expressions; Exprs keeps every expression as the kernel sent it.
type Rule struct {
	Chain  *Chain
	Handle uint64
	Index  int // position in the chain, from 0

	Exprs []Expr
	// Terms are the rule's conditions in a canonical text: each term is
	// the loads and the check (cmp, range, lookup, xtables match) that
	// decide one condition, with registers renamed, so that the same
	// condition written by nft or by iptables-nft reads the same. A rule
	// matches a packet when every term holds. Rate limits are not terms
	// (see RateLimit).
	Terms []string

	Verdict Verdict
	// Map is set when the verdict comes from a verdict map (vmap): each
	// element maps a key to a verdict; packets matching no key continue.
	Map *VerdictMap

	Logs      []Log
	RateLimit *RateLimit
	// Counter is the rule's counter (nft counter, or the one iptables-nft
	// adds to every rule); nil when the rule has none.
	Counter *Counter
	// CounterExact says that the counter sees exactly the packets the
	// verdict applies to: no condition follows it in the rule.
	CounterExact bool
	// Stateful says that the rule has a condition whose outcome depends on
	// state rather than on the packet (quota, connlimit, recent, a set
	// updated from the packet path).
	Stateful bool
	// Xtables says that the rule uses xtables (iptables-nft) expressions.
	Xtables bool
	Comment string

	counterAt int // 1 + the index in Exprs of the expression Counter comes from; 0: none
}

// Unconditional says that every packet reaching the rule gets its verdict
// and statements.
func (r *Rule) Unconditional() bool {
	return len(r.Terms) == 0 && r.RateLimit == nil && !r.Stateful
}

// Expr is one expression as the kernel sent it: its name and its attributes
// (NFTA_EXPR_DATA), which alias the messages the snapshot was decoded from.
type Expr struct {
	Name string
	Data []byte
}

// VerdictKind is what a verdict does with the packet.
type VerdictKind uint8

// Verdicts. Continue is a rule without a verdict (or an explicit continue).
const (
	Continue VerdictKind = iota
	Accept
	Drop
	Reject // nft reject, xtables REJECT: a drop that answers the sender
	Jump
	Goto
	Return
	Queue  // handed to a user-space program (NFQUEUE), which decides
	NAT    // nat statements and targets end the chain as an accept does
	Stolen // the packet is taken (synproxy, ...)
	Other  // a terminal verdict the kernel holds that has no name here
)

var verdictNames = [...]string{"continue", "accept", "drop", "reject", "jump", "goto", "return", "queue", "nat", "stolen", "other"}

func (k VerdictKind) String() string {
	if int(k) < len(verdictNames) {
		return verdictNames[k]
	}
	return "other"
}

// Drops says that the verdict drops the packet (drop or reject).
func (k VerdictKind) Drops() bool { return k == Drop || k == Reject }

// Verdict is a rule's or a map element's verdict.
type Verdict struct {
	Kind  VerdictKind
	Chain string // the target of Jump and Goto
	Queue uint16 // the queue number of Queue
}

// VerdictMap is a rule's lookup in a map whose values are verdicts.
type VerdictMap struct {
	Set       string
	Anonymous bool // written inline in the rule (vmap { ... })
	Elements  []MapElement
}

// MapElement is one key of a verdict map and its verdict.
type MapElement struct {
	Key     []byte
	Verdict Verdict
}

// Verdicts returns the distinct verdict kinds of the map's elements.
func (m *VerdictMap) Verdicts() []VerdictKind {
	var out []VerdictKind
	for _, e := range m.Elements {
		if !slices.Contains(out, e.Verdict.Kind) {
			out = append(out, e.Verdict.Kind)
		}
	}
	return out
}

// LogKind is how a log statement was written.
type LogKind uint8

// Log statement kinds.
const (
	LogNFT     LogKind = iota // nft log (with group: NFLOG; without: kernel log)
	LogXtNFLOG                // xtables NFLOG target
	LogXtLOG                  // xtables LOG target (kernel log)
)

// Log is a log statement of a rule.
type Log struct {
	Kind LogKind
	// NFLOG says that the statement sends to an NFLOG group (Group); else
	// it writes to the kernel log, which no NFLOG reader sees.
	NFLOG  bool
	Group  uint16
	Prefix string
	// Before is how many of the rule's Terms precede the statement: the
	// statement logs the packets that passed Terms[:Before].
	Before int
	// Sampled says that a rate limit precedes the statement in the rule:
	// it logs a sample of the packets, not all of them.
	Sampled bool
}

// RateLimit is a rule's rate limit (nft limit, xtables limit or hashlimit,
// a limit object or a meter).
type RateLimit struct {
	Kind string // limit, xt limit, xt hashlimit, limit object, meter
	// Over is nft's "limit rate over": the rule applies above the rate.
	Over bool
	Text string // the rate as far as it is known, e.g. "3/minute burst 10"
}

// Set is an nf_tables set or map. Elements are read for verdict maps only;
// the content of anonymous sets (up to MaxAnonymousSets of them) is read to
// compare the conditions that use them.
type Set struct {
	Name      string
	Flags     uint32
	KeyType   uint32
	DataType  uint32
	Anonymous bool
	Elements  []MapElement

	content [][]byte // an anonymous set's elements, as the kernel sent them
}

// IsVerdictMap says that the set maps keys to verdicts.
func (s *Set) IsVerdictMap() bool { return s.Flags&setFlagMap != 0 && s.DataType == dataTypeVerdict }

func uitoa(v uint64) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + v%10)
		v /= 10
		if v == 0 {
			return string(b[i:])
		}
	}
}
