//go:build linux

// Package firewall_test runs each firewall recipe of deploy/firewall end to end:
// the real Debian package (ufw, firewalld, podman, docker.io, nftables,
// netfilter-persistent) in a lab network namespace, confined in a mount
// namespace whose /etc, /usr and /var are overlays (everything the manager,
// the recipe and a package reinstall write stays private), real and crafted
// traffic, and the exporter reading the recipe's NFLOG group. The accounting
// identity each test checks,
//
//	sum(nfdrop_packets_total) + nfdrop_messages_lost_total == packets the kernel dropped,
//
// takes the kernel's count from a table of base chains at priority -1000 and
// +1000 of every hook, outside every manager's chains (what entered minus
// what left): it counts every drop of every table, whatever the manager's
// rules count themselves.
//
//	NFDROP_E2E=1 go test -v ./deploy/firewall/
package firewall_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop-lab/e2e"
	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop-lab/e2e/e2elab"
	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop-lab/lab"
	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop-lab/lab/craft"
)

func TestMain(m *testing.M) { e2e.Main(m) }

// recipeDir is the directory of a recipe's install script.
func recipeDir(name string) string { return filepath.Join(e2e.Root(), "deploy", "firewall", name) }

// rlab is one recipe's lab: the namespace pair, a sandbox in the server
// namespace, and (once started) the exporter.
type rlab struct {
	*lab.Lab
	t     *testing.T
	sb    *sandbox
	group string

	exited chan error
	// renames are old, new pairs that make doctor's output and the
	// names of drop points independent of generated names (docker's
	// bridges).
	renames []string
}

// newRecipeLab creates the lab "nfr-TAG-PID" with the TCP sysctls of the lab's
// recipes and a sandbox in its server namespace.
func newRecipeLab(t *testing.T, tag string, group int) *rlab {
	t.Helper()
	dir := t.TempDir() // removed after the lab (cleanups run last-in first-out)
	l, err := lab.New(fmt.Sprintf("nfr-%s-%d", tag, os.Getpid()%100000))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("lab close: %v", err)
		}
	})
	if err := l.PrepareTCP(); err != nil {
		t.Fatal(err)
	}
	r := &rlab{Lab: l, t: t, group: strconv.Itoa(group)}
	r.sb = newSandbox(t, l, dir)
	return r
}

// sandbox is a mount namespace in the lab's server network namespace whose
// /etc, /usr and /var are overlays on the host's (writes land in the test's
// directory) and whose /run is empty: the firewall managers, their D-Bus,
// the recipes and apt-get run there and leave the host untouched.
type sandbox struct {
	t   *testing.T
	dir string
	pid int
}

const sandboxScript = `set -e
for d in etc usr var; do
	mkdir -p "$1/$d.up" "$1/$d.work"
	mount -t overlay overlay -o "lowerdir=/$d,upperdir=$1/$d.up,workdir=$1/$d.work" "/$d"
done
mount -t tmpfs -o mode=0755 tmpfs /run
mkdir -p /run/dbus /run/lock /run/user
echo ready
exec sleep infinity
`

func newSandbox(t *testing.T, l *lab.Lab, dir string) *sandbox {
	t.Helper()
	// nsenter, not ip netns exec: the latter remounts /sys, and container
	// runtimes then find no cgroup mount.
	cmd := exec.Command("nsenter", "--net="+filepath.Join(lab.NetnsDir, l.Server),
		"unshare", "-m", "--propagation", "private", "sh", "-c", sandboxScript, "sandbox", dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// The lab kills what runs in its namespaces when it closes; this is for
	// a test that fails before.
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "ready\n" {
		t.Fatalf("sandbox: %q %v: %s", line, err, stderr.String())
	}
	return &sandbox{t: t, dir: dir, pid: cmd.Process.Pid}
}

// command is a command in the sandbox, killed when ctx is done.
func (s *sandbox) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "nsenter", append([]string{"-t", strconv.Itoa(s.pid), "-m", "-n", "--", name}, args...)...)
}

// run runs a command in the sandbox and returns its combined output.
func (s *sandbox) run(name string, args ...string) (string, error) {
	return s.runEnv(nil, name, args...)
}

