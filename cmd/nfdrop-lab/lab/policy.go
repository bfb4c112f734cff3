package lab

import (
	"fmt"
	"regexp"
	"strconv"
)

// PolicyCounter returns how many packets the policy of a built-in chain of
// the filter table took in namespace ns, as `iptables -nvxL CHAIN` (tool
// iptables or ip6tables) prints it. A policy drop is never seen by a log
// rule; this counter is what a source that needs no log rule is held to.
func (l *Lab) PolicyCounter(ns, tool, chain string) (uint64, error) {
	out, err := l.Run(ns, tool, "-w", "-nvxL", chain)
	if err != nil {
		return 0, err
	}
	return parsePolicyCounter(out)
}

var policyRE = regexp.MustCompile(`(?m)^Chain \S+ \(policy \S+ (\d+) packets, \d+ bytes\)`)

// parsePolicyCounter reads the packets of the "Chain X (policy P N packets,
// B bytes)" line of `iptables -nvxL X`.
func parsePolicyCounter(out string) (uint64, error) {
	m := policyRE.FindStringSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("no policy counter in %q", out)
	}
	return strconv.ParseUint(m[1], 10, 64)
}
