// Package lab builds the nfdrop lab: a pair of network namespaces joined by a
// veth pair, a firewall ruleset from deploy/firewall applied in the server
// namespace, and helpers to run processes and Go socket code in either
// namespace. It is shared by the nfdrop-lab command and the end-to-end tests
// of the exporter; everything it creates lives inside its own namespaces and
// is removed by Close.
package lab

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop-lab/lab/netns"
)

// Fixed lab addressing. Every lab uses the same addresses and MACs: they
// live in the lab's own namespaces, so labs with different prefixes do not
// collide, and the crafter can address the server by MAC without ARP/NDP.
var (
	ServerIPv4 = netip.MustParseAddr("10.99.0.1")
	ClientIPv4 = netip.MustParseAddr("10.99.0.2")
	ServerIPv6 = netip.MustParseAddr("fd99::1")
	ClientIPv6 = netip.MustParseAddr("fd99::2")
	ServerMAC  = net.HardwareAddr{0x02, 0x99, 0x00, 0x00, 0x00, 0x01}
	ClientMAC  = net.HardwareAddr{0x02, 0x99, 0x00, 0x00, 0x00, 0x02}
)

// Interface names inside the namespaces.
const (
	ServerIf = "veth-s"
	ClientIf = "veth-c"
)

// Ruleset selects which firewall implementation the lab applies.
type Ruleset string

// The two rulesets shipped in deploy/firewall.
const (
	Iptables Ruleset = "iptables" // iptables.rules + ip6tables.rules
	Nftables Ruleset = "nftables" // nftables.nft
)

// Lab is one namespace pair. Create it with New and always Close it.
type Lab struct {
	Prefix string
	Server string // server namespace name
	Client string // client namespace name

	ruleset Ruleset

	mu     sync.Mutex
	closed bool
	procs  []*exec.Cmd

	// closeMu is held for the whole of Close, so that a second caller
	// (main's defer racing a signal handler) returns only once the
	// namespaces are really gone.
	closeMu  sync.Mutex
	closeErr error
}

var prefixRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,24}$`)

// New creates the namespaces "<prefix>-srv" and "<prefix>-cli". A stale lab
// with the same prefix (a previous run that was killed) is removed first.
func New(prefix string) (*Lab, error) {
	if !prefixRE.MatchString(prefix) {
		return nil, fmt.Errorf("lab prefix %q: want 1-24 of [A-Za-z0-9_-]", prefix)
	}
	l := &Lab{Prefix: prefix, Server: prefix + "-srv", Client: prefix + "-cli"}
	if err := l.setup(); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

func (l *Lab) setup() error {
	s, c := l.Server, l.Client
	for _, ns := range []string{s, c} {
		if err := netns.Create(ns); err != nil {
			return err
		}
	}
	steps := [][]string{
		// Both ends are created directly inside their namespaces: nothing
		// ever appears in the caller's namespace, so concurrent labs cannot
		// race on temporary interface names.
		{"ip", "link", "add", ServerIf, "address", ServerMAC.String(), "netns", s,
			"type", "veth", "peer", "name", ClientIf, "address", ClientMAC.String(), "netns", c},
	}
	for _, ns := range []struct{ name, ifname, v4, v6 string }{
		{s, ServerIf, ServerIPv4.String() + "/24", ServerIPv6.String() + "/64"},
		{c, ClientIf, ClientIPv4.String() + "/24", ClientIPv6.String() + "/64"},
	} {
		steps = append(steps,
			// No DAD, router solicitations or SLAAC: the lab must be silent
			// on its own, so that every packet reaching the NFLOG rule is one
			// a scenario sent (the e2e test asserts exact counts).
			[]string{"ip", "netns", "exec", ns.name, "sysctl", "-qw",
				"net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0",
				"net.ipv6.conf.all.router_solicitations=0", "net.ipv6.conf.default.router_solicitations=0",
				"net.ipv6.conf." + ns.ifname + ".accept_dad=0",
				"net.ipv6.conf." + ns.ifname + ".router_solicitations=0",
				"net.ipv6.conf." + ns.ifname + ".accept_ra=0",
				"net.ipv6.conf." + ns.ifname + ".autoconf=0"},
			[]string{"ip", "-n", ns.name, "addr", "add", ns.v4, "dev", ns.ifname},
			[]string{"ip", "-n", ns.name, "addr", "add", ns.v6, "dev", ns.ifname, "nodad"},
			[]string{"ip", "-n", ns.name, "link", "set", ns.ifname, "up"},
		)
	}
	for _, st := range steps {
		if _, err := run(st[0], st[1:]...); err != nil {
			return err
		}
	}
	// Static neighbour entries: real TCP then works without waiting for
	// ARP/NDP, and no resolution traffic interleaves with the scenarios.
	neigh := [][]string{
		{"ip", "-n", s, "neigh", "replace", ClientIPv4.String(), "lladdr", ClientMAC.String(), "dev", ServerIf, "nud", "permanent"},
		{"ip", "-n", s, "neigh", "replace", ClientIPv6.String(), "lladdr", ClientMAC.String(), "dev", ServerIf, "nud", "permanent"},
		{"ip", "-n", c, "neigh", "replace", ServerIPv4.String(), "lladdr", ServerMAC.String(), "dev", ClientIf, "nud", "permanent"},
		{"ip", "-n", c, "neigh", "replace", ServerIPv6.String(), "lladdr", ServerMAC.String(), "dev", ClientIf, "nud", "permanent"},
	}
	for _, st := range neigh {
		if _, err := run(st[0], st[1:]...); err != nil {
			return err
		}
	}
	return nil
}

// run executes a command in the caller's namespace and returns its stdout;
// the error carries stderr.
func run(name string, args ...string) (string, error) { return netns.Run("", name, args...) }

// Run runs a command inside the namespace ns and returns its stdout.
func (l *Lab) Run(ns string, name string, args ...string) (string, error) {
	return netns.Run(ns, name, args...)
}

// Start starts a long-running command inside the namespace ns. Close stops
// it (SIGTERM, then SIGKILL) if the caller has not waited for it already.
func (l *Lab) Start(ns string, stdout, stderr io.Writer, name string, args ...string) (*exec.Cmd, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, errors.New("lab is closed")
	}
	// ip netns exec execs the command in place, so cmd.Process is the
	// command itself and signals reach it directly.
	cmd := netns.Command(ns, name, args...)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	l.procs = append(l.procs, cmd)
	return cmd, nil
}

// Sysctl sets per-namespace sysctls (e.g. net.netfilter.*) in ns.
func (l *Lab) Sysctl(ns string, kv ...string) error {
	_, err := l.Run(ns, "sysctl", append([]string{"-qw"}, kv...)...)
	return err
}

// Apply loads the ruleset files from dir (deploy/firewall) into the server
// namespace: iptables.rules and ip6tables.rules, or nftables.nft.
func (l *Lab) Apply(r Ruleset, dir string) error {
	switch r {
	case Iptables:
		for _, c := range []struct{ tool, file string }{
			{"iptables-restore", "iptables.rules"},
			{"ip6tables-restore", "ip6tables.rules"},
		} {
			p := filepath.Join(dir, c.file)
			if _, err := os.Stat(p); err != nil {
				return err
			}
			if _, err := l.Run(l.Server, c.tool, p); err != nil {
				return err
			}
		}
	case Nftables:
		p := filepath.Join(dir, "nftables.nft")
		if _, err := os.Stat(p); err != nil {
			return err
		}
		if _, err := l.Run(l.Server, "nft", "-f", p); err != nil {
			return err
		}
	default:
		return fmt.Errorf("unknown ruleset %q (want iptables or nftables)", r)
	}
	l.ruleset = r
	return nil
}

// RuleCounter returns the summed packet counters of the NFLOG/log rules that
// feed the given group, over both families.
func (l *Lab) RuleCounter(group int) (uint64, error) {
	switch l.ruleset {
	case Iptables:
		var sum uint64
		for _, tool := range []string{"iptables-save", "ip6tables-save"} {
			out, err := l.Run(l.Server, tool, "-c", "-t", "filter")
			if err != nil {
				return 0, err
			}
			n, err := parseIptablesSave(out, group)
			if err != nil {
				return 0, fmt.Errorf("%s: %w", tool, err)
			}
			sum += n
		}
		return sum, nil
	case Nftables:
		out, err := l.Run(l.Server, "nft", "-j", "list", "ruleset")
		if err != nil {
			return 0, err
		}
		return parseNftJSON([]byte(out), group)
	}
	return 0, errors.New("no ruleset applied")
}

// parseIptablesSave sums the "[packets:bytes]" of -j NFLOG rules of group in
// `iptables-save -c` output. iptables omits "--nflog-group 0" (the default).
func parseIptablesSave(out string, group int) (uint64, error) {
	var sum uint64
	found := false
	for _, line := range strings.Split(out, "\n") {
		if !strings.Contains(line, " -j NFLOG") {
			continue
		}
		g := 0
		if m := regexp.MustCompile(`--nflog-group (\d+)`).FindStringSubmatch(line); m != nil {
			g, _ = strconv.Atoi(m[1])
		}
		if g != group {
			continue
		}
		m := regexp.MustCompile(`^\[(\d+):\d+\]`).FindStringSubmatch(line)
		if m == nil {
			return 0, fmt.Errorf("no counter in %q", line)
		}
		n, err := strconv.ParseUint(m[1], 10, 64)
		if err != nil {
			return 0, err
		}
		sum += n
		found = true
	}
	if !found {
		return 0, fmt.Errorf("no NFLOG rule for group %d", group)
	}
	return sum, nil
}

// parseNftJSON sums the counters of rules that have both a "log" statement
// for group and a "counter" statement.
func parseNftJSON(b []byte, group int) (uint64, error) {
	var doc struct {
		Nftables []struct {
			Rule *struct {
				Expr []map[string]json.RawMessage `json:"expr"`
			} `json:"rule"`
		} `json:"nftables"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return 0, err
	}
	var sum uint64
	found := false
	for _, o := range doc.Nftables {
		if o.Rule == nil {
			continue
		}
		var logGroup *int
		var packets *uint64
		for _, e := range o.Rule.Expr {
			if raw, ok := e["log"]; ok {
				var lg struct {
					Group *int `json:"group"`
				}
				if err := json.Unmarshal(raw, &lg); err == nil && lg.Group != nil {
					logGroup = lg.Group
				}
			}
			if raw, ok := e["counter"]; ok {
				var c struct {
					Packets uint64 `json:"packets"`
				}
				if err := json.Unmarshal(raw, &c); err == nil {
					packets = &c.Packets
				}
			}
		}
		if logGroup != nil && *logGroup == group {
			if packets == nil {
				return 0, fmt.Errorf("log group %d rule has no counter", group)
			}
			sum += *packets
			found = true
		}
	}
	if !found {
		return 0, fmt.Errorf("no log rule for group %d", group)
	}
	return sum, nil
}

