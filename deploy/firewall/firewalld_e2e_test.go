//go:build linux

package firewall_test

import (
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop-lab/e2e"
	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop-lab/lab"
)

// TestFirewalld: Debian's firewalld (nftables backend) with its own D-Bus in
// the sandbox, set up as a web server (public zone, http and https), the
// recipe, and the exporter on its group.
func TestFirewalld(t *testing.T) {
	e2e.Require(t, "ip", "nft", "nsenter", "unshare", "nmap", "ping", "conntrack", "apt-get",
		"firewalld", "firewall-cmd", "dbus-daemon", "python3")
	r := newRecipeLab(t, "fwd", 6)
	sb := r.sb
	install := filepath.Join(recipeDir("firewalld"), "install")
	forwarding(t, r)
	// A route to firewalld's RFC 3964 destinations, so that packets to them
	// reach the FORWARD hook.
	if _, err := r.Run(r.Server, "ip", "-6", "route", "add", "2002::/16", "dev", "fwd0"); err != nil {
		t.Fatal(err)
	}
	fwd := startFirewalld(t, sb)
	sb.must("firewall-cmd", "--permanent", "--zone=public", "--add-service=http", "--add-service=https")
	sb.must("firewall-cmd", "--reload")

	step(t, "doctor on vanilla firewalld")
	{
		r.quietTraffic("firewalld: vanilla", false, func() {
			firewalldTraffic(t, r)
			r.send(udp("forwarded", "10.98.0.5", 53, 2), udp("forwarded, IPv6", "fd98::5", 53, 2))
		})
		d := r.doctor()
		d.golden(t, "firewalld-vanilla")
		// firewalld's own drops before the zones, and the zone's rejects of
		// input and forward; its table has no counters.
		d.check(t, 1, append([]string{
			"drop-not-logged inet firewalld filter_PREROUTING: meta nfproto ipv6 fib saddr . mark . iif oif missing drop",
			"drop-not-logged inet firewalld filter_INPUT: ct state invalid drop",
			"drop-not-logged inet firewalld filter_FORWARD: ct state invalid drop",
			"drop-not-logged inet firewalld filter_FORWARD: ip6 daddr { " + firewalldRFC3964 + " } reject with icmpv6 addr-unreachable",
			"drop-not-logged inet firewalld filter_OUTPUT: ip6 daddr { " + firewalldRFC3964 + " } reject with icmpv6 addr-unreachable",
			"drop-not-logged inet firewalld filter_IN_public: reject with icmpx admin-prohibited",
		}, firewalldForwardReject...))
	}

	etcBefore := sb.tree("/etc/firewalld")
	tableBefore := sb.must("nft", "list", "table", "inet", "firewalld")
	ours := []string{"/etc/nfdrop_exporter/firewalld.nft", "/etc/systemd/system/nfdrop_exporter.service.d/firewalld.conf"}

	step(t, "install")
	t.Log(sb.must(install, "--group", r.group))
	firewalldRules(t, r, sb)
	dropin := sb.read(ours[1])
	if !strings.Contains(dropin, "ExecStartPre=+/usr/sbin/nft -f /etc/nfdrop_exporter/firewalld.nft") {
		t.Errorf("systemd drop-in:\n%s", dropin)
	}
	installed := sb.tree("/etc/firewalld", "/etc/nfdrop_exporter", "/etc/systemd/system/nfdrop_exporter.service.d")
	ruleset := sb.must("nft", "list", "ruleset")

	step(t, "install twice changes nothing")
	if out := sb.must(install, "--group", r.group); !strings.Contains(out, "nothing to change") {
		t.Errorf("second install said:\n%s", out)
	}
	if got := changedFiles(installed, sb.tree("/etc/firewalld", "/etc/nfdrop_exporter", "/etc/systemd/system/nfdrop_exporter.service.d")); len(got) != 0 {
		t.Errorf("second install changed %v", got)
	}
	if got := sb.must("nft", "list", "ruleset"); got != ruleset {
		t.Errorf("second install changed the ruleset:\n%s\nwas:\n%s", got, ruleset)
	}
	r.startExporter()

	step(t, "pings are accepted and not counted")
	{
		p := r.beginPhase("firewalld: pings")
		r.ping(srv4, 3)
		r.ping(srv6, 3)
		res := p.settle(0)
		if res.dropped != 0 || res.counted != 0 {
			t.Errorf("pings: dropped %d, counted %d, want 0 and 0", res.dropped, res.counted)
		}
	}

	step(t, "traffic")
	{
		p := r.beginPhase("firewalld: traffic")
		logBase := r.nftLogCounters()
		firewalldTraffic(t, r)
		// Forwarded through the default zone, which has no interfaces:
		// firewalld applies no policy to it, so nfdrop-forward does not
		// see these 4 (README: assign interfaces to zones).
		r.send(udp("forwarded", "10.98.0.5", 53, 2), udp("forwarded, IPv6", "fd98::5", 53, 2))
		res := p.settle(4)
		if res.byHook["forward"] != 4+2 {
			t.Errorf("forward hook dropped %d, want 6 (4 through the default zone, 2 RFC 3964)", res.byHook["forward"])
		}
		wantPrefixes(t, res, map[string]int{
			"firewalld-invalid":  -1,
			"firewalld-rpfilter": 3,
			"firewalld-rfc3964":  2,
			"firewalld-public":   -1,
		})
		if res.byPrefix["firewalld-public"] < 10 {
			t.Errorf("firewalld-public %d, want at least the 10 noise packets", res.byPrefix["firewalld-public"])
		}
		r.checkNftLogs(t, res, logBase)
		d := r.doctor()
		d.golden(t, "firewalld-recipe")
		d.check(t, 1, firewalldForwardReject)
	}

	step(t, "forwarded drops once the interface is in a zone")
	sb.must("firewall-cmd", "--permanent", "--zone=public", "--add-interface="+lab.ServerIf)
	sb.must("firewall-cmd", "--reload")
	{
		p := r.beginPhase("firewalld: forward")
		r.send(udp("forwarded", "10.98.0.5", 53, 2), udp("forwarded, IPv6", "fd98::5", 53, 2))
		r.nmap("-sS", "21,25", srv4)
		res := p.settle(0)
		wantPrefixes(t, res, map[string]int{"firewalld-forward": 4, "firewalld-public": -1})
		// Still reachable through the default zone from an interface in no
		// zone (fwd0 here), which passes no policy.
		d := r.doctor()
		d.golden(t, "firewalld-recipe-zone")
		d.check(t, 1, firewalldForwardReject)
	}

	step(t, "firewall-cmd --reload, --complete-reload and a restart keep it")
	sb.must("firewall-cmd", "--reload")
	sb.must("firewall-cmd", "--complete-reload")
	firewalldRules(t, r, sb)
	fwd.stop(t, 30*time.Second)
	fwd = startFirewalld(t, sb)
	firewalldRules(t, r, sb)
	r.shortPhase(t, "firewalld: after reloads and a restart")

	step(t, "apt-get install --reinstall firewalld keeps it")
	etcInstalled := sb.tree("/etc/firewalld", "/etc/nfdrop_exporter", "/etc/systemd/system/nfdrop_exporter.service.d")
	t.Log(sb.reinstall("firewalld"))
	if got := changedFiles(etcInstalled, sb.tree("/etc/firewalld", "/etc/nfdrop_exporter", "/etc/systemd/system/nfdrop_exporter.service.d")); len(got) != 0 {
		t.Errorf("the reinstall changed %v", got)
	}
	sb.must("firewall-cmd", "--reload")
	firewalldRules(t, r, sb)
	r.shortPhase(t, "firewalld: after reinstall")

	step(t, "uninstall")
	sb.must("firewall-cmd", "--permanent", "--zone=public", "--remove-interface="+lab.ServerIf)
	sb.must("firewall-cmd", "--reload")
	t.Log(sb.must(install, "--uninstall"))
	// firewalld keeps NAME.xml.old, a backup of the previous version, of
	// every file it rewrites; those of files install created are removed.
	if got := changedFiles(withoutBackups(etcBefore), withoutBackups(sb.tree("/etc/firewalld"))); len(got) != 0 {
		t.Errorf("/etc/firewalld after uninstall differs from before install: %v", got)
	}
	if got := sb.tree(ours...); len(got) != 0 {
		t.Errorf("left behind: %v", got)
	}
	if got := sb.must("nft", "list", "table", "inet", "firewalld"); got != tableBefore {
		t.Errorf("table inet firewalld after uninstall:\n%s\nbefore install:\n%s", got, tableBefore)
	}
	if _, err := sb.run("nft", "list", "table", "inet", "nfdrop_firewalld"); err == nil {
		t.Error("table inet nfdrop_firewalld still loaded after uninstall")
	}
}

