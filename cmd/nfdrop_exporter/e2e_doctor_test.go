//go:build linux

package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop-lab/e2e"
	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop-lab/e2e/e2elab"
	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop-lab/lab"
)

// The doctor end-to-end tests run "nfdrop_exporter doctor" in lab
// namespaces with Debian's real ufw and firewalld (private configuration,
// see e2elab) and with nft rulesets, and compare what it reports with the
// kernel's own tools (iptables -nvxL). NFDROP_E2E=1, root:
//
//	NFDROP_E2E=1 go test -run Doctor -v ./cmd/nfdrop_exporter/

type doctorJSON struct {
	Managers []struct {
		Name   string   `json:"name"`
		Tables []string `json:"tables"`
	} `json:"managers"`
	Findings []doctorFinding `json:"findings"`
}

type doctorFinding struct {
	ID       string  `json:"id"`
	Severity string  `json:"severity"`
	Family   string  `json:"family"`
	Table    string  `json:"table"`
	Chain    string  `json:"chain"`
	Packets  *uint64 `json:"packets"`
	Fix      string  `json:"fix"`
	Rule     *uint64 `json:"rule"`
	Group    *uint16 `json:"group"`
}

// doctorIn runs the doctor in namespace ns, behind prefix (setpriv ...).
func doctorIn(t *testing.T, bin, ns string, prefix []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	argv := append([]string{"netns", "exec", ns}, prefix...)
	argv = append(argv, bin, "doctor")
	argv = append(argv, args...)
	cmd := exec.Command("ip", argv...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatal(err)
	}
	return o.String(), e.String(), code
}

func doctorReport(t *testing.T, bin, ns string, args ...string) (doctorJSON, int) {
	t.Helper()
	out, stderr, code := doctorIn(t, bin, ns, nil, append([]string{"--format=json"}, args...)...)
	var r doctorJSON
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("doctor --format=json: %v (exit %d)\n%s\n%s", err, code, out, stderr)
	}
	return r, code
}

// dropFindings lists "family table chain[#rule]" of the drop-not-logged
// findings, with packets when counted.
func dropFindings(r doctorJSON, id string) []string {
	var out []string
	for _, f := range r.Findings {
		if f.ID != id {
			continue
		}
		s := f.Family + " " + f.Table + " " + f.Chain
		if f.Rule != nil {
			s += "#" + strconv.FormatUint(*f.Rule, 10)
		}
		if f.Packets != nil {
			s += fmt.Sprintf(" %d", *f.Packets)
		}
		out = append(out, s)
	}
	return out
}

var (
	policyRE  = regexp.MustCompile(`policy DROP (\d+) packets`)
	invalidRE = regexp.MustCompile(`(?m)^\s*(\d+)\s+\d+\s+DROP\s.*ctstate INVALID`)
)

// iptablesCounts returns what iptables -nvxL says of ufw's INPUT policy and
// INVALID drop.
func iptablesCounts(t *testing.T, l *lab.Lab) (policy, invalid uint64) {
	t.Helper()
	out, err := l.Run(l.Server, "iptables", "-nvxL", "INPUT")
	if err != nil {
		t.Fatal(err)
	}
	m := policyRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no policy counter in:\n%s", out)
	}
	policy, _ = strconv.ParseUint(m[1], 10, 64)
	out, err = l.Run(l.Server, "iptables", "-nvxL", "ufw-before-input")
	if err != nil {
		t.Fatal(err)
	}
	m = invalidRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no INVALID drop in:\n%s", out)
	}
	invalid, _ = strconv.ParseUint(m[1], 10, 64)
	return policy, invalid
}

