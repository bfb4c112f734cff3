package explain

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop-lab/e2e"
	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop-lab/lab"
)

// TestRealKernel makes the kernel itself write LOG lines and, from an NFLOG
// rule in the same chain, an NFLOG capture of the very same packets, then
// requires explain to give identical series for both, and the class counts
// the traffic plan predicts. Needs root, iptables, nft, tcpdump, hping3 and
// python3; runs only with NFDROP_E2E=1. It changes one host-global sysctl,
// net.netfilter.nf_log_all_netns (LOG output from a non-init namespace is
// suppressed otherwise), and restores it. With NFDROP_E2E_UPDATE=1 it stores
// the lines and capture as testdata/lab-<fw>.log / .pcap for the golden tests.
func TestRealKernel(t *testing.T) {
	e2e.Require(t, "ip", "iptables", "ip6tables", "nft", "tcpdump", "hping3", "python3", "dmesg")
	const sysctl = "/proc/sys/net/netfilter/nf_log_all_netns"
	old, err := os.ReadFile(sysctl)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := os.WriteFile(sysctl, old, 0o644); err != nil {
			t.Errorf("restoring %s: %v", sysctl, err)
		}
	})
	if err := os.WriteFile(sysctl, []byte("1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, fw := range []string{"iptables", "nft"} {
		t.Run(fw, func(t *testing.T) { realKernelRun(t, fw) })
	}
}

// A traffic step: hping3 (IPv4) or the python sender (IPv6), count packets,
// and the classes they must produce.
type step struct {
	v6     bool
	args   string // hping3 arguments, or the python sender's spec
	expect map[string]uint64
}

func classes(kv ...any) map[string]uint64 {
	m := map[string]uint64{}
	for i := 0; i < len(kv); i += 2 {
		m[kv[i].(string)] += uint64(kv[i+1].(int))
	}
	return m
}

var plan = []step{
	{false, "-S -p 22 -c 3", classes("handshake", 3)},
	{false, "-S -p 443 -c 2", classes("handshake", 2)},
	{false, "-S -A -s 443 -k -p 40000 -c 2", classes("handshake", 2)},
	{false, "-F -A -p 443 -c 5", classes("teardown", 5)},
	{false, "-R -p 443 -c 4", classes("teardown", 4)},
	{false, "-A -P -p 80 -c 3", classes("teardown", 3)},
	{false, "-R -A -s 443 -k -p 51000 -c 2", classes("teardown", 2)},
	{false, "-A -s 51000 -k -p 8443 -c 1", classes("teardown", 1)},
	{false, "-p 8080 -c 2", classes("probe", 2)},
	{false, "-F -P -U -p 8080 -c 2", classes("probe", 2)},
	{false, "-S -F -p 22 -c 1", classes("probe", 1)},
	{false, "-2 -p 53 -c 3", classes("other", 3)},
	{false, "-2 -p 123 -c 1", classes("other", 1)},
	{false, "-1 -c 2", classes("other", 2)},
	// 60 bytes of TCP in 24-byte fragments: the first holds the whole header
	{false, "-S -p 22 -d 40 -f -m 24 -c 1", classes("handshake", 1, "fragment", 2)},
	// 8-byte fragments: the first cannot hold the flags; LOG says INCOMPLETE
	{false, "-S -p 443 -f -m 8 -c 1", classes("malformed", 1, "fragment", 2)},
	{true, "tcp:40001:22:S:2", classes("handshake", 2)},
	{true, "tcp:40002:443:AF:3", classes("teardown", 3)},
	{true, "tcp:40003:443:R:2", classes("teardown", 2)},
	{true, "tcp:443:40004:SA:1", classes("handshake", 1)},
	{true, "tcp:40005:8080:FPU:1", classes("probe", 1)},
	{true, "udp:53:2", classes("other", 2)},
	{true, "icmp:2", classes("other", 2)},
	// 3008 bytes of UDP over a 1500 MTU: first fragment (ports) + 2 non-first
	{true, "bigudp:123:1", classes("other", 1, "fragment", 2)},
}

// sender6 sends the IPv6 steps from the client namespace.
const sender6 = `
import socket, struct, sys
FL = dict(F=1, S=2, R=4, P=8, A=16, U=32)
for spec in sys.argv[1:]:
    kind, *a = spec.split(":")
    if kind == "tcp":
        sp, dp, fl, n = int(a[0]), int(a[1]), sum(FL[c] for c in a[2]), int(a[3])
        s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_TCP)
        s.setsockopt(socket.IPPROTO_IPV6, 7, 16)  # IPV6_CHECKSUM: kernel fills the TCP checksum
        hdr = struct.pack("!HHIIBBHHH", sp, dp, 1000, 0 if not fl & 16 else 1, 5 << 4, fl, 1024, 0, 0)
        for _ in range(n): s.sendto(hdr, ("fd99::1", 0))
    elif kind in ("udp", "bigudp"):
        s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        size = 3000 if kind == "bigudp" else 10
        for _ in range(int(a[1])): s.sendto(b"x" * size, ("fd99::1", int(a[0])))
    elif kind == "icmp":
        s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
        for i in range(int(a[0])): s.sendto(struct.pack("!BBHHH", 128, 0, 0, 7, i), ("fd99::1", 0))
`