// runEnv is run with more environment variables.
func (s *sandbox) runEnv(env []string, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := s.command(ctx, name, args...)
	cmd.Env = append(append(os.Environ(), "DEBIAN_FRONTEND=noninteractive", "LC_ALL=C"), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

func (s *sandbox) must(name string, args ...string) string {
	s.t.Helper()
	out, err := s.run(name, args...)
	if err != nil {
		s.t.Fatal(err)
	}
	return out
}

// proc is a long-running command in the sandbox.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once it exited
}

// stop sends SIGTERM and waits up to d for the command to exit.
func (p *proc) stop(t *testing.T, d time.Duration) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(d):
		t.Fatalf("%s did not exit within %s of SIGTERM", p.cmd.Args, d)
	}
}

// start starts a long-running command in the sandbox; its output is logged
// if the test fails.
func (s *sandbox) start(name string, args ...string) *proc {
	s.t.Helper()
	return s.startEnv(nil, name, args...)
}

// startEnv is start with more environment variables.
func (s *sandbox) startEnv(env []string, name string, args ...string) *proc {
	s.t.Helper()
	cmd := s.command(context.Background(), name, args...)
	cmd.Env = append(os.Environ(), env...)
	buf := &lab.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = buf, buf
	if err := cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	p := &proc{cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	s.t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
		if s.t.Failed() {
			s.t.Logf("%s output:\n%s", name, buf.String())
		}
	})
	return p
}

// read returns a file of the sandbox.
func (s *sandbox) read(path string) string {
	s.t.Helper()
	return s.must("cat", path)
}

// tree returns, for every regular file under the given paths in the
// sandbox, its mode and a digest of its content.
func (s *sandbox) tree(paths ...string) map[string]string {
	s.t.Helper()
	out := map[string]string{}
	for _, p := range paths {
		if _, err := s.run("test", "-e", p); err != nil {
			continue
		}
		modes := s.must("find", p, "-type", "f", "-printf", "%m %p\n")
		sums := s.must("find", p, "-type", "f", "-exec", "sha256sum", "{}", "+")
		for _, l := range strings.Split(strings.TrimSpace(modes), "\n") {
			if m, f, ok := strings.Cut(l, " "); ok {
				out[f] = m
			}
		}
		for _, l := range strings.Split(strings.TrimSpace(sums), "\n") {
			if h, f, ok := strings.Cut(l, "  "); ok {
				out[f] += " " + h
			}
		}
	}
	return out
}

// changedFiles lists the paths whose mode or content differ between two
// trees, or that exist in only one of them.
func changedFiles(a, b map[string]string) []string {
	var out []string
	for f, v := range a {
		if b[f] != v {
			out = append(out, f)
		}
	}
	for f := range b {
		if _, ok := a[f]; !ok {
			out = append(out, f)
		}
	}
	sort.Strings(out)
	return out
}

// policyRC makes invoke-rc.d refuse to start or restart services in the
// sandbox, as apt-get's maintainer scripts would otherwise try.
func (s *sandbox) policyRC() {
	s.t.Helper()
	s.must("sh", "-c", `printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 0755 /usr/sbin/policy-rc.d`)
}

// reinstall runs `apt-get install --reinstall PKG` in the sandbox.
func (s *sandbox) reinstall(pkg string) string {
	s.t.Helper()
	return s.aptInstall(true, pkg)
}

// aptInstall runs `apt-get install [--reinstall] PKG...` in the sandbox: the
// packages are fetched first (outside the lab, which has no route out) into
// the sandbox's apt cache, and apt-get then runs with --no-download. What
// it installs, removes or configures stays in the sandbox.
func (s *sandbox) aptInstall(reinstall bool, pkgs ...string) string {
	s.t.Helper()
	dl := s.t.TempDir()
	cmd := exec.Command("apt-get", append([]string{"download", "-q"}, pkgs...)...)
	cmd.Dir = dl
	if out, err := cmd.CombinedOutput(); err != nil {
		s.t.Fatalf("apt-get download %v (the test needs Debian's archive): %v\n%s", pkgs, err, out)
	}
	s.policyRC()
	s.must("sh", "-c", `cp "$1"/*.deb /var/cache/apt/archives/`, "cp", dl)
	args := []string{"install", "-y", "-q", "--no-download", "--no-install-recommends"}
	if reinstall {
		args = append(args, "--reinstall")
	}
	return s.must("apt-get", append(args, pkgs...)...)
}

// --- the kernel's count of dropped packets ---------------------------------

// countTableOff removes the counting table whether or not it is loaded (the
// table is declared first, which creates it if missing).
const countTableOff = `table inet nfr_count
delete table inet nfr_count
`