// TestDoctorUFWE2E: vanilla ufw (deny incoming, allow 80) after the audit
// set: doctor exits 1 and reports every drop point, with the packets
// iptables -nvxL counts; with an NFLOG line in front of every drop it exits
// 0.
func TestDoctorUFWE2E(t *testing.T) {
	e2e.Require(t, "ip", "ufw", "iptables", "nft")
	bin := e2e.Binary(t)
	l, u := e2elab.NewUFWLab(t, "dou")
	e2elab.SendAuditSet(t, l)
	policy, invalid := iptablesCounts(t, l)
	if policy != 5 || invalid != 9 {
		t.Errorf("iptables -nvxL: policy %d, INVALID %d; the audit set is 5 NEW and 9 INVALID packets", policy, invalid)
	}

	text, stderr, code := doctorIn(t, bin, l.Server, nil)
	t.Logf("doctor on vanilla ufw (exit %d):\n%s%s", code, text, stderr)
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	for _, want := range []string{
		"Firewall: ufw (ip filter, ip6 filter)",
		fmt.Sprintf("ERROR   drop-not-logged  ip filter INPUT (ufw)  packets: %d", policy),
		fmt.Sprintf("ERROR   drop-not-logged  ip filter ufw-before-input rule 60 (ufw)  packets: %d", invalid),
		"-A ufw-before-input -m conntrack --ctstate INVALID -j NFLOG --nflog-group 0",
		"-A ufw-after-input -j NFLOG --nflog-group 0",
		"12 errors, 5 warnings, 3 notes. Some drops are hidden from the exporter (exit status 1).",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("text output lacks %q", want)
		}
	}
	r, code := doctorReport(t, bin, l.Server)
	if code != 1 || len(r.Managers) != 1 || r.Managers[0].Name != "ufw" {
		t.Errorf("json: exit %d, managers %+v", code, r.Managers)
	}
	got := dropFindings(r, "drop-not-logged")
	want := []string{
		fmt.Sprintf("ip filter ufw-before-input#60 %d", invalid),
		fmt.Sprintf("ip filter INPUT %d", policy),
		"ip filter FORWARD 0",
		"ip filter ufw-skip-to-policy-input#50 0",
		"ip filter ufw-not-local#75 0",
		"ip6 filter ufw6-before-input#55 0",
		"ip6 filter ufw6-before-input#63 0",
		"ip6 filter ufw6-before-output#57 0",
		"ip6 filter ufw6-before-forward#56 0",
		"ip6 filter INPUT 0",
		"ip6 filter FORWARD 0",
		"ip6 filter ufw6-skip-to-policy-input#50 0",
	}
	if !slices.Equal(got, want) {
		t.Errorf("drop findings:\n got %q\nwant %q", got, want)
	}

	u.LogEveryDrop(t, 0)
	u.Run(t, "reload")
	text, _, code = doctorIn(t, bin, l.Server, nil)
	t.Logf("doctor on ufw with NFLOG in front of every drop (exit %d):\n%s", code, text)
	r, jcode := doctorReport(t, bin, l.Server)
	if code != 0 || jcode != 0 {
		t.Errorf("after: exit %d (json %d), want 0", code, jcode)
	}
	for _, f := range r.Findings {
		if f.Severity != "info" {
			t.Errorf("after: %s %s %s %s", f.Severity, f.ID, f.Table, f.Chain)
		}
	}
}

