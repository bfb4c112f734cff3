package ruleaudit

import (
	"cmp"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/nfdrop/nfdrop_exporter/collector/classify"
	"github.com/nfdrop/nfdrop_exporter/collector/droppoint"
)

// DefaultMaxAge is how long one read of the ruleset serves scrapes by
// default: none, so that a scrape compares the exporter's counts with the
// kernel's of the same moment. Scrapes that arrive while a read runs wait
// for it and share it either way.
const DefaultMaxAge time.Duration = 0

// DefaultTimeout bounds one read of the ruleset.
const DefaultTimeout = 2 * time.Second

// MaxChainSeries caps the nfdrop_log_rule_packets_total series per group:
// chain names are the operator's, and a generated ruleset can log from
// thousands of chains. Beyond the cap (in family, table, chain order) the
// counters are summed into table and chain "(other)" of their family, so the
// group's sum stays exact.
const MaxChainSeries = 64

// OtherLabel names the chains beyond MaxChainSeries.
const OtherLabel = "(other)"

// arrivalMargin covers packets logged just before a rule vanished and
// delivered in a later kernel batch: they must not count as arriving without
// a rule.
const arrivalMargin = time.Second

// Config configures an Auditor.
type Config struct {
	Groups []classify.Group // the NFLOG groups read; rules logging elsewhere are ignored
	Reader Reader
	MaxAge time.Duration // how long a read serves later scrapes
	// LastPacket returns when the group's newest packet arrived (zero: none
	// yet); it lets the auditor notice packets arriving while no rule it
	// can see logs to the group. Nil disables that check.
	LastPacket func(classify.Group) time.Time
	Now        func() time.Time // nil: time.Now
}

// Audit is one read of the ruleset, as it concerns the groups read.
type Audit struct {
	ReadAt time.Time // when the read started
	Err    error     // the read failed: nothing else is set
	// Groups has every group's log rules, in configuration order.
	Groups []GroupRules
	// Chains are the packet counters of the counted log rules, summed per
	// group and chain, at most MaxChainSeries per group. Family, table
	// and chain are valid label values.
	Chains []ChainPackets
	// Drops and Uncounted are the ruleset's drop points: the kernel's
	// counts per chain, and per table the drop points it does not count.
	Drops     []droppoint.ChainDrops
	Uncounted []droppoint.TableUncounted
}

// GroupRules counts the rules that log to one group.
type GroupRules struct {
	Group     classify.Group
	Rules     int // rules that log to the group
	Uncounted int // of those, rules without a counter
}

// ChainPackets is the summed packet counter of a group's log rules in one chain.
type ChainPackets struct {
	Group                classify.Group
	Family, Table, Chain string
	Packets              uint64
}

// Auditor reads the ruleset when asked, sharing one read among concurrent
// callers and later ones within MaxAge, and logs what an operator must act
// on, once per change.
type Auditor struct {
	cfg    Config
	logger *slog.Logger

	mu        sync.Mutex // serializes reads: concurrent callers share one
	last      Audit
	kept      kept                         // the last read's analysis (a keepingReader's)
	uncounted map[classify.Group]int       // last logged count of rules without counter
	zeroSince map[classify.Group]time.Time // first read that found no rule for the group
	warned    map[classify.Group]bool      // packets-without-rule warning given
	noRule    map[classify.Group]bool      // no-rule notice given
}

// New builds an Auditor.
func New(cfg Config, logger *slog.Logger) *Auditor {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Auditor{cfg: cfg, logger: logger, uncounted: map[classify.Group]int{},
		zeroSince: map[classify.Group]time.Time{}, warned: map[classify.Group]bool{}, noRule: map[classify.Group]bool{}}
}

// Read returns the audit of a read at most MaxAge old, reading the ruleset
// if there is none.
func (a *Auditor) Read() Audit {
	called := a.cfg.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.cfg.Now()
	// A read that started after this call did is as fresh as one of its
	// own: concurrent scrapes share it.
	if r := a.last.ReadAt; !r.IsZero() && (!r.Before(called) || now.Sub(r) < a.cfg.MaxAge) {
		return a.last
	}
	read := a.cfg.Reader.Read
	if k, ok := a.cfg.Reader.(keepingReader); ok {
		read = func() (Ruleset, error) { return k.readKept(&a.kept) }
	}
	rs, err := read()
	if err != nil {
		// The reader already reads again while the ruleset changes under
		// its dumps; one more try covers a read that failed otherwise
		// (a Reader of another kind, a transient socket error).
		rs, err = read()
	}
	if err != nil {
		a.logger.Warn("Reading the nf_tables ruleset failed; nfdrop_log_rule_audit_success is 0", "err", err)
		a.last = Audit{ReadAt: now, Err: err}
		return a.last
	}
	a.last = a.audit(rs.LogRules, now)
	a.last.Drops, a.last.Uncounted = rs.Drops, rs.Uncounted
	a.report(a.last, now)
	return a.last
}