// countTable counts, per hook, what enters at the first priority and what
// leaves at the last: the difference is what a chain in between dropped.
const countTable = countTableOff + `table inet nfr_count {
	chain prerouting_first { type filter hook prerouting priority -1000; policy accept; counter; }
	chain prerouting_last { type filter hook prerouting priority 1000; policy accept; counter; }
	chain input_first { type filter hook input priority -1000; policy accept; counter; }
	chain input_last { type filter hook input priority 1000; policy accept; counter; }
	chain forward_first { type filter hook forward priority -1000; policy accept; counter; }
	chain forward_last { type filter hook forward priority 1000; policy accept; counter; }
	chain output_first { type filter hook output priority -1000; policy accept; counter; }
	chain output_last { type filter hook output priority 1000; policy accept; counter; }
}
`

// resetDropCount (re)creates the counting table with zero counters.
func (r *rlab) resetDropCount() { r.loadCount(countTable) }

// dropCountOff removes the counting table if it is loaded (the next phase
// loads it again).
func (r *rlab) dropCountOff() { r.loadCount(countTableOff) }

// loadCount loads an nft script about the counting table in the server
// namespace.
func (r *rlab) loadCount(script string) {
	r.t.Helper()
	f := filepath.Join(r.sb.dir, "count.nft")
	if err := os.WriteFile(f, []byte(script), 0o644); err != nil {
		r.t.Fatal(err)
	}
	if _, err := r.Run(r.Server, "nft", "-f", f); err != nil {
		r.t.Fatal(err)
	}
}

// dropped is the number of packets dropped since resetDropCount, per hook.
func (r *rlab) dropped() (total uint64, byHook map[string]uint64) {
	r.t.Helper()
	out, err := r.Run(r.Server, "nft", "-j", "list", "table", "inet", "nfr_count")
	if err != nil {
		r.t.Fatal(err)
	}
	c, err := chainCounters([]byte(out))
	if err != nil {
		r.t.Fatal(err)
	}
	byHook = map[string]uint64{}
	for _, h := range []string{"prerouting", "input", "forward", "output"} {
		first, last := c[h+"_first"], c[h+"_last"]
		if last > first {
			r.t.Fatalf("hook %s: %d packets left, only %d entered", h, last, first)
		}
		byHook[h] = first - last
		total += first - last
	}
	return total, byHook
}

// chainCounters sums the packet counters of the rules of each chain in
// `nft -j list ...` output.
func chainCounters(b []byte) (map[string]uint64, error) {
	var doc struct {
		Nftables []struct {
			Rule *struct {
				Chain string                       `json:"chain"`
				Expr  []map[string]json.RawMessage `json:"expr"`
			} `json:"rule"`
		} `json:"nftables"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, err
	}
	out := map[string]uint64{}
	for _, o := range doc.Nftables {
		if o.Rule == nil {
			continue
		}
		for _, e := range o.Rule.Expr {
			raw, ok := e["counter"]
			if !ok {
				continue
			}
			var c struct {
				Packets uint64 `json:"packets"`
			}
			if err := json.Unmarshal(raw, &c); err != nil {
				return nil, fmt.Errorf("chain %s: counter %s: %w", o.Rule.Chain, raw, err)
			}
			out[o.Rule.Chain] += c.Packets
		}
	}
	return out, nil
}

// logCounters sums, per prefix, the counters of the nft rules that log to
// NFLOG group (in `nft -j list ruleset` output); rules without a counter
// are not included.
func logCounters(b []byte, group int) (map[string]uint64, error) {
	var doc struct {
		Nftables []struct {
			Rule *struct {
				Expr []map[string]json.RawMessage `json:"expr"`
			} `json:"rule"`
		} `json:"nftables"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, err
	}
	out := map[string]uint64{}
	for _, o := range doc.Nftables {
		if o.Rule == nil {
			continue
		}
		var prefix string
		var logs, counted bool
		var packets uint64
		for _, e := range o.Rule.Expr {
			if raw, ok := e["log"]; ok {
				var l struct {
					Group  *int   `json:"group"`
					Prefix string `json:"prefix"`
				}
				if err := json.Unmarshal(raw, &l); err == nil && l.Group != nil && *l.Group == group {
					logs, prefix = true, l.Prefix
				}
			}
			if raw, ok := e["counter"]; ok && logs {
				var c struct {
					Packets uint64 `json:"packets"`
				}
				if err := json.Unmarshal(raw, &c); err != nil {
					return nil, err
				}
				counted, packets = true, c.Packets
			}
		}
		if logs && counted {
			out[prefix] += packets
		}
	}
	return out, nil
}