// TestDoctorFirewalldE2E: vanilla firewalld: doctor exits 1 and reports
// firewalld's own drops and the zones' rejects (no kernel counter: packets
// null); the nflog rich rule covers the zone's reject; log rules in front of
// every drop make it exit 0.
func TestDoctorFirewalldE2E(t *testing.T) {
	e2e.Require(t, "ip", "firewalld", "nft")
	bin := e2e.Binary(t)
	l, err := lab.New(fmt.Sprintf("nfd-dof%d", os.Getpid()%100000))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Error(err)
		}
	})
	f := e2elab.StartFirewalld(t, l.Server)

	text, _, code := doctorIn(t, bin, l.Server, nil)
	t.Logf("doctor on vanilla firewalld (exit %d):\n%s", code, text)
	r, jcode := doctorReport(t, bin, l.Server)
	if code != 1 || jcode != 1 {
		t.Errorf("exit %d (json %d), want 1", code, jcode)
	}
	zone := "inet firewalld filter_IN_public#72"
	want := []string{
		"inet firewalld filter_PREROUTING#52", "inet firewalld filter_INPUT#29", "inet firewalld filter_FORWARD#39",
		"inet firewalld filter_FORWARD#58", "inet firewalld filter_OUTPUT#56", zone, "inet firewalld filter_FWD_public#101",
	}
	if got := dropFindings(r, "drop-not-logged"); !slices.Equal(got, want) {
		t.Errorf("drop findings:\n got %q\nwant %q", got, want)
	}
	for _, fd := range r.Findings {
		if fd.ID == "drop-not-logged" && fd.Chain == "filter_IN_public" && !strings.Contains(fd.Fix, `firewall-cmd --permanent --zone=public --add-rich-rule='rule priority=32767 nflog group="0" prefix="denied"'`) {
			t.Errorf("zone fix: %s", fd.Fix)
		}
	}

	f.Cmd(t, "--permanent", "--zone=public", `--add-rich-rule=rule priority=32767 nflog group="0" prefix="denied"`)
	f.Cmd(t, "--reload")
	r, _ = doctorReport(t, bin, l.Server)
	if got := dropFindings(r, "drop-not-logged"); slices.Contains(got, zone) || len(got) != 6 {
		t.Errorf("with the rich rule: %q; want the zone's reject covered", got)
	}

	// The fix doctor gives for firewalld's INVALID drop, run as it is: a
	// table of one's own, just before firewalld's chain, that logs the same
	// packets.
	var fix string
	for _, fd := range r.Findings {
		if fd.ID == "drop-not-logged" && fd.Chain == "filter_INPUT" {
			fix = fd.Fix
		}
	}
	ran := 0
	for _, line := range strings.Split(fix, "\n") {
		if line = strings.TrimSpace(line); strings.HasPrefix(line, "nft ") {
			if _, err := l.Run(l.Server, "sh", "-c", line); err != nil {
				t.Fatalf("the fix's %q: %v", line, err)
			}
			ran++
		}
	}
	r, _ = doctorReport(t, bin, l.Server)
	if got := dropFindings(r, "drop-not-logged"); ran != 3 || slices.Contains(got, "inet firewalld filter_INPUT#29") || len(got) != 5 {
		t.Errorf("after running %d lines of the INVALID fix: %q; want it covered", ran, got)
	}

	if n := e2elab.LogInFrontOfDrops(t, l.Server, "inet", "firewalld", 0); n < 6 {
		t.Fatalf("inserted %d log rules", n)
	}
	text, _, code = doctorIn(t, bin, l.Server, nil)
	t.Logf("doctor on firewalld with log rules in front of every drop (exit %d):\n%s", code, text)
	if code != 0 {
		t.Errorf("after: exit %d, want 0", code)
	}
}

