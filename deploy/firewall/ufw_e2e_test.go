//go:build linux

package firewall_test

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop-lab/e2e"
	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop-lab/lab"
)

// ufwFiles are the files ufw leaves to the user: the only ones the recipe
// may change.
var ufwFiles = []string{"/etc/ufw/before.rules", "/etc/ufw/before6.rules", "/etc/ufw/after.rules", "/etc/ufw/after6.rules"}

// TestUFW: Debian's ufw as a new user sets it up (deny incoming, allow 80
// and 443, logging medium) in a lab namespace, the recipe, and the
// exporter on its group.
func TestUFW(t *testing.T) {
	e2e.Require(t, "ip", "nft", "iptables", "iptables-save", "ip6tables-save", "nsenter", "unshare",
		"nmap", "ping", "conntrack", "apt-get", "ufw")
	r := newRecipeLab(t, "ufw", 5)
	sb := r.sb
	install := filepath.Join(recipeDir("ufw"), "install")
	for _, args := range [][]string{{"allow", "80/tcp"}, {"allow", "443/tcp"}, {"logging", "medium"}, {"--force", "enable"}} {
		sb.must("ufw", args...)
	}
	forwarding(t, r)

	orig := map[string]string{}
	for _, f := range ufwFiles {
		orig[f] = sb.read(f)
	}
	treeBefore := sb.tree("/etc/ufw", "/etc/default/ufw")

	step(t, "doctor on vanilla ufw")
	{
		dropped, _ := r.quietTraffic("ufw: vanilla", true, func() { ufwTraffic(t, r, true) })
		d := r.doctor()
		d.golden(t, "ufw-vanilla")
		// Every drop point of both families, the chains' policies and
		// what stands for them (skip-to-policy) included.
		packets := d.check(t, 1, []string{
			"drop-not-logged ip filter INPUT: policy",
			"drop-not-logged ip filter FORWARD: policy",
			"drop-not-logged ip filter ufw-before-input: ct state invalid counter drop",
			"drop-not-logged ip filter ufw-not-local: counter drop",
			"drop-not-logged ip filter ufw-skip-to-policy-input: counter drop",
			"drop-not-logged ip6 filter INPUT: policy",
			"drop-not-logged ip6 filter FORWARD: policy",
			"drop-not-logged ip6 filter ufw6-before-input: rt type 0 counter drop",
			"drop-not-logged ip6 filter ufw6-before-input: ct state invalid counter drop",
			"drop-not-logged ip6 filter ufw6-before-forward: rt type 0 counter drop",
			"drop-not-logged ip6 filter ufw6-before-output: rt type 0 counter drop",
			"drop-not-logged ip6 filter ufw6-skip-to-policy-input: counter drop",
		})
		// The crafted packets, where they are dropped.
		r.checkDoctorPackets(t, packets, map[string]uint64{
			"ip filter ufw-skip-to-policy-input: counter drop":     8, // the IPv4 noise
			"ip6 filter ufw6-skip-to-policy-input: counter drop":   2, // the IPv6 noise
			"ip6 filter ufw6-before-input: rt type 0 counter drop": 2,
			"ip filter FORWARD: policy":                            2,
			"ip6 filter FORWARD: policy":                           2,
		}, dropped)
	}

	step(t, "install")
	{
		out := sb.must(install, "--group", r.group)
		t.Log(out)
		if got := changedFiles(treeBefore, sb.tree("/etc/ufw", "/etc/default/ufw")); !slices.Equal(got, sorted(ufwFiles)) {
			t.Errorf("install changed %v, want exactly %v", got, ufwFiles)
		}
	}
	installed := sb.tree("/etc/ufw", "/etc/default/ufw")
	step(t, "install twice changes nothing")
	{
		out := sb.must(install, "--group", r.group)
		if !strings.Contains(out, "nothing to change") {
			t.Errorf("second install said:\n%s", out)
		}
		if got := changedFiles(installed, sb.tree("/etc/ufw", "/etc/default/ufw")); len(got) != 0 {
			t.Errorf("second install changed %v", got)
		}
	}
	sb.must("ufw", "reload")
	ufwRules(t, r)
	r.startExporter()

	step(t, "traffic")
	{
		p := r.beginPhaseIptables("ufw: traffic")
		ufwTraffic(t, r, true)
		res := p.settle(0)
		wantPrefixes(t, res, map[string]int{
			"ufw-invalid":        -1,
			"ufw-noise":          10,
			"ufw-rh0":            2,
			"ufw-policy-input":   -1,
			"ufw-policy-forward": 4,
		})
		if res.byPrefix["ufw-invalid"] <= 2*countSends(invalidTCP(false)) {
			t.Errorf("ufw-invalid %d: want the %d crafted INVALID packets and the real late FIN/RST",
				res.byPrefix["ufw-invalid"], 2*countSends(invalidTCP(false)))
		}
		r.checkIptables(t, res)
		d := r.doctor()
		d.golden(t, "ufw-recipe")
		d.check(t, 0, nil)
	}

	step(t, "ufw deny rules are not covered")
	{
		sb.must("ufw", "deny", "23/tcp")
		p := r.beginPhaseIptables("ufw: deny 23/tcp")
		syn := lab.Send{Desc: "SYN to 23", Count: 3, Packet: tcpSYN(srv4, 23)}
		r.send(syn)
		res := p.settle(3)
		if res.counted != 0 {
			t.Errorf("exporter counted %d drops of a ufw deny rule, want 0", res.counted)
		}
		if n := r.chainDrops("ufw-user-input", "ufw6-user-input"); n != 3 {
			t.Errorf("ufw-user-input DROP counters: %d, want 3", n)
		}
		d := r.doctor()
		d.golden(t, "ufw-recipe-deny")
		// The deny rule (both families) is all that is left.
		packets := d.check(t, 1, ufwDenyFindings)
		if p := packets[ufwDeny4]; p == nil || *p != 3 {
			t.Errorf("doctor: %s: packets %v, want 3", ufwDeny4, p)
		}
	}

	step(t, "default reject incoming")
	{
		sb.must("ufw", "default", "reject", "incoming")
		if out := sb.must(install, "--group", r.group); !strings.Contains(out, "nothing to change") {
			t.Errorf("install after `ufw default reject incoming` said:\n%s", out)
		}
		ufwRules(t, r)
		p := r.beginPhaseIptables("ufw: reject policy")
		// Not port 23: the deny rule above drops it.
		r.nmap("-sS", "21-22,25,8080", srv4)
		r.nmap("-sS", "21-22,25,8080", srv6)
		r.send(invalidTCP(false)...)
		res := p.settle(0)
		wantPrefixes(t, res, map[string]int{"ufw-policy-input": -1, "ufw-invalid": int(countSends(invalidTCP(false)))})
		r.checkIptables(t, res)
		d := r.doctor()
		d.golden(t, "ufw-recipe-reject")
		d.check(t, 1, ufwDenyFindings)
	}

	step(t, "ufw reload keeps it")
	{
		sb.must("ufw", "reload")
		ufwRules(t, r)
		r.shortPhase(t, "ufw: after reload")
	}

	step(t, "apt-get install --reinstall ufw keeps it")
	{
		before := map[string]string{}
		for _, f := range ufwFiles {
			before[f] = sb.read(f)
		}
		t.Log(sb.reinstall("ufw"))
		for _, f := range ufwFiles {
			if got := sb.read(f); got != before[f] {
				t.Errorf("%s changed by the reinstall", f)
			}
		}
		sb.must("ufw", "reload")
		ufwRules(t, r)
		r.shortPhase(t, "ufw: after reinstall")
	}

	step(t, "uninstall")
	{
		rulesBefore := strings.Join(withoutOurs(r.iptablesS()), "\n")
		treeInstalled := sb.tree("/etc/ufw", "/etc/default/ufw")
		t.Log(sb.must(install, "--uninstall"))
		for _, f := range ufwFiles {
			if got := sb.read(f); got != orig[f] {
				t.Errorf("%s after uninstall differs from before install", f)
			}
		}
		if got := changedFiles(treeInstalled, sb.tree("/etc/ufw", "/etc/default/ufw")); !slices.Equal(got, sorted(ufwFiles)) {
			t.Errorf("uninstall changed %v, want exactly %v", got, ufwFiles)
		}
		sb.must("ufw", "reload")
		if got := strings.Join(r.iptablesS(), "\n"); got != rulesBefore {
			t.Errorf("ruleset after uninstall and reload:\n%s\nwant the one before without the NFLOG rules:\n%s", got, rulesBefore)
		}
	}
}