// saveCounters reads `iptables-save -c` output: the packets of rules that
// jump to DROP or REJECT plus the policy counters of chains with policy
// DROP (drops), and the packets of NFLOG rules per --nflog-prefix.
func saveCounters(out string) (drops uint64, nflog map[string]uint64, err error) {
	nflog = map[string]uint64{}
	policy := regexp.MustCompile(`^:[A-Z]+ DROP \[(\d+):\d+\]$`)
	rule := regexp.MustCompile(`^\[(\d+):\d+\] -A \S+ (.*)$`)
	target := regexp.MustCompile(`(?:^| )-j (\S+)`)
	prefix := regexp.MustCompile(`--nflog-prefix (?:"([^"]*)"|(\S+))`)
	for _, line := range strings.Split(out, "\n") {
		if m := policy.FindStringSubmatch(line); m != nil {
			n, err := strconv.ParseUint(m[1], 10, 64)
			if err != nil {
				return 0, nil, fmt.Errorf("%q: %w", line, err)
			}
			drops += n
			continue
		}
		m := rule.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		n, err := strconv.ParseUint(m[1], 10, 64)
		if err != nil {
			return 0, nil, fmt.Errorf("%q: %w", line, err)
		}
		tm := target.FindStringSubmatch(m[2])
		if tm == nil {
			continue
		}
		switch tm[1] {
		case "DROP", "REJECT":
			drops += n
		case "NFLOG":
			p := prefix.FindStringSubmatch(m[2])
			if p == nil {
				return 0, nil, fmt.Errorf("NFLOG rule without a prefix: %q", line)
			}
			nflog[p[1]+p[2]] += n
		}
	}
	return drops, nflog, nil
}

// iptablesCounters reads the filter tables of both families.
func (r *rlab) iptablesCounters() (drops uint64, nflog map[string]uint64) {
	r.t.Helper()
	nflog = map[string]uint64{}
	for _, tool := range []string{"iptables-save", "ip6tables-save"} {
		out, err := r.Run(r.Server, tool, "-c", "-t", "filter")
		if err != nil {
			r.t.Fatal(err)
		}
		d, n, err := saveCounters(out)
		if err != nil {
			r.t.Fatalf("%s: %v", tool, err)
		}
		drops += d
		for k, v := range n {
			nflog[k] += v
		}
	}
	return drops, nflog
}

// --- the exporter -----------------------------------------------------------

// startExporter runs the exporter in the server namespace on the recipe's
// group and waits until it is bound.
func (r *rlab) startExporter() {
	r.t.Helper()
	_, r.exited, _ = e2elab.StartExporter(r.t, r.Lab, e2e.Binary(r.t),
		"--nflog.group="+r.group, "--web.listen-address=127.0.0.1:9786")
	e2elab.WaitUp(r.t, r.Lab, r.exited, r.group)
}

// counted is what the exporter accounts for: its packets per prefix, and
// their sum plus the messages it lost.
func (r *rlab) counted() (total float64, byPrefix map[string]float64) {
	r.t.Helper()
	sc := e2elab.Poll(r.t, r.Lab, r.exited, "a scrape", func(lab.Scrape) bool { return true })
	byPrefix = map[string]float64{}
	for k, v := range sc.Packets(r.group) {
		byPrefix[k.Prefix] += v
		total += v
	}
	lost, _ := sc.Value("nfdrop_messages_lost_total", map[string]string{"group": r.group})
	return total + lost, byPrefix
}

// phase is one round of traffic between two readings of both counts.
type phase struct {
	r        *rlab
	name     string
	base     float64
	basePref map[string]float64
}

// beginPhase zeroes the kernel's count and notes the exporter's.
func (r *rlab) beginPhase(name string) *phase {
	r.t.Helper()
	r.resetDropCount()
	base, pref := r.counted()
	return &phase{r: r, name: name, base: base, basePref: pref}
}