// Close stops the processes started with Start and removes both namespaces
// (and with them the veth pair, rules and conntrack tables). It is
// idempotent and safe to call from a signal handler goroutine.
func (l *Lab) Close() error {
	l.closeMu.Lock()
	defer l.closeMu.Unlock()
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return l.closeErr
	}
	l.closed = true
	procs := l.procs
	l.procs = nil
	l.mu.Unlock()

	for _, p := range procs {
		stopProcess(p, 3*time.Second)
	}
	l.closeErr = l.removeNamespaces()
	return l.closeErr
}

// stopProcess sends SIGTERM, waits up to grace for the process to end,
// then SIGKILLs it. It never calls Wait (callers usually wait for their
// process themselves and Wait must be called once); os.Process signals
// through a pidfd, so a process already reaped is never confused with a
// new one that reused its pid.
func stopProcess(p *exec.Cmd, grace time.Duration) {
	if p.Process == nil {
		return
	}
	pid := p.Process.Pid
	if err := p.Process.Signal(syscall.SIGTERM); err != nil {
		return // already reaped
	}
	if waitGone(pid, grace) {
		return
	}
	_ = p.Process.Kill()
	waitGone(pid, grace)
}

// waitGone polls until pid has exited (gone or a zombie awaiting Wait).
func waitGone(pid int, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return true
		}
		if i := bytes.LastIndexByte(b, ')'); i >= 0 && i+2 < len(b) && (b[i+2] == 'Z' || b[i+2] == 'X') {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// removeNamespaces kills what still runs inside the lab's namespaces and
// deletes them (netns.Remove).
func (l *Lab) removeNamespaces() error {
	return errors.Join(netns.Remove(l.Server), netns.Remove(l.Client))
}