// The drops of `ufw deny 23/tcp`, which no recipe can precede.
const (
	ufwDeny4 = "ip filter ufw-user-input: tcp dport 23 counter drop"
	ufwDeny6 = "ip6 filter ufw6-user-input: tcp dport 23 counter drop"
)

var ufwDenyFindings = []string{"drop-not-logged " + ufwDeny4, "drop-not-logged " + ufwDeny6}

// ufwTraffic is the traffic of the ufw test: real HTTP and TCP that leaves
// late FIN/RST, scans, crafted INVALID packets, broadcast and NetBIOS noise,
// an IPv6 routing header type 0, forwarded packets and pings.
func ufwTraffic(t *testing.T, r *rlab, closeWait bool) {
	t.Helper()
	for _, v6 := range []bool{false, true} {
		r.tcp(v6, lab.TCPClean, lab.TCPCTDeleteLateFIN, lab.TCPCTDeleteLateRST)
	}
	if closeWait {
		r.tcp(false, lab.TCPCloseWaitLateFIN)
	}
	for _, dst := range []string{srv4, srv6} {
		r.nmap("-sS", "21-23,25,8080", dst)
		r.nmap("-sA", "21-23,25,8080", dst)
		r.ping(dst, 2)
	}
	r.send(invalidTCP(false)...)
	r.send(invalidTCP(true)...)
	// ufw's "noise": 10 packets that ufw-after-input sends straight to
	// the policy.
	r.send(
		udp("NetBIOS name, broadcast", "10.99.0.255", 137, 2),
		udp("NetBIOS datagram, broadcast", "10.99.0.255", 138, 2),
		udp("broadcast", "10.99.0.255", 9999, 2),
		udp("DHCP server port, limited broadcast", "255.255.255.255", 67, 1),
		udp("NetBIOS name, unicast", srv4, 137, 1),
		udp("NetBIOS name, IPv6", srv6, 137, 1),
		udp("DHCPv6 client port", srv6, 546, 1),
	)
	r.sendRaw(rh0(srv6), rh0(srv6))
	// Forwarded through the server (to its dummy network): the FORWARD
	// policy drops them.
	r.send(udp("forwarded", "10.98.0.5", 53, 2), udp("forwarded, IPv6", "fd98::5", 53, 2))
}