// beginPhaseIptables is beginPhase that also zeroes iptables' counters, at
// a moment when nothing is being dropped (a container's own traffic, IPv6
// neighbour discovery through the bridge, can be dropped at any time), so
// that the three baselines agree.
func (r *rlab) beginPhaseIptables(name string) *phase {
	r.t.Helper()
	var p *phase
	e2e.WaitEvery(r.t, zeroWithin, 200*time.Millisecond, name+": no drop while the counters are zeroed", func() bool {
		r.zeroIptables()
		p = r.beginPhase(name)
		drops, _ := r.iptablesCounters()
		dropped, _ := r.dropped()
		now, _ := r.counted()
		return drops == 0 && dropped == 0 && now == p.base
	})
	return p
}

// zeroWithin bounds the retries of zeroing the counters while something
// (a container's own traffic) is still being dropped.
const zeroWithin = 10 * time.Second

// result of a phase, once both counts agree and stopped moving.
type result struct {
	dropped  uint64
	byHook   map[string]uint64
	counted  uint64
	byPrefix map[string]uint64
}

// quietAfterTraffic is how long no count may move before a phase's traffic
// counts as over: the client retransmits a late FIN (tcp_orphan_retries=3)
// with the retransmission timeout doubling each time, and on a busy machine
// a gap between two of them can pass 1.5 s.
const quietAfterTraffic = 3 * time.Second