func realKernelRun(t *testing.T, fw string) {
	// The tag keeps this run's LOG lines apart from any other in the host's
	// kernel log, and its group apart from other readers.
	id := rand.IntN(90000) + 10000
	srv, cli := e2e.NewNetns(t, "D-srv"), e2e.NewNetns(t, "D-cli")
	vs, vc := fmt.Sprintf("nfdDs%d", id), fmt.Sprintf("nfdDc%d", id)
	tag := fmt.Sprintf("nfdD%d", id)
	group := fmt.Sprint(40 + id%20)
	// Both ends are made inside their namespaces: nothing appears in the host's.
	srv.Exec("ip", "link", "add", vs, "type", "veth", "peer", "name", vc, "netns", cli.Name)
	for _, c := range []struct {
		ns   *e2e.Netns
		args []string
	}{
		{srv, []string{"addr", "add", "10.99.0.1/24", "dev", vs}},
		{cli, []string{"addr", "add", "10.99.0.2/24", "dev", vc}},
		{srv, []string{"addr", "add", "fd99::1/64", "dev", vs, "nodad"}},
		{cli, []string{"addr", "add", "fd99::2/64", "dev", vc, "nodad"}},
		{srv, []string{"link", "set", vs, "up"}}, {cli, []string{"link", "set", vc, "up"}},
	} {
		c.ns.Exec("ip", c.args...)
	}
	// Static neighbours: no ARP/ND traffic of our own addresses reaches the rules.
	mac := strings.TrimSpace(srv.Exec("cat", "/sys/class/net/"+vs+"/address"))
	cli.Exec("ip", "neigh", "replace", "10.99.0.1", "lladdr", mac, "dev", vc, "nud", "permanent")
	cli.Exec("ip", "neigh", "replace", "fd99::1", "lladdr", mac, "dev", vc, "nud", "permanent")

	// Rules in PREROUTING (raw priority, no conntrack in this namespace, so
	// no defragmentation): fragments reach the rules as they are on the wire.
	// The NFLOG rule and the LOG rule see exactly the same packets.
	prefix := tag + " " + fw + " drop:"
	switch fw {
	case "iptables":
		prefix = tag + " ipt:" // LOG prefixes are limited to 29 characters
		for _, v := range []struct{ cmd, s, d string }{{"iptables", "10.99.0.2", "10.99.0.1"}, {"ip6tables", "fd99::2", "fd99::1"}} {
			srv.Exec(v.cmd, "-t", "raw", "-A", "PREROUTING", "-s", v.s, "-d", v.d, "-j", "NFLOG", "--nflog-group", group, "--nflog-prefix", prefix, "--nflog-threshold", "1")
			srv.Exec(v.cmd, "-t", "raw", "-A", "PREROUTING", "-s", v.s, "-d", v.d, "-j", "LOG", "--log-prefix", prefix+" ")
			srv.Exec(v.cmd, "-t", "raw", "-A", "PREROUTING", "-s", v.s, "-d", v.d, "-j", "DROP")
		}
	case "nft":
		ruleset := fmt.Sprintf(`table inet nfdD {
  chain pre {
    type filter hook prerouting priority -300;
    ip saddr 10.99.0.2 ip daddr 10.99.0.1 jump deny
    ip6 saddr fd99::2 ip6 daddr fd99::1 jump deny
  }
  chain deny {
    log group %s prefix %q queue-threshold 1
    log prefix %q
    drop
  }
}
`, group, prefix, prefix+" ")
		f := filepath.Join(t.TempDir(), "rules.nft")
		if err := os.WriteFile(f, []byte(ruleset), 0o644); err != nil {
			t.Fatal(err)
		}
		srv.Exec("nft", "-f", f)
	}

	pcapFile := filepath.Join(t.TempDir(), "lab.pcap")
	var tdErr lab.SyncBuffer
	td := srv.Command("tcpdump", "-i", "nflog:"+group, "-U", "-w", pcapFile)
	td.Stderr = &tdErr
	if err := td.Start(); err != nil {
		t.Fatal(err)
	}
	tdDone := make(chan error, 1)
	go func() { tdDone <- td.Wait() }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		td.Process.Signal(os.Interrupt)
		select {
		case <-tdDone:
		case <-time.After(5 * time.Second):
			td.Process.Kill()
			<-tdDone
		}
	}
	defer stop()
	for i := 0; i < 50 && !strings.Contains(tdErr.String(), "listening on"); i++ {
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.Contains(tdErr.String(), "listening on") {
		t.Fatalf("tcpdump did not start: %s", tdErr.String())
	}

	want := map[string]uint64{}
	var specs6 []string
	for _, s := range plan {
		for c, n := range s.expect {
			want[c] += n
		}
		if s.v6 {
			specs6 = append(specs6, s.args)
			continue
		}
		args := append([]string{"-q", "-i", "u20000"}, strings.Fields(s.args)...)
		args = append(args, "10.99.0.1")
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		// hping3 exits 1 when nothing answers, which is the point here
		out, err := cli.CommandContext(ctx, "hping3", args...).CombinedOutput()
		timedOut := ctx.Err() != nil
		cancel()
		if timedOut || (err != nil && !strings.Contains(string(out), "packets transmitted")) {
			t.Fatalf("hping3 %s: %v\n%s", s.args, err, out)
		}
	}
	cli.Exec("python3", append([]string{"-c", sender6}, specs6...)...)
	var total uint64
	for _, n := range want {
		total += n
	}

	// Wait for every LOG line to reach the kernel log (bounded).
	var lines []string
	for i := 0; i < 30; i++ {
		lines = lines[:0]
		for _, l := range strings.Split(dmesg(t), "\n") {
			if strings.Contains(l, prefix+" IN=") {
				lines = append(lines, l)
			}
		}
		if uint64(len(lines)) >= total {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond) // NFLOG batches; tcpdump -U flushes per packet
	stop()
	logFile := filepath.Join(t.TempDir(), "lab.log")
	if err := os.WriteFile(logFile, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	fromLog := explainJSON(t, logFile)
	fromPcap := explainJSON(t, pcapFile)
	if fromLog.Total != total || fromPcap.Total != total {
		t.Errorf("packets: LOG lines %d, capture %d, sent %d", fromLog.Total, fromPcap.Total, total)
	}
	if fromLog.Unparsed != 0 || fromPcap.Unparsed != 0 || fromLog.Ignored != 0 || fromPcap.Ignored != 0 {
		t.Errorf("unparsed/ignored: LOG %d/%d, capture %d/%d", fromLog.Unparsed, fromLog.Ignored, fromPcap.Unparsed, fromPcap.Ignored)
	}
	for c, n := range want {
		if fromLog.Classes[c] != n {
			t.Errorf("class %s: LOG lines say %d, the traffic plan %d", c, fromLog.Classes[c], n)
		}
	}
	if d := diffSeries(fromLog.Series, fromPcap.Series); d != "" {
		t.Errorf("LOG lines and capture disagree (-log +pcap):\n%s", d)
	}
	fams := map[string]bool{}
	for _, s := range fromLog.Series {
		fams[s.Family] = true
		if s.Prefix != prefix {
			t.Errorf("prefix %q, want %q", s.Prefix, prefix)
		}
	}
	if !fams["ipv4"] || !fams["ipv6"] {
		t.Errorf("families seen: %v, want ipv4 and ipv6", fams)
	}
	if os.Getenv("NFDROP_E2E_UPDATE") == "1" && !t.Failed() {
		copyFile(t, logFile, "testdata/lab-"+fw+".log")
		copyFile(t, pcapFile, "testdata/lab-"+fw+".pcap")
	}
}

func explainJSON(t *testing.T, file string) Report {
	t.Helper()
	var out bytes.Buffer
	if err := Run(Options{Format: "json", Files: []string{file}}, nil, &out); err != nil {
		t.Fatalf("explain %s: %v", file, err)
	}
	var r Report
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatal(err)
	}
	return r
}

// diffSeries compares two series lists as sets of lines; "" when equal.
func diffSeries(a, b []Series) string {
	line := func(s Series) string {
		return fmt.Sprintf("prefix=%q family=%s proto=%s port=%q side=%q flags=%q class=%s count=%d",
			s.Prefix, s.Family, s.Proto, s.Port, s.Side, s.Flags, s.Class, s.Count)
	}
	var la, lb []string
	for _, s := range a {
		la = append(la, line(s))
	}
	for _, s := range b {
		lb = append(lb, line(s))
	}
	slices.Sort(la)
	slices.Sort(lb)
	var d strings.Builder
	for _, l := range la {
		if !slices.Contains(lb, l) {
			d.WriteString("- " + l + "\n")
		}
	}
	for _, l := range lb {
		if !slices.Contains(la, l) {
			d.WriteString("+ " + l + "\n")
		}
	}
	return d.String()
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// dmesg is the host's kernel log, where LOG lines of every namespace land.
func dmesg(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("dmesg").Output()
	if err != nil {
		t.Fatalf("dmesg: %v", err)
	}
	return string(out)
}
