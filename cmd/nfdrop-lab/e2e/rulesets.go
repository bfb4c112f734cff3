package e2e

import (
	"fmt"
	"strings"
)

// TenThousandRules is an nftables ruleset of 10,000 rules for the tests and
// benchmarks of reading large rulesets: 100 chains of 99 rules, each with a
// counter, alternately a drop rule and a rule that logs to group 1 and
// accepts, and a base chain with a drop policy that jumps to each of them.
func TenThousandRules() string {
	var b strings.Builder
	b.WriteString("table inet big {\n")
	for c := 0; c < 100; c++ {
		fmt.Fprintf(&b, "chain c%d {\n", c)
		for r := 0; r < 99; r++ {
			if r%2 == 0 {
				fmt.Fprintf(&b, "ip saddr 10.%d.%d.1 tcp dport %d counter drop\n", c, r, 1000+r)
			} else {
				fmt.Fprintf(&b, "ip saddr 10.%d.%d.1 log group 1 counter accept\n", c, r)
			}
		}
		b.WriteString("}\n")
	}
	b.WriteString("chain input {\ntype filter hook input priority 0; policy drop;\n")
	for c := 0; c < 100; c++ {
		fmt.Fprintf(&b, "jump c%d\n", c)
	}
	b.WriteString("}\n}\n")
	return b.String()
}
