package bench

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop-lab/lab"
)

// applyRules loads deploy/firewall's iptables rulesets with the NFLOG rule
// repeated n times, and switches conntrack's loose pickup off so that
// mid-stream ACKs without an entry are INVALID and reach the NFLOG rules,
// as late teardown packets do on a real server.
// An extra nftables file (Options.ExtraNft) follows them: the exporter reads
// every table at each scrape, so a large one there times its scrapes; its
// chains should not hook, or the flood pays for them too.
func applyRules(l *lab.Lab, o *Options, n int, dir string) error {
	if err := l.ApplyRepeated(o.RulesDir, dir, o.Group, n); err != nil {
		return err
	}
	if o.ExtraNft == "" {
		return nil
	}
	if _, err := l.Run(l.Server, "nft", "-f", o.ExtraNft); err != nil {
		return fmt.Errorf("bench: loading %s: %w", o.ExtraNft, err)
	}
	return nil
}

var (
	nflogGroupRE  = regexp.MustCompile(`--nflog-group (\d+)`)
	saveCounterRE = regexp.MustCompile(`^\[(\d+):\d+\] -A INPUT `)
)

// ruleCounters sums the packet counters of the INPUT NFLOG rules of group
// and of the INPUT ACCEPT rules other than loopback's, over both families.
func ruleCounters(l *lab.Lab, group int) (logged, accepted uint64, err error) {
	for _, tool := range []string{"iptables-save", "ip6tables-save"} {
		out, err := l.Run(l.Server, tool, "-c", "-t", "filter")
		if err != nil {
			return 0, 0, err
		}
		lg, acc, err := parseSaveCounters(out, group)
		if err != nil {
			return 0, 0, fmt.Errorf("%s: %w", tool, err)
		}
		logged += lg
		accepted += acc
	}
	return logged, accepted, nil
}

func parseSaveCounters(out string, group int) (logged, accepted uint64, err error) {
	found := false
	for _, line := range strings.Split(out, "\n") {
		m := saveCounterRE.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		n, err := strconv.ParseUint(m[1], 10, 64)
		if err != nil {
			return 0, 0, err
		}
		switch {
		case strings.Contains(line, " -j NFLOG"):
			g := 0
			if gm := nflogGroupRE.FindStringSubmatch(line); gm != nil {
				g, _ = strconv.Atoi(gm[1])
			}
			if g == group {
				logged += n
				found = true
			}
		case strings.HasSuffix(strings.TrimSpace(line), "-j ACCEPT") && !strings.Contains(line, " -i lo "):
			accepted += n
		}
	}
	if !found {
		return 0, 0, fmt.Errorf("no NFLOG rule for group %d", group)
	}
	return logged, accepted, nil
}

// dropCounter is every packet the server's rulesets dropped so far, by a
// rule or a policy, both families: the eBPF source's ground truth.
func dropCounter(l *lab.Lab) (uint64, error) {
	v4, v6, err := l.DropCounters(l.Server)
	return v4.Total() + v6.Total(), err
}

// waitDrained waits until no NETLINK_NETFILTER socket in the receiver's
// namespace has queued data, and returns their summed Drops.
func waitDrained(pid int, limit time.Duration) (uint64, error) {
	deadline := time.Now().Add(limit)
	empty := 0
	for {
		socks, err := netfilterSockets(pid)
		if err != nil {
			return 0, err
		}
		var rmem, drops uint64
		for _, s := range socks {
			rmem += s.Rmem
			drops += s.Drops
		}
		if rmem == 0 {
			empty++
		} else {
			empty = 0
		}
		// Twice empty in a row: a batch in flight between checks is not missed.
		if empty >= 2 {
			return drops, nil
		}
		if time.Now().After(deadline) {
			return drops, fmt.Errorf("bench: receiver still has %d bytes queued after %s", rmem, limit)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