// shortPhase is a quick round of traffic that checks the identity.
func (r *rlab) shortPhase(t *testing.T, name string) {
	t.Helper()
	p := r.beginPhase(name)
	r.tcp(false, lab.TCPCTDeleteLateFIN)
	r.tcp(true, lab.TCPCTDeleteLateRST)
	r.nmap("-sS", "22,25", srv4)
	r.nmap("-sA", "22,25", srv6)
	r.send(invalidTCP(true)...)
	res := p.settle(0)
	if res.counted == 0 {
		t.Errorf("%s: nothing dropped", name)
	}
}

// forwarding makes the server a router to a network 10.98.0.0/24 and
// fd98::/64 (a veth pair of its own: this kernel has no dummy links), so
// that crafted packets to it cross the FORWARD hook.
func forwarding(t *testing.T, r *rlab) {
	t.Helper()
	for _, c := range [][]string{
		{"ip", "link", "add", "fwd0", "type", "veth", "peer", "name", "fwd1"},
		{"ip", "addr", "add", "10.98.0.1/24", "dev", "fwd0"},
		{"ip", "addr", "add", "fd98::1/64", "dev", "fwd0", "nodad"},
		{"sysctl", "-qw", "net.ipv6.conf.fwd0.accept_dad=0", "net.ipv6.conf.fwd1.accept_dad=0"},
		{"ip", "link", "set", "fwd1", "up"},
		{"ip", "link", "set", "fwd0", "up"},
	} {
		if _, err := r.Run(r.Server, c[0], c[1:]...); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Sysctl(r.Server, "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"); err != nil {
		t.Fatal(err)
	}
}

// ufwRules checks that the live ruleset has the recipe's NFLOG rules on the
// recipe's group: 11 for IPv4 and 12 for IPv6 with Debian's files.
func ufwRules(t *testing.T, r *rlab) {
	t.Helper()
	for tool, want := range map[string]int{"iptables": 11, "ip6tables": 12} {
		out, err := r.Run(r.Server, tool, "-S")
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, l := range strings.Split(out, "\n") {
			if strings.Contains(l, "--comment nfdrop_exporter -j NFLOG") {
				n++
				if !strings.Contains(l, "--nflog-group "+r.group+" ") {
					t.Errorf("%s: %q: not group %s", tool, l, r.group)
				}
			}
		}
		if n != want {
			t.Errorf("%s: %d NFLOG rules of the recipe, want %d", tool, n, want)
		}
	}
}

// zeroIptables zeroes the rule and policy counters of both families.
func (r *rlab) zeroIptables() {
	r.t.Helper()
	for _, tool := range []string{"iptables", "ip6tables"} {
		if _, err := r.Run(r.Server, tool, "-Z"); err != nil {
			r.t.Fatal(err)
		}
	}
}

// checkIptables compares a phase's counts with iptables' own counters
// (zeroed at the phase's start): DROP/REJECT rules plus DROP policies, and
// the recipe's NFLOG rules per prefix.
func (r *rlab) checkIptables(t *testing.T, res result) {
	t.Helper()
	drops, nflog := r.iptablesCounters()
	if drops != res.dropped {
		t.Errorf("iptables' DROP/REJECT rule and policy counters: %d, the hooks dropped %d", drops, res.dropped)
	}
	for _, p := range sortedKeys(nflog) {
		if nflog[p] != res.byPrefix[p] {
			t.Errorf("NFLOG rules with prefix %s counted %d, the exporter %d", p, nflog[p], res.byPrefix[p])
		}
	}
}

// iptablesS is `iptables -S` and `ip6tables -S` of the server.
func (r *rlab) iptablesS() []string {
	r.t.Helper()
	var lines []string
	for _, tool := range []string{"iptables", "ip6tables"} {
		out, err := r.Run(r.Server, tool, "-S")
		if err != nil {
			r.t.Fatal(err)
		}
		lines = append(lines, strings.Split(strings.TrimSpace(out), "\n")...)
	}
	return lines
}

// withoutOurs drops the lines of the recipe's rules.
func withoutOurs(lines []string) []string {
	var out []string
	for _, l := range lines {
		if !strings.Contains(l, "nfdrop_exporter") {
			out = append(out, l)
		}
	}
	return out
}
