package ebpf

import (
	"fmt"
	"regexp"
	"strconv"
	"testing"

	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop-lab/lab"
)

// policyCounter returns how many packets the policy of a built-in chain of
// the filter table took in namespace ns, as `iptables -nvxL CHAIN` (tool
// iptables or ip6tables) prints it: what this source is held to, since no
// log rule ever sees a policy drop.
func policyCounter(l *lab.Lab, ns, tool, chain string) (uint64, error) {
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

func TestParsePolicyCounter(t *testing.T) {
	for _, tc := range []struct {
		out  string
		want uint64
		err  bool
	}{
		{"Chain INPUT (policy DROP 1234 packets, 56789 bytes)\n    pkts      bytes target     prot opt in     out     source               destination\n", 1234, false},
		{"Chain FORWARD (policy ACCEPT 0 packets, 0 bytes)\n", 0, false},
		// A user chain has references, not a policy.
		{"Chain mine (1 references)\n", 0, true},
		{"", 0, true},
	} {
		got, err := parsePolicyCounter(tc.out)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("%q: got %d, %v; want %d, err=%v", tc.out, got, err, tc.want, tc.err)
		}
	}
}
