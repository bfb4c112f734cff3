//go:build linux

package e2elab

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop-lab/e2e"
	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop-lab/lab"
)

// The distribution's firewall managers, confined to a lab namespace: each
// runs with a private copy of its configuration in a mount namespace of its
// own, so that the host's configuration and firewall are never touched.

// UFW is Debian's ufw for one network namespace, with its configuration
// (/etc/ufw and /etc/default/ufw) copied to Dir/etc and Dir/default; tests
// edit the copies there (before.rules, after.rules) and run ufw reload.
type UFW struct {
	NS  string
	Dir string
}

// NewUFW copies ufw's configuration for namespace ns.
func NewUFW(t testing.TB, ns string) *UFW {
	t.Helper()
	e2e.Require(t, "ufw", "unshare", "cp")
	u := &UFW{NS: ns, Dir: t.TempDir()}
	for _, c := range [][]string{
		{"cp", "-a", "/etc/ufw", filepath.Join(u.Dir, "etc")},
		{"cp", "/etc/default/ufw", filepath.Join(u.Dir, "default")},
	} {
		if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v: %s", c, err, out)
		}
	}
	return u
}

// Run runs ufw with args in the namespace, on the private configuration.
func (u *UFW) Run(t testing.TB, args ...string) string {
	t.Helper()
	quoted := make([]string, len(args))
	for i, a := range args {
		quoted[i] = strconv.Quote(a)
	}
	script := fmt.Sprintf("mount --bind %q /etc/ufw && mount --bind %q /etc/default/ufw && ufw %s",
		filepath.Join(u.Dir, "etc"), filepath.Join(u.Dir, "default"), strings.Join(quoted, " "))
	out, err := exec.Command("ip", "netns", "exec", u.NS, "unshare", "-m", "--propagation", "private", "bash", "-c", script).CombinedOutput()
	if err != nil {
		t.Fatalf("ufw %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// EditRules inserts lines into the private copy of one of ufw's rules files
// (before.rules, after6.rules, ...) in front of the first line that starts
// with anchor.
func (u *UFW) EditRules(t testing.TB, file, anchor string, lines ...string) {
	t.Helper()
	p := filepath.Join(u.Dir, "etc", file)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	i := strings.Index(text, "\n"+anchor)
	if i < 0 {
		t.Fatalf("%s has no line starting with %q", file, anchor)
	}
	text = text[:i+1] + strings.Join(lines, "\n") + "\n" + text[i+1:]
	if err := os.WriteFile(p, []byte(text), 0o640); err != nil {
		t.Fatal(err)
	}
}

// Firewalld is firewalld (nftables backend) running in a network namespace
// with its own D-Bus, /run and copy of /etc/firewalld, in a mount namespace
// of its own.
type Firewalld struct {
	NS  string
	Dir string
	pid int // firewalld's, in the private mount namespace
}

// StartFirewalld starts firewalld in namespace ns and waits until
// firewall-cmd answers; the test's cleanup stops it, its dbus-daemon and
// the polkitd D-Bus started for it (the processes of the lab namespace).
func StartFirewalld(t testing.TB, ns string) *Firewalld {
	t.Helper()
	e2e.Require(t, "firewalld", "firewall-cmd", "dbus-daemon", "unshare", "nsenter")
	f := &Firewalld{NS: ns, Dir: t.TempDir()}
	if out, err := exec.Command("cp", "-a", "/etc/firewalld", filepath.Join(f.Dir, "etc")).CombinedOutput(); err != nil {
		t.Fatalf("copying /etc/firewalld: %v: %s", err, out)
	}
	run := filepath.Join(f.Dir, "run")
	if err := os.MkdirAll(run, 0o755); err != nil {
		t.Fatal(err)
	}
	script := fmt.Sprintf(`set -e
mount --bind %q /etc/firewalld
mount --bind %q /run
mkdir -p /run/dbus
dbus-daemon --system --fork --nopidfile
exec firewalld --nofork --nopid --log-target console`, filepath.Join(f.Dir, "etc"), run)
	logs, err := os.Create(filepath.Join(f.Dir, "firewalld.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logs.Close()
	cmd := exec.Command("ip", "netns", "exec", ns, "unshare", "-m", "--propagation", "private", "bash", "-c", script)
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	f.pid = cmd.Process.Pid // ip netns exec, unshare and bash exec in place
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() { f.stop(t, exited) })
	deadline := time.Now().Add(60 * time.Second)
	for {
		if out, err := f.cmd("--state"); err == nil && strings.TrimSpace(out) == "running" {
			return f
		}
		select {
		case <-exited:
			b, _ := os.ReadFile(logs.Name())
			t.Fatalf("firewalld exited while starting:\n%s", b)
		default:
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(logs.Name())
			t.Fatalf("firewalld did not answer within 60s:\n%s", b)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

func (f *Firewalld) cmd(args ...string) (string, error) {
	a := append([]string{"--target", strconv.Itoa(f.pid), "--mount", "--net", "firewall-cmd"}, args...)
	out, err := exec.Command("nsenter", a...).CombinedOutput()
	return string(out), err
}

// Cmd runs firewall-cmd with args against this firewalld.
func (f *Firewalld) Cmd(t testing.TB, args ...string) string {
	t.Helper()
	out, err := f.cmd(args...)
	if err != nil {
		t.Fatalf("firewall-cmd %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return out
}

// stop ends firewalld, then the other processes it left in the lab
// namespace (its dbus-daemon and the polkitd D-Bus activated), by pid.
func (f *Firewalld) stop(t testing.TB, exited <-chan struct{}) {
	_ = syscall.Kill(f.pid, syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(f.pid, syscall.SIGKILL)
		<-exited
	}
	out, _ := exec.Command("ip", "netns", "pids", f.NS).Output()
	for _, p := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(p); err == nil {
			_ = syscall.Kill(pid, syscall.SIGTERM)
		}
	}
	if t.Failed() {
		b, _ := os.ReadFile(filepath.Join(f.Dir, "firewalld.log"))
		t.Logf("firewalld output:\n%s", b)
	}
}

// LogEveryDrop writes, into the private copies of ufw's rules files, an
// NFLOG line to group in front of every drop of a vanilla ufw (deny
// incoming): the INVALID drops, the not-local drop, the IPv6 routing header
// drops, and the top of the after chains for the policies and the drops
// that stand for them. Run ufw reload (or enable) afterwards.
func (u *UFW) LogEveryDrop(t testing.TB, group int) {
	t.Helper()
	nflog := func(rule string) string {
		return fmt.Sprintf("%s -j NFLOG --nflog-group %d --nflog-prefix \"[UFW BLOCK] \"", rule, group)
	}
	const commit = "# don't delete the 'COMMIT' line"
	u.EditRules(t, "before.rules", "-A ufw-before-input -m conntrack --ctstate INVALID -j DROP",
		nflog("-A ufw-before-input -m conntrack --ctstate INVALID"))
	u.EditRules(t, "before.rules", "-A ufw-not-local -j DROP", nflog("-A ufw-not-local"))
	u.EditRules(t, "after.rules", "-A ufw-after-input", nflog("-A ufw-after-input"))
	u.EditRules(t, "after.rules", commit, nflog("-A ufw-after-forward"))
	for _, d := range []string{"input", "forward", "output"} {
		u.EditRules(t, "before6.rules", "-A ufw6-before-"+d+" -m rt --rt-type 0 -j DROP", nflog("-A ufw6-before-"+d+" -m rt --rt-type 0"))
	}
	u.EditRules(t, "before6.rules", "-A ufw6-before-input -m conntrack --ctstate INVALID -j DROP",
		nflog("-A ufw6-before-input -m conntrack --ctstate INVALID"))
	u.EditRules(t, "after6.rules", "-A ufw6-after-input", nflog("-A ufw6-after-input"))
	u.EditRules(t, "after6.rules", commit, nflog("-A ufw6-after-forward"))
}

// LogInFrontOfDrops inserts, in front of every drop and reject rule of one
// nft table in namespace ns, a rule with the same matches that logs to
// group: the hand-written "after" state of a table whose manager has no
// setting for it. It reads the rules from nft -a list table.
func LogInFrontOfDrops(t testing.TB, ns, family, table string, group int) int {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", ns, "nft", "-a", "list", "table", family, table).Output()
	if err != nil {
		t.Fatalf("nft -a list table %s %s: %v", family, table, err)
	}
	statements := map[string]bool{"counter": true, "log": true, "drop": true, "reject": true, "accept": true, "jump": true, "goto": true, "return": true, "limit": true}
	chain, n := "", 0
	for _, line := range strings.Split(string(out), "\n") {
		line = strings.TrimSpace(line)
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "chain" {
			chain = f[1]
			continue
		}
		text, handle, ok := strings.Cut(line, " # handle ")
		if !ok || chain == "" {
			continue
		}
		words := strings.Fields(text)
		i := 0
		for i < len(words) && !statements[words[i]] {
			i++
		}
		if i == len(words) || (words[i] != "drop" && words[i] != "reject") {
			continue
		}
		rule := strings.TrimSpace(strings.Join(words[:i], " ") + fmt.Sprintf(" log group %d counter", group))
		args := append([]string{"netns", "exec", ns, "nft", "insert", "rule", family, table, chain, "position", handle}, strings.Fields(rule)...)
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("nft insert rule ... %s: %v: %s", rule, err, out)
		}
		n++
	}
	return n
}

// NewUFWLab creates a lab (prefix nfd-<tag><pid>) whose server namespace
// runs vanilla ufw: default deny incoming, allow 80, enabled.
func NewUFWLab(t testing.TB, tag string) (*lab.Lab, *UFW) {
	t.Helper()
	e2e.Require(t, "ip", "ufw", "iptables")
	l, err := lab.New(fmt.Sprintf("nfd-%s%d", tag, os.Getpid()%100000))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("lab close: %v", err)
		}
	})
	u := NewUFW(t, l.Server)
	u.Run(t, "default", "deny", "incoming")
	u.Run(t, "allow", "80")
	u.Run(t, "--force", "enable")
	return l, u
}

// SendAuditSet sends AuditSet over IPv4 from the client: 9 packets that
// conntrack calls INVALID and 5 NEW ones to closed ports.
func SendAuditSet(t testing.TB, l *lab.Lab) {
	t.Helper()
	invalid, valid := AuditSet(false)
	for _, s := range []lab.Scenario{invalid, valid} {
		if err := l.RunScenario(context.Background(), s, 0, 0, nil); err != nil {
			t.Fatal(err)
		}
	}
}
