//go:build linux

package droppoint

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop-lab/e2e"
	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop-lab/lab"
	"github.com/nfdrop/nfdrop_exporter/collector/ruleset"
	"golang.org/x/sys/unix"
)

// The kernel tests load rulesets with nft -f and iptables-restore
// (iptables-nft) into the server namespace of a lab of their own (nfd-dp*),
// read them back and check each drop point's coverage. NFDROP_E2E=1, root.

var seq int

// load loads rulesets (tool, text) into a fresh namespace and analyzes it
// with group 0 counting.
func load(t *testing.T, rulesets ...[2]string) *Analysis {
	t.Helper()
	e2e.Require(t, "ip", "nft", "iptables-restore", "ip6tables-restore")
	seq++
	l, err := lab.New(fmt.Sprintf("nfd-dp%d-%d", seq, os.Getpid()%100000))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Error(err)
		}
	})
	for i, rs := range rulesets {
		p := filepath.Join(t.TempDir(), fmt.Sprint("rules", i))
		if err := os.WriteFile(p, []byte(rs[1]), 0o644); err != nil {
			t.Fatal(err)
		}
		args := []string{"-c", p}
		if rs[0] == "nft" {
			args = []string{"-f", p}
		}
		if _, err := l.Run(l.Server, rs[0], args...); err != nil {
			t.Fatal(err)
		}
	}
	fd, err := unix.Open(filepath.Join(lab.NetnsDir, l.Server), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	s, err := ruleset.Netlink{Timeout: 5 * time.Second, NetNS: fd}.Read()
	if err != nil {
		t.Fatal(err)
	}
	return Analyze(s, Options{Groups: []uint16{0}})
}

func nft(text string) [2]string      { return [2]string{"nft", text} }
func iptables(text string) [2]string { return [2]string{"iptables-restore", text} }

// TestRuleDrops (base chains of equal priority: none runs before another):
// a drop with a log in the same rule, an unconditional log
// before it, one with the same condition, one with a broader condition, a
// narrower one (cannot tell), a rate-limited one, a log to another group,
// and none.
func TestRuleDrops(t *testing.T) {
	a := load(t, nft(`table inet t {
	chain same { type filter hook input priority 0; policy accept;
		tcp dport 1 log group 0 counter drop
	}
	chain unconditional { type filter hook input priority 0; policy accept;
		log group 0
		tcp dport 2 drop
		tcp dport 3 reject
	}
	chain identical { type filter hook input priority 0; policy accept;
		tcp dport 4 log group 0
		tcp dport 4 drop
	}
	chain broader { type filter hook input priority 0; policy accept;
		tcp dport 5 log group 0
		ip saddr 192.0.2.1 tcp dport 5 drop
	}
	chain narrower { type filter hook input priority 0; policy accept;
		ip saddr 192.0.2.1 tcp dport 6 log group 0
		tcp dport 6 drop
	}
	chain other { type filter hook input priority 0; policy accept;
		udp dport 7 log group 0
		tcp dport 7 drop
	}
	chain sampled { type filter hook input priority 0; policy accept;
		limit rate 3/minute log group 0
		tcp dport 8 drop
	}
	chain wronggroup { type filter hook input priority 0; policy accept;
		log group 9
		tcp dport 9 drop
	}
	chain none { type filter hook input priority 0; policy accept;
		tcp dport 10 drop
	}
}`))
	check(t, a, "t",
		"same#0=covered",
		"unconditional#1=covered", "unconditional#2=covered",
		"identical#1=covered",
		"broader#1=covered",
		"narrower#1=cannot tell",
		"other#1=cannot tell",
		"sampled#1=sampled",
		"wronggroup#1=not covered",
		"none#0=not covered")
	for _, p := range a.DropPoints {
		if name(p) == "narrower#1" && (p.By == nil || p.By.Index != 0) {
			t.Errorf("narrower: By %+v, want the log rule", p.By)
		}
	}
}