// firewalldRFC3964 are the IPv6 destinations firewalld rejects with
// RFC3964_IPv4=yes, as nft lists them.
const firewalldRFC3964 = "::/96, ::ffff:0.0.0.0/96, 2002::/24, 2002:a00::/24, 2002:7f00::/24, 2002:a9fe::/32, 2002:ac10::/28, 2002:c0a8::/32, 2002:e000::/19"

// firewalldForwardReject is the reject of forwarded packets in the default
// zone, which the recipe cannot cover for packets from interfaces in no zone.
var firewalldForwardReject = []string{"drop-not-logged inet firewalld filter_FWD_public: reject with icmpx admin-prohibited"}

// startFirewalld starts the system D-Bus (once) and firewalld in the
// sandbox and waits until firewall-cmd reports it running.
func startFirewalld(t *testing.T, sb *sandbox) *proc {
	t.Helper()
	if _, err := sb.run("test", "-S", "/run/dbus/system_bus_socket"); err != nil {
		sb.must("dbus-daemon", "--system", "--fork", "--nopidfile")
	}
	cmd := sb.start("firewalld", "--nofork", "--nopid", "--log-target", "console")
	e2e.WaitEvery(t, 60*time.Second, 500*time.Millisecond, "firewall-cmd --state to say running", func() bool {
		out, _ := sb.run("firewall-cmd", "--state")
		return strings.TrimSpace(out) == "running"
	})
	return cmd
}

