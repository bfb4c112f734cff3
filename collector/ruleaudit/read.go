package ruleaudit

import (
	"time"

	"github.com/nfdrop/nfdrop_exporter/collector/droppoint"
	"github.com/nfdrop/nfdrop_exporter/collector/ruleset"
)

// Rule is one nf_tables rule that logs to an NFLOG group.
type Rule struct {
	Family string // nft family name: ip, ip6, inet, arp, bridge, netdev
	Table  string
	Chain  string
	LogTarget
}

// LogTarget is what one rule says about logging to NFLOG.
type LogTarget struct {
	Group   uint16
	Counted bool   // the rule has a counter
	Packets uint64 // its packet count (0 when not Counted)
}

// Ruleset is what the audit needs of one read of the ruleset.
type Ruleset struct {
	LogRules []Rule // the rules that log to an NFLOG group, any group
	// Drops are the kernel's counts of the packets each chain's drop and
	// reject rules and drop policy dropped; Uncounted the drop points per
	// table the kernel does not count. Both are capped and their names are
	// valid label values (droppoint.Analysis.FirewallDrops).
	Drops     []droppoint.ChainDrops
	Uncounted []droppoint.TableUncounted
}

// Reader reads the ruleset the exporter's network namespace sees.
type Reader interface {
	Read() (Ruleset, error)
}

// Netlink reads the ruleset over nf_tables netlink (CAP_NET_ADMIN) in the
// calling process's network namespace, with package ruleset, and finds its
// log rules and drop points with package droppoint. An Auditor keeps the
// analysis of its last read: while the ruleset's generation stays the same,
// its reads only recount.
type Netlink struct {
	// Timeout bounds one whole read: a ruleset too large to dump in time
	// fails the read instead of stalling scrapes.
	Timeout time.Duration
	// NetNS is a file descriptor of another network namespace to read;
	// 0 reads the caller's own.
	NetNS int
}

// Read implements Reader.
func (n Netlink) Read() (Ruleset, error) { return n.readKept(&kept{}) }

// kept is the analysis of the last read, which a read of the same
// generation reuses: it recounts the counters and skips decoding the rules
// and analysing them again.
type kept struct {
	snap     *ruleset.Snapshot
	analysis *droppoint.Analysis
}

// keepingReader is a Reader that can reuse the analysis of its last read.
type keepingReader interface {
	readKept(k *kept) (Ruleset, error)
}

func (n Netlink) readKept(k *kept) (Ruleset, error) {
	raw, err := ruleset.Netlink{Timeout: n.Timeout, NetNS: n.NetNS}.ReadMessages()
	if err != nil {
		return Ruleset{}, err
	}
	if k.snap != nil {
		if ok, err := k.snap.Recount(raw); ok && err == nil {
			k.analysis.Recount()
			return fromAnalysis(k.analysis), nil
		}
		*k = kept{}
	}
	snap, err := ruleset.Decode(raw)
	if err != nil {
		return Ruleset{}, err
	}
	a := droppoint.Analyze(snap, droppoint.Options{})
	*k = kept{snap, a}
	return fromAnalysis(a), nil
}

// fromAnalysis extracts what the audit needs from the analysis of a read.
func fromAnalysis(a *droppoint.Analysis) Ruleset {
	var out Ruleset
	for _, l := range a.Logs {
		if !l.NFLOG {
			continue // a kernel-log statement, which no NFLOG reader sees
		}
		c := l.Rule.Chain
		out.LogRules = append(out.LogRules, Rule{Family: c.Table.Family.String(), Table: c.Table.Name, Chain: c.Name,
			LogTarget: LogTarget{Group: l.Group, Counted: l.Counted, Packets: l.Packets}})
	}
	out.Drops, out.Uncounted = a.FirewallDrops()
	return out
}