// TestPolicies: a policy drop with a log rule at the end, with a log in a
// chain jumped to unconditionally, with a log only on some paths, with a
// conditional log, and without any; an accept policy is no drop point.
// The input chains share their hook: "bare" sees only what "end" (which
// runs first) accepted, tcp dport 80, after end logged and dropped the
// rest; bare accepts those too, so its policy drops nothing unlogged.
// "alone", at another hook, has no log rule before it.
func TestPolicies(t *testing.T) {
	a := load(t, nft(`table ip p {
	chain logall { log group 0; }
	chain maybe { tcp dport 22 return; log group 0; }
	chain end { type filter hook input priority 0; policy drop;
		tcp dport 80 accept
		log group 0 counter
	}
	chain viajump { type filter hook input priority 1; policy drop;
		tcp dport 80 accept
		jump logall
	}
	chain somepaths { type filter hook input priority 2; policy drop;
		jump maybe
	}
	chain conditional { type filter hook input priority 3; policy drop;
		tcp dport 23 log group 0
	}
	chain bare { type filter hook input priority 4; policy drop;
		tcp dport 80 accept
	}
	chain acceptpolicy { type filter hook input priority 5; policy accept;
	}
	chain returns { type filter hook input priority 6; policy drop;
		udp dport 53 return
		log group 0
	}
	chain alone { type filter hook forward priority 0; policy drop;
		tcp dport 80 accept
	}
}`))
	check(t, a, "p",
		"end#policy=covered",
		"viajump#policy=covered",
		"somepaths#policy=not covered",
		"conditional#policy=cannot tell",
		"bare#policy=covered",
		"returns#policy=not covered",
		"alone#policy=not covered")
}

// TestJumpsAndGotos: a drop in a chain reached by jump after a log rule in
// the caller is covered; reached from two callers of which one logs, it is
// not; a goto passes the caller's coverage on; a chain nothing reaches is
// unreachable; rules after an unconditional goto or drop are unreachable.
func TestJumpsAndGotos(t *testing.T) {
	a := load(t, nft(`table inet j {
	chain dropper { counter drop; }
	chain shared { tcp dport 1 drop; }
	chain gone { counter drop; }
	chain orphan { drop; }
	chain a { type filter hook input priority 0; policy accept;
		log group 0
		jump dropper
	}
	chain b { type filter hook input priority 1; policy accept;
		tcp dport 1 log group 0
		tcp dport 1 jump shared
	}
	chain c { type filter hook forward priority 1; policy accept;
		jump shared
	}
	chain d { type filter hook output priority 0; policy accept;
		log group 0
		goto gone
		drop
	}
}`))
	check(t, a, "j",
		"dropper#0=covered",
		"shared#0=not covered",
		"gone#0=covered",
		"orphan#0=unreachable",
		"d#2=unreachable")
}

// TestVerdictMaps: drop elements of a map are a drop point covered by an
// earlier log; jump elements pass the coverage at the lookup on; a map
// whose drop elements no log sees is not covered.
func TestVerdictMaps(t *testing.T) {
	a := load(t, nft(`table inet m {
	map bad { type ipv4_addr : verdict; elements = { 192.0.2.1 : drop, 192.0.2.2 : jump deny } }
	chain deny { counter reject; }
	chain in { type filter hook input priority 0; policy accept;
		log group 0
		ip saddr vmap @bad
	}
	chain out { type filter hook output priority 0; policy accept;
		tcp dport vmap { 22 : accept, 23 : drop }
	}
}`))
	check(t, a, "m",
		"deny#0=covered",
		"in#1 map=covered",
		"out#0 map=not covered")
}

// TestIptablesNft: ufw's shape written with iptables-restore: the INVALID
// drop behind a LOG rule (kernel log: not covered), the policy covered by
// an NFLOG rule at the top of the after chain, a drop reached through it,
// and the policy counters the kernel keeps.
func TestIptablesNft(t *testing.T) {
	a := load(t, iptables(`*filter
:INPUT DROP [21:2100]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:before - [0:0]
:after - [0:0]
:skip - [0:0]
:logdeny - [0:0]
[0:0] -A INPUT -j before
[0:0] -A INPUT -j after
[3:300] -A before -m conntrack --ctstate INVALID -j logdeny
[3:300] -A before -m conntrack --ctstate INVALID -j DROP
[0:0] -A before -p tcp --dport 80 -j ACCEPT
[0:0] -A logdeny -m limit --limit 3/min --limit-burst 10 -j LOG --log-prefix "[BLOCK] "
[9:900] -A after -j NFLOG --nflog-group 0
[4:400] -A after -p udp --dport 137 -j skip
[4:400] -A skip -j DROP
COMMIT
`))
	check(t, a, "filter",
		"INPUT#policy=covered",
		"FORWARD#policy=not covered",
		"before#1=not covered",
		"skip#0=covered")
	drops, uncounted := a.FirewallDrops()
	want := []ChainDrops{
		{"ip", "filter", "FORWARD", 0},
		{"ip", "filter", "INPUT", 21},
		{"ip", "filter", "before", 3},
		{"ip", "filter", "skip", 4},
	}
	// Every drop point is counted: the table's uncounted series is 0.
	if wantU := []TableUncounted{{"ip", "filter", 0}}; !slices.Equal(drops, want) || !slices.Equal(uncounted, wantU) {
		t.Errorf("FirewallDrops:\n got %+v %+v\nwant %+v %+v", drops, uncounted, want, wantU)
	}
	// Counting the kernel log too: logdeny's LOG does not cover the INVALID
	// drop (the jump to it is conditional and it returns some packets
	// unlogged), the analysis says so.
	k := Analyze(a.Snapshot, Options{Groups: []uint16{0}, KernelLog: true})
	for _, p := range k.DropPoints {
		if name(p) == "before#1" && p.Coverage != NotCovered {
			t.Errorf("INVALID drop with kernel log counted: %s", p.Coverage)
		}
	}
}