// firewalldTraffic: real HTTP and TCP with late FIN/RST, scans (not of 22,
// which the public zone allows), crafted INVALID packets, noise, spoofed
// IPv6 sources for the reverse-path filter, an IPv6 routing header type 0
// and packets to RFC 3964 destinations.
func firewalldTraffic(t *testing.T, r *rlab) {
	t.Helper()
	for _, v6 := range []bool{false, true} {
		r.tcp(v6, lab.TCPClean, lab.TCPCTDeleteLateFIN, lab.TCPCTDeleteLateRST)
	}
	for _, dst := range []string{srv4, srv6} {
		r.nmap("-sS", "21,23,25,8080", dst)
		r.nmap("-sA", "21,23,25,8080", dst)
	}
	r.send(invalidTCP(false)...)
	r.send(invalidTCP(true)...)
	r.send(
		udp("NetBIOS name, broadcast", "10.99.0.255", 137, 2),
		udp("NetBIOS datagram, broadcast", "10.99.0.255", 138, 2),
		udp("broadcast", "10.99.0.255", 9999, 2),
		udp("DHCP server port, limited broadcast", "255.255.255.255", 67, 1),
		udp("NetBIOS name, unicast", srv4, 137, 1),
		udp("NetBIOS name, IPv6", srv6, 137, 1),
		udp("DHCPv6 client port, not link-local", srv6, 546, 1),
	)
	spoofed := udp("spoofed source", srv6, 53, 3)
	spoofed.Packet.Src = mustAddr("2001:db8::99")
	r.send(spoofed)
	r.sendRaw(rh0(srv6))
	r.send(udp("RFC 3964 destination", "2002:a00::1", 53, 2))
}

// firewalldRules checks the recipe's rules in the live ruleset: the zone
// rule of public (firewalld builds chains for active zones only: public is
// the default zone), the ICMP rules, and the table of its own.
func firewalldRules(t *testing.T, r *rlab, sb *sandbox) {
	t.Helper()
	fw := sb.must("nft", "list", "table", "inet", "firewalld")
	for _, want := range []string{
		`log prefix "firewalld-public" group ` + r.group,
		"meta l4proto icmp accept",
		"meta l4proto ipv6-icmp accept",
	} {
		if !strings.Contains(fw, want) {
			t.Errorf("table inet firewalld has no %q", want)
		}
	}
	own := sb.must("nft", "list", "table", "inet", "nfdrop_firewalld")
	for _, want := range []string{"firewalld-invalid", "firewalld-rpfilter", "firewalld-rfc3964", "priority filter + 5"} {
		if !strings.Contains(own, want) {
			t.Errorf("table inet nfdrop_firewalld has no %q", want)
		}
	}
}

// nftLogCounters reads the counters of the nft rules that log to the
// recipe's group, per prefix.
func (r *rlab) nftLogCounters() map[string]uint64 {
	r.t.Helper()
	out, err := r.Run(r.Server, "nft", "-j", "list", "ruleset")
	if err != nil {
		r.t.Fatal(err)
	}
	g, _ := strconv.Atoi(r.group)
	c, err := logCounters([]byte(out), g)
	if err != nil {
		r.t.Fatal(err)
	}
	return c
}

// checkNftLogs compares the counters of the log rules that have one with
// what the exporter counted for their prefix in a phase.
func (r *rlab) checkNftLogs(t *testing.T, res result, base map[string]uint64) {
	t.Helper()
	now := r.nftLogCounters()
	for _, p := range sortedKeys(now) {
		if d := now[p] - base[p]; d != res.byPrefix[p] {
			t.Errorf("log rules with prefix %s counted %d, the exporter %d", p, d, res.byPrefix[p])
		}
	}
}

// withoutBackups leaves out firewalld's *.xml.old backups.
func withoutBackups(tree map[string]string) map[string]string {
	out := map[string]string{}
	for f, v := range tree {
		if !strings.HasSuffix(f, ".xml.old") {
			out[f] = v
		}
	}
	return out
}
