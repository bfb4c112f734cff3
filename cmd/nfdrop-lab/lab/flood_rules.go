package lab

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// ApplyRepeated loads rulesDir's (deploy/firewall's) iptables rulesets with
// the INPUT NFLOG rule of group repeated n times, so that every packet that
// reaches it is logged n times (scratch holds the rewritten files), and
// switches conntrack's loose pickup off so that mid-stream ACKs without an
// entry are INVALID and reach the NFLOG rules as late teardown packets do on
// a real server. The floods use it to multiply the message rate.
func (l *Lab) ApplyRepeated(rulesDir, scratch string, group, n int) error {
	for _, f := range []string{"iptables.rules", "ip6tables.rules"} {
		b, err := os.ReadFile(filepath.Join(rulesDir, f))
		if err != nil {
			return fmt.Errorf("lab: ruleset (set the rules directory to deploy/firewall): %w", err)
		}
		out, err := multiplyNFLOG(string(b), group, n)
		if err != nil {
			return fmt.Errorf("lab: %s: %w", f, err)
		}
		if err := os.WriteFile(filepath.Join(scratch, f), []byte(out), 0o600); err != nil {
			return err
		}
	}
	if err := l.Apply(Iptables, scratch); err != nil {
		return err
	}
	return l.Sysctl(l.Server, "net.netfilter.nf_conntrack_tcp_loose=0")
}

var nflogGroupRE = regexp.MustCompile(`--nflog-group (\d+)`)

// multiplyNFLOG repeats the INPUT NFLOG rule of an iptables-restore file n
// times in place.
func multiplyNFLOG(rules string, group, n int) (string, error) {
	var sb strings.Builder
	found := 0
	for _, line := range strings.SplitAfter(rules, "\n") {
		if strings.HasPrefix(line, "-A INPUT ") && strings.Contains(line, " -j NFLOG") {
			g := 0
			if m := nflogGroupRE.FindStringSubmatch(line); m != nil {
				g, _ = strconv.Atoi(m[1])
			}
			if g != group {
				return "", fmt.Errorf("the INPUT NFLOG rule logs to group %d, not %d", g, group)
			}
			found++
			for i := 1; i < n; i++ {
				sb.WriteString(line)
			}
		}
		sb.WriteString(line)
	}
	if found != 1 {
		return "", fmt.Errorf("want exactly one INPUT NFLOG rule, found %d", found)
	}
	return sb.String(), nil
}
