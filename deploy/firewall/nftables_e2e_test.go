//go:build linux

package firewall_test

import (
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop-lab/e2e"
	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop-lab/lab"
)

// A saved nftables ruleset of a web server as nftables.service loads it:
// INVALID dropped, a reject, a chain of its own with drops, a rate-limited
// reject, and drop policies.
const nftablesConf = `#!/usr/sbin/nft -f

flush ruleset

table inet filter {
	chain input {
		type filter hook input priority filter; policy drop;
		iif "lo" accept
		ct state invalid drop
		ct state established,related accept
		meta l4proto { icmp, ipv6-icmp } accept
		tcp dport { 80, 443 } accept
		tcp dport 23 reject with tcp reset
		udp dport vmap { 137 : jump noise, 138 : jump noise }
		udp dport 9 limit rate 1/hour burst 1 packets reject
	}
	chain noise {
		counter drop comment "NetBIOS"
	}
	chain forward {
		type filter hook forward priority filter; policy drop;
	}
	chain output {
		type filter hook output priority filter;
	}
}
`

// TestNftablesService: the ruleset nftables.service loads (nft -f
// /etc/nftables.conf) in the lab, the recipe, and the exporter on its group.
func TestNftablesService(t *testing.T) {
	e2e.Require(t, "ip", "nft", "nsenter", "unshare", "nmap", "ping", "conntrack", "apt-get")
	r := newRecipeLab(t, "nft", 8)
	sb := r.sb
	install := filepath.Join(recipeDir("nftables"), "install")
	forwarding(t, r)
	sb.must("sh", "-c", `printf '%s' "$1" > /etc/nftables.conf`, "w", nftablesConf)
	load := func() { sb.must("nft", "-f", "/etc/nftables.conf") } // what nftables.service runs
	load()
	loaded := withoutCounters(sb.must("nft", "list", "ruleset"))

	step(t, "doctor on the vanilla ruleset")
	{
		r.quietTraffic("nftables: vanilla", false, func() { nftTraffic(r) })
		d := r.doctor()
		d.golden(t, "nftables-vanilla")
		// Every drop point; only the noise chain's rule has a counter.
		packets := d.check(t, 1, []string{
			"drop-not-logged inet filter input: ct state invalid drop",
			"drop-not-logged inet filter input: tcp dport 23 reject with tcp reset",
			"drop-not-logged inet filter input: udp dport 9 limit rate 1/hour burst 1 packets reject",
			"drop-not-logged inet filter input: policy",
			`drop-not-logged inet filter noise: counter drop comment "NetBIOS"`,
			"drop-not-logged inet filter forward: policy",
		})
		if p := packets[`inet filter noise: counter drop comment "NetBIOS"`]; p == nil || *p != 4 {
			t.Errorf("doctor: the noise chain's drop: packets %v, want the 4 NetBIOS datagrams", p)
		}
		// The ruleset file is loaded again (as nftables.service would) with
		// zero counters before the recipe's phases.
		load()
	}

	step(t, "install")
	t.Log(sb.must(install, "--group", r.group))
	installed := sb.tree("/etc/nftables.conf", "/etc/nftables.d")
	if len(installed) != 2 {
		t.Errorf("files after install: %v", sortedKeys(installed))
	}
	if out := sb.must(install, "--group", r.group); !strings.Contains(out, "nothing to change") {
		t.Errorf("second install said:\n%s", out)
	}
	if got := changedFiles(installed, sb.tree("/etc/nftables.conf", "/etc/nftables.d")); len(got) != 0 {
		t.Errorf("second install changed %v", got)
	}
	load()
	r.startExporter()

	step(t, "traffic")
	{
		p := r.beginPhase("nftables: traffic")
		base := r.nftLogCounters()
		nftTraffic(r)
		res := p.settle(0)
		wantPrefixes(t, res, map[string]int{
			"nft-invalid":        -1,
			"nft-input":          3, // the SYNs to 23 and the first datagram to 9
			"nft-noise":          4,
			"nft-policy-input":   -1,
			"nft-policy-forward": 4,
		})
		if res.byPrefix["nft-invalid"] <= 2*countSends(invalidTCP(false)) {
			t.Errorf("nft-invalid %d: want the crafted INVALID packets and the real late FIN/RST", res.byPrefix["nft-invalid"])
		}
		r.checkNftLogs(t, res, base)
		d := r.doctor()
		d.golden(t, "nftables-recipe")
		d.check(t, 0, nil)
	}

	step(t, "reload (nft -f /etc/nftables.conf) keeps it")
	load()
	r.shortPhase(t, "nftables: after reload")

	step(t, "apt-get install --reinstall nftables keeps it")
	t.Log(sb.reinstall("nftables"))
	if got := changedFiles(installed, sb.tree("/etc/nftables.conf", "/etc/nftables.d")); len(got) != 0 {
		t.Errorf("the reinstall changed %v", got)
	}
	load()
	r.shortPhase(t, "nftables: after reinstall")

	step(t, "uninstall")
	t.Log(sb.must(install, "--uninstall"))
	if got := sb.read("/etc/nftables.conf"); got != nftablesConf {
		t.Errorf("/etc/nftables.conf after uninstall:\n%s", got)
	}
	if got := sb.tree("/etc/nftables.d"); len(got) != 0 {
		t.Errorf("left behind: %v", sortedKeys(got))
	}
	load()
	if got := withoutCounters(sb.must("nft", "list", "ruleset")); got != loaded {
		t.Errorf("ruleset after uninstall:\n%s\nbefore install:\n%s", got, loaded)
	}
}

// nftTraffic is the traffic of the nftables test: real HTTP and TCP with
// late FIN/RST, scans, pings, crafted INVALID packets, NetBIOS datagrams
// (the noise chain), datagrams to the rate-limited reject and forwarded
// ones.
func nftTraffic(r *rlab) {
	r.t.Helper()
	r.connectionsAndScans()
	r.send(
		udp("NetBIOS name", srv4, 137, 2),
		udp("NetBIOS datagram, IPv6", srv6, 138, 2),
		udp("discard, rate-limited reject", srv4, 9, 3),
		udp("forwarded", "10.98.0.5", 53, 2), udp("forwarded, IPv6", "fd98::5", 53, 2),
	)
}

var counterRE = regexp.MustCompile(`counter packets \d+ bytes \d+`)

// connectionsAndScans is the part of the nftables and netfilter-persistent
// tests' traffic that does not depend on the ruleset: real HTTP and TCP with
// late FIN/RST in both families, SYN and ACK scans, pings and crafted INVALID
// packets.
func (r *rlab) connectionsAndScans() {
	r.t.Helper()
	for _, v6 := range []bool{false, true} {
		r.tcp(v6, lab.TCPClean, lab.TCPCTDeleteLateFIN, lab.TCPCTDeleteLateRST)
	}
	for _, dst := range []string{srv4, srv6} {
		r.nmap("-sS", "21-23,25,8080", dst)
		r.nmap("-sA", "21-22,25,8080", dst)
		r.ping(dst, 2)
	}
	r.send(invalidTCP(false)...)
	r.send(invalidTCP(true)...)
}

// withoutCounters makes `nft list ruleset` output comparable.
func withoutCounters(s string) string { return counterRE.ReplaceAllString(s, "counter") }