// settle waits until the exporter has accounted for every packet the
// kernel dropped but uncovered (drops no recipe can precede; late
// retransmissions and the exporter's conntrack hold can take seconds) and
// neither count moved for a while.
func (p *phase) settle(uncovered uint64) result {
	r := p.r
	r.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var last result
	lastChange := time.Now()
	for {
		dropped, byHook := r.dropped()
		total, pref := r.counted()
		res := result{dropped: dropped, byHook: byHook, counted: uint64(total - p.base), byPrefix: map[string]uint64{}}
		for k, v := range pref {
			if d := v - p.basePref[k]; d > 0 {
				res.byPrefix[k] = uint64(d)
			}
		}
		if res.dropped != last.dropped || res.counted != last.counted {
			lastChange = time.Now()
		}
		last = res
		if res.dropped == res.counted+uncovered && time.Since(lastChange) >= quietAfterTraffic {
			r.t.Logf("%s: %s: kernel dropped %d %v, exporter counted %d %v (uncovered %d)",
				time.Now().Format("15:04:05.000"), p.name, res.dropped, res.byHook, res.counted, res.byPrefix, uncovered)
			return res
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("%s: not settled within 30s: kernel dropped %d %v, exporter counted %d %v, want dropped = counted + %d",
				p.name, res.dropped, res.byHook, res.counted, res.byPrefix, uncovered)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// --- traffic ----------------------------------------------------------------

// send sends crafted packets from the client to the server's MAC.
func (r *rlab) send(sends ...lab.Send) {
	r.t.Helper()
	s := lab.Scenario{Name: "crafted", Sends: sends}
	if err := r.RunScenario(context.Background(), s, 0, 0, nil); err != nil {
		r.t.Fatal(err)
	}
}

// sendRaw sends IP datagrams built by hand from the client.
func (r *rlab) sendRaw(pkts ...[]byte) {
	r.t.Helper()
	var snd *craft.Sender
	err := lab.InNetns(r.Client, func() error {
		var err error
		snd, err = craft.NewSender(lab.ClientIf, lab.ServerMAC)
		return err
	})
	if err != nil {
		r.t.Fatal(err)
	}
	defer snd.Close()
	for _, p := range pkts {
		if err := snd.SendRaw(p); err != nil {
			r.t.Fatal(err)
		}
	}
}

// tcp runs real TCP connections from the client to the server (see
// lab.TCPRecipe): port 80 ends cleanly, the others leave late FIN/RST.
func (r *rlab) tcp(v6 bool, recipes ...lab.TCPRecipe) {
	r.t.Helper()
	for _, rc := range recipes {
		port := 443
		if rc == lab.TCPClean {
			port = 80
		}
		for i := 0; ; i++ {
			err := r.RunTCP(context.Background(), rc, port, v6, 300*time.Millisecond)
			if err == nil {
				break
			}
			// The previous recipe's orphaned server socket can hold the port
			// for a moment (its peer's FIN was dropped, by design).
			if i == 10 || !strings.Contains(err.Error(), "address already in use") {
				r.t.Fatalf("TCP %s to :%d (v6 %v): %v", rc, port, v6, err)
			}
			time.Sleep(300 * time.Millisecond)
		}
	}
}

// nmap runs an nmap scan (-sS, -sA ...) from the client.
func (r *rlab) nmap(scan, ports string, target string) {
	r.t.Helper()
	args := []string{"-Pn", "-n", scan, "-p", ports, "--max-retries", "0", "-T5", target}
	if strings.Contains(target, ":") {
		args = append([]string{"-6"}, args...)
	}
	if out, err := r.Run(r.Client, "nmap", args...); err != nil {
		r.t.Fatalf("nmap: %v\n%s", err, out)
	}
}

// ping sends n echo requests from the client and fails unless all are
// answered.
func (r *rlab) ping(target string, n int) {
	r.t.Helper()
	if out, err := r.Run(r.Client, "ping", "-c", strconv.Itoa(n), "-i", "0.2", "-W", "2", target); err != nil {
		r.t.Fatalf("ping %s: %v\n%s", target, err, out)
	}
}

func v4(a string) bool { return !strings.Contains(a, ":") }

var (
	srv4 = lab.ServerIPv4.String()
	srv6 = lab.ServerIPv6.String()
)

// udp is a crafted UDP datagram from the client.
func udp(desc, dst string, port uint16, n int) lab.Send {
	src := lab.ClientIPv4
	if !v4(dst) {
		src = lab.ClientIPv6
	}
	return lab.Send{Desc: desc, Count: n, Packet: craft.Packet{
		Src: src, Dst: mustAddr(dst), Proto: craft.ProtoUDP, SrcPort: 40000 + port, DstPort: port, Payload: []byte("nfr"),
	}}
}

// tcpSYN is a crafted SYN from the client.
func tcpSYN(dst string, port uint16) craft.Packet {
	src := lab.ClientIPv4
	if !v4(dst) {
		src = lab.ClientIPv6
	}
	return craft.Packet{Src: src, Dst: mustAddr(dst), Proto: craft.ProtoTCP, SrcPort: 45000 + port, DstPort: port,
		Flags: craft.SYN, Window: 64240, Seq: 1000}
}

// invalidTCP is the crafted set of TCP flag combinations conntrack calls
// INVALID, for one family.
func invalidTCP(v6 bool) []lab.Send {
	inv, _ := e2elab.AuditSet(v6)
	return inv.Sends
}

func countSends(s []lab.Send) uint64 {
	var n uint64
	for _, x := range s {
		n += uint64(x.Count)
	}
	return n
}

// --- checks -------------------------------------------------------------------

// wantPrefixes fails unless the exporter counted exactly want[p] packets for
// each prefix p with want[p] >= 0, at least one for -1, and nothing for any
// prefix not in want.
func wantPrefixes(t *testing.T, res result, want map[string]int) {
	t.Helper()
	for p, n := range want {
		got := res.byPrefix[p]
		switch {
		case n < 0 && got == 0:
			t.Errorf("prefix %s: counted nothing, want at least one", p)
		case n >= 0 && got != uint64(n):
			t.Errorf("prefix %s: counted %d, want %d", p, got, n)
		}
	}
	for p, got := range res.byPrefix {
		if _, ok := want[p]; !ok {
			t.Errorf("prefix %s: counted %d, want none", p, got)
		}
	}
}

// step marks a step of a test in its log (the steps share the lab, so they
// are not subtests).
func step(t *testing.T, name string) {
	t.Helper()
	t.Logf("--- %s (%s)", name, time.Now().Format("15:04:05.000"))
}

// sorted returns a sorted copy.
func sorted(s []string) []string {
	c := append([]string(nil), s...)
	sort.Strings(c)
	return c
}

// sortedKeys is for stable messages.
func sortedKeys[V any](m map[string]V) []string {
	k := make([]string, 0, len(m))
	for x := range m {
		k = append(k, x)
	}
	sort.Strings(k)
	return k
}

// writeFile writes a file for the test.
func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

// rh0 is an IPv6 datagram from the client with a type 0 routing header (no
// segments left) and no payload.
func rh0(dst string) []byte {
	b := make([]byte, 40+24)
	b[0] = 6 << 4
	binary.BigEndian.PutUint16(b[4:], 24)
	b[6] = 43 // routing header
	b[7] = 64
	s, d := lab.ClientIPv6.As16(), mustAddr(dst).As16()
	copy(b[8:], s[:])
	copy(b[24:], d[:])
	rh := b[40:]
	rh[0] = 59 // no next header
	rh[1] = 2  // 2 x 8 bytes after the first 8: one address
	rh[2] = 0  // type 0
	rh[3] = 0  // segments left
	copy(rh[8:], d[:])
	return b
}
