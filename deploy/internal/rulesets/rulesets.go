// Package rulesets checks the example firewall rulesets of deploy/firewall against the
// deploy files that read their NFLOG group (the systemd unit's options, the DaemonSet).
package rulesets

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop-lab/e2e"
)

// patterns find the NFLOG group of each example ruleset's log rules.
var patterns = map[string]*regexp.Regexp{
	"iptables.rules":  regexp.MustCompile(`--nflog-group\s+(\d+)`),
	"ip6tables.rules": regexp.MustCompile(`--nflog-group\s+(\d+)`),
	"nftables.nft":    regexp.MustCompile(`\blog\b[^\n#]*\bgroup\s+(\d+)`),
}

// CheckGroup asserts that every example ruleset in deploy/firewall logs to group, and only
// to it. reader says who reads the group, for the failure ("the DaemonSet reads").
func CheckGroup(t testing.TB, group int, reader string) {
	t.Helper()
	dir := filepath.Join(e2e.Root(), "deploy", "firewall")
	for name, re := range patterns {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Errorf("example ruleset: %v", err)
			continue
		}
		var groups []string
		for _, line := range strings.Split(string(data), "\n") {
			if strings.HasPrefix(strings.TrimSpace(line), "#") {
				continue
			}
			for _, m := range re.FindAllStringSubmatch(line, -1) {
				groups = append(groups, m[1])
			}
		}
		if len(groups) == 0 {
			t.Errorf("%s: no NFLOG group found", name)
		}
		for _, g := range groups {
			if g != strconv.Itoa(group) {
				t.Errorf("%s logs to group %s, %s group %d", name, g, reader, group)
			}
		}
	}
}