// audit sums the rules that log to the groups read.
func (a *Auditor) audit(rules []Rule, now time.Time) Audit {
	out := Audit{ReadAt: now, Groups: make([]GroupRules, len(a.cfg.Groups))}
	index := map[classify.Group]int{}
	for i, g := range a.cfg.Groups {
		out.Groups[i].Group = g
		index[g] = i
	}
	packets := map[chainKey]uint64{}
	for _, r := range rules {
		i, read := index[classify.NFLOGGroup(r.Group)]
		if !read {
			continue
		}
		out.Groups[i].Rules++
		if !r.Counted {
			out.Groups[i].Uncounted++
			continue
		}
		// Names that are not UTF-8 (any CAP_NET_ADMIN process can make
		// one) become valid label values; chains that then read alike
		// are summed.
		k := chainKey{classify.NFLOGGroup(r.Group), classify.LabelText(r.Family), classify.LabelText(r.Table), classify.LabelText(r.Chain)}
		packets[k] += r.Packets
	}
	for k, n := range capChains(packets) {
		out.Chains = append(out.Chains, ChainPackets{k.group, k.family, k.table, k.chain, n})
	}
	slices.SortFunc(out.Chains, func(x, y ChainPackets) int {
		return cmp.Or(cmp.Compare(x.Group, y.Group), cmp.Compare(x.Family, y.Family), cmp.Compare(x.Table, y.Table), cmp.Compare(x.Chain, y.Chain))
	})
	return out
}

type chainKey struct {
	group                classify.Group
	family, table, chain string
}

// capChains keeps the first MaxChainSeries chains of each group and sums the
// rest per family into "(other)".
func capChains(packets map[chainKey]uint64) map[chainKey]uint64 {
	perGroup := map[classify.Group][]chainKey{}
	for k := range packets {
		perGroup[k.group] = append(perGroup[k.group], k)
	}
	for _, keys := range perGroup {
		if len(keys) <= MaxChainSeries {
			continue
		}
		slices.SortFunc(keys, func(a, b chainKey) int {
			return cmp.Or(cmp.Compare(a.family, b.family), cmp.Compare(a.table, b.table), cmp.Compare(a.chain, b.chain))
		})
		for _, k := range keys[MaxChainSeries:] {
			n := packets[k]
			delete(packets, k)
			packets[chainKey{k.group, k.family, OtherLabel, OtherLabel}] += n
		}
	}
	return packets
}

// report logs what an operator must act on, once per change.
func (a *Auditor) report(au Audit, now time.Time) {
	for _, gr := range au.Groups {
		g := gr.Group
		if n := gr.Uncounted; n != a.uncounted[g] {
			a.uncounted[g] = n
			if n > 0 {
				a.logger.Warn("Log rules without a counter: add \"counter\" to them so that the exporter can check its counts against the kernel's",
					"group", g.String(), "rules", n)
			}
		}
		if gr.Rules > 0 {
			delete(a.zeroSince, g)
			a.warned[g], a.noRule[g] = false, false
			continue
		}
		if !a.noRule[g] {
			a.noRule[g] = true
			a.logger.Warn("No nf_tables rule logs to this NFLOG group, so no drop can reach it unless an iptables-legacy rule does: iptables-legacy rules are invisible to nf_tables. Check the group number of your log rule (nfdrop_log_rules is 0)",
				"group", g.String())
		}
		since, ok := a.zeroSince[g]
		if !ok {
			a.zeroSince[g] = now
			continue
		}
		if a.cfg.LastPacket == nil || a.warned[g] {
			continue
		}
		if last := a.cfg.LastPacket(g); !last.IsZero() && last.After(since.Add(arrivalMargin)) {
			a.warned[g] = true
			a.logger.Warn("Packets arrive on the group but no nf_tables rule logs to it: the rule is most likely an iptables-legacy rule (iptables -V says \"legacy\"), which nf_tables cannot show; nfdrop_log_rules stays 0, so switch the audit off with --no-collector.rule-audit or move to iptables-nft",
				"group", g.String())
		}
	}
}

// LogRules returns the number of nf_tables rules that log to group g, from a
// read at most MaxAge old; ok is false when the read failed or g is not read.
func (a *Auditor) LogRules(g classify.Group) (n int, ok bool) {
	au := a.Read()
	if au.Err != nil {
		return 0, false
	}
	for _, gr := range au.Groups {
		if gr.Group == g {
			return gr.Rules, true
		}
	}
	return 0, false
}
