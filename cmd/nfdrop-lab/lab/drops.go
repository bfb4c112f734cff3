package lab

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Drops is what an iptables ruleset's own counters say it dropped, over
// every table: the packets of the rules whose target is DROP or REJECT
// (REJECT answers, then drops) and of the built-in chains whose policy is
// DROP. A drop of either kind is a netfilter drop for the kernel, whether or
// not a log rule saw it.
type Drops struct {
	Rules    uint64
	Policies uint64
}

// Total is every packet the ruleset dropped.
func (d Drops) Total() uint64 { return d.Rules + d.Policies }

// DropCounters reads the drops of the iptables rulesets of both families in
// namespace ns (iptables-save -c; iptables-nft and iptables-legacy alike).
func (l *Lab) DropCounters(ns string) (v4, v6 Drops, err error) {
	for _, c := range []struct {
		tool string
		out  *Drops
	}{{"iptables-save", &v4}, {"ip6tables-save", &v6}} {
		out, err := l.Run(ns, c.tool, "-c")
		if err != nil {
			return v4, v6, err
		}
		if *c.out, err = parseDrops(out); err != nil {
			return v4, v6, fmt.Errorf("%s: %w", c.tool, err)
		}
	}
	return v4, v6, nil
}

var (
	// ":INPUT DROP [12:720]": a chain's policy and its counter ("-" for a user chain).
	policyLineRE = regexp.MustCompile(`^:\S+ (\S+) \[(\d+):\d+\]$`)
	// "[12:720] -A INPUT ...": a rule's counter.
	ruleLineRE = regexp.MustCompile(`^\[(\d+):\d+\] -A \S+ `)
)

// parseDrops sums the DROP and REJECT rules and the DROP policies of
// `iptables-save -c` output.
func parseDrops(out string) (Drops, error) {
	var d Drops
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, ":"):
			m := policyLineRE.FindStringSubmatch(line)
			if m == nil {
				return d, fmt.Errorf("chain line without a counter: %q", line)
			}
			if m[1] == "DROP" {
				n, err := strconv.ParseUint(m[2], 10, 64)
				if err != nil {
					return d, err
				}
				d.Policies += n
			}
		case strings.HasPrefix(line, "["):
			m := ruleLineRE.FindStringSubmatch(line)
			if m == nil {
				return d, fmt.Errorf("rule line without a counter: %q", line)
			}
			// The target is the word after the first -j: a log prefix may
			// quote another. A rule without one only counts or marks.
			_, rest, ok := strings.Cut(line, " -j ")
			if target, _, _ := strings.Cut(rest, " "); ok && (target == "DROP" || target == "REJECT") {
				n, err := strconv.ParseUint(m[1], 10, 64)
				if err != nil {
					return d, err
				}
				d.Rules += n
			}
		case strings.HasPrefix(line, "-A"):
			return d, fmt.Errorf("rule without a counter (not iptables-save -c output?): %q", line)
		}
	}
	return d, nil
}