// TestDoctorFindingsE2E: a rate-limited log rule, one without a counter,
// one to a group nobody reads, one to a group tcpdump reads, a kernel-log
// rule in front of a drop, a group the exporter is told to read that
// tcpdump holds, and iptables-legacy rules.
func TestDoctorFindingsE2E(t *testing.T) {
	e2e.Require(t, "ip", "nft", "tcpdump", "iptables-legacy")
	bin := e2e.Binary(t)
	l, err := lab.New(fmt.Sprintf("nfd-dox%d", os.Getpid()%100000))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	rules := filepath.Join(t.TempDir(), "rules.nft")
	if err := os.WriteFile(rules, []byte(`table inet t {
	chain in {
		type filter hook input priority 0; policy accept;
		tcp dport 1 limit rate 10/second log group 0 counter
		tcp dport 1 counter drop
		tcp dport 2 log group 0
		tcp dport 2 counter drop
		tcp dport 3 log group 7 counter
		tcp dport 4 log group 5 counter
	}
	chain in2 {
		type filter hook input priority 0; policy accept;
		tcp dport 5 log prefix "k" counter
		tcp dport 5 counter drop
	}
}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range [][]string{{"nft", "-f", rules}, {"iptables-legacy", "-A", "INPUT", "-p", "tcp", "--dport", "6", "-j", "DROP"}} {
		if _, err := l.Run(l.Server, c[0], c[1:]...); err != nil {
			t.Fatal(err)
		}
	}
	var out lab.SyncBuffer
	if _, err := l.Start(l.Server, &out, &out, "tcpdump", "-i", "nflog:5", "-w", "/dev/null"); err != nil {
		t.Fatal(err)
	}
	var r doctorJSON
	var code int
	deadline := time.Now().Add(10 * time.Second)
	for {
		r, code = doctorReport(t, bin, l.Server, "--nflog.group=0", "--nflog.group=4")
		if slices.ContainsFunc(r.Findings, func(f doctorFinding) bool {
			return f.ID == "log-group-read-by-other"
		}) || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	var got []string
	for _, f := range r.Findings {
		if strings.HasPrefix(f.ID, "conntrack-") || f.ID == "ebpf-source" {
			continue
		}
		s := f.Severity + " " + f.ID
		if f.Rule != nil {
			s += fmt.Sprintf(" #%d", *f.Rule)
		}
		if f.Group != nil {
			s += fmt.Sprintf(" g%d", *f.Group)
		}
		got = append(got, s)
	}
	want := []string{
		"error drop-not-logged #10",
		"warning drop-log-sampled #4",
		"warning log-to-kernel-log #9",
		"warning log-rate-limited #3 g0",
		"warning log-without-counter #5 g0",
		"warning log-group-unread #7 g7",
		"warning group-without-log-rule g4",
		"warning iptables-legacy-rules",
		"info log-group-read-by-other #8 g5",
	}
	if code != 1 || !slices.Equal(got, want) {
		t.Errorf("exit %d, findings:\n got %q\nwant %q\ntcpdump: %s", code, got, want, out.String())
	}

	// The exporter's own group held by another process is an error.
	r, code = doctorReport(t, bin, l.Server, "--nflog.group=5")
	if code != 1 || !slices.ContainsFunc(r.Findings, func(f doctorFinding) bool {
		return f.ID == "group-bound-by-other" && f.Severity == "error" && strings.Contains(f.Fix, "tcpdump (pid ")
	}) {
		t.Errorf("--nflog.group=5 held by tcpdump: exit %d, %+v", code, r.Findings)
	}
}

// TestDoctorCannotReadE2E: without CAP_NET_ADMIN doctor exits 2 and names
// the capability; a bad flag exits 2.
func TestDoctorCannotReadE2E(t *testing.T) {
	e2e.Require(t, "ip", "setpriv")
	bin := e2e.Binary(t)
	l, err := lab.New(fmt.Sprintf("nfd-doc%d", os.Getpid()%100000))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	out, stderr, code := doctorIn(t, bin, l.Server, []string{"setpriv", "--inh-caps=-all", "--bounding-set=-net_admin", "--"})
	if code != 2 || !strings.Contains(stderr, "needs CAP_NET_ADMIN") || out != "" {
		t.Errorf("without CAP_NET_ADMIN: exit %d, stdout %q, stderr %q", code, out, stderr)
	}
	_, stderr, code = doctorIn(t, bin, l.Server, nil, "--nflog.group=70000")
	if code != 2 || !strings.Contains(stderr, "--nflog.group=70000") {
		t.Errorf("bad group: exit %d, %q", code, stderr)
	}
	// An empty namespace: nothing drops, no rule logs to group 0.
	r, code := doctorReport(t, bin, l.Server)
	if code != 0 || len(r.Managers) != 0 {
		t.Errorf("empty namespace: exit %d, %+v", code, r)
	}
}