// TestKernelLogWouldCover: a LOG rule in front of a drop covers it when
// kernel-log statements count, and only then.
func TestKernelLogWouldCover(t *testing.T) {
	a := load(t, iptables(`*filter
:INPUT ACCEPT [0:0]
-A INPUT -p tcp --dport 23 -j LOG --log-prefix "telnet "
-A INPUT -p tcp --dport 23 -j DROP
COMMIT
`))
	check(t, a, "filter", "INPUT#1=not covered")
	k := Analyze(a.Snapshot, Options{Groups: []uint16{0}, KernelLog: true})
	check(t, k, "filter", "INPUT#1=covered")
	if k.DropPoints[0].By == nil || k.DropPoints[0].By.Index != 0 {
		t.Errorf("By: %+v", k.DropPoints[0].By)
	}
}

// TestPriorBaseChain: a log rule in a base chain that runs before
// (lower priority, same hook) covers a drop with the same condition, even
// across iptables-nft and nft spellings; one after it does not.
func TestPriorBaseChain(t *testing.T) {
	a := load(t,
		iptables("*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -m conntrack --ctstate INVALID -j DROP\n-A INPUT -p tcp --dport 23 -j DROP\nCOMMIT\n"),
		nft(`table inet nfdrop {
	chain early { type filter hook input priority -5; policy accept;
		ct state invalid log group 0 counter
	}
	chain late { type filter hook input priority 5; policy accept;
		tcp dport 23 log group 0
	}
}`))
	check(t, a, "filter", "INPUT#0=covered", "INPUT#1=not covered")
}

// TestCalleeInheritsConditionalLog: firewalld's split of a rich rule with
// nflog and reject: the log in one chain, the reject in a sibling chain
// jumped to next, both with the rule's condition.
func TestCalleeInheritsConditionalLog(t *testing.T) {
	a := load(t, nft(`table inet f {
	chain zone_log { ip saddr 192.0.2.1 log group 0; }
	chain zone_deny { ip saddr 192.0.2.1 reject; ip saddr 192.0.2.2 drop; }
	chain zone { jump zone_log; jump zone_deny; }
	chain input { type filter hook input priority 10; policy accept;
		jump zone
	}
}`))
	check(t, a, "f", "zone_deny#0=covered", "zone_deny#1=not covered")
}

// TestUsedUpAndMirroredKernel: the shapes of two recipes as the kernel
// holds them. ufw's with an NFLOG line above the INVALID drop: a deny rule
// in the chain jumped to at the end is not covered. firewalld's with the
// recipe's table: it returns where firewalld accepts (anonymous sets in
// two tables) and logs the INVALID packets, which covers firewalld's drop.
func TestUsedUpAndMirroredKernel(t *testing.T) {
	a := load(t,
		iptables(`*filter
:INPUT DROP [0:0]
:before - [0:0]
:user - [0:0]
-A INPUT -j before
-A before -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A before -m conntrack --ctstate INVALID -j NFLOG --nflog-group 0
-A before -m conntrack --ctstate INVALID -j DROP
-A before -j user
-A user -p tcp -m tcp --dport 23 -j DROP
-A INPUT -j NFLOG --nflog-group 0
COMMIT
`),
		nft(`table inet fw {
	chain filter_INPUT { type filter hook input priority filter + 10; policy accept;
		ct state { established, related } accept
		iifname "lo" accept
		ct state invalid drop
		tcp dport 23 drop
	}
}
table inet ours {
	chain input { type filter hook input priority filter + 5; policy accept;
		ct state { established, related } return
		iifname "lo" return
		ct state invalid log group 0 counter
	}
}`))
	check(t, a, "filter", "INPUT#policy=covered", "before#2=covered", "user#0=not covered")
	check(t, a, "fw", "filter_INPUT#2=covered", "filter_INPUT#3=not covered")
}
