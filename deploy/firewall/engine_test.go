//go:build linux

package firewall_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop-lab/e2e"
)

// The offline tests of the recipes' editing engines (lib/*.awk) and of the
// install scripts that only edit files: run everywhere, no root needed.

// awkRun runs lib/PROG on input with the given -v assignments and returns
// its standard output and error.
func awkRun(t testing.TB, prog, input string, vars ...string) (string, string, error) {
	t.Helper()
	f := filepath.Join(t.TempDir(), "input")
	if err := os.WriteFile(f, []byte(input), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"-f", filepath.Join(e2e.Root(), "deploy", "firewall", "lib", prog)}
	for _, v := range vars {
		args = append(args, "-v", v)
	}
	cmd := exec.Command("awk", append(args, f)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return out.String(), errb.String(), err
}

// ipt runs the iptables engine on input.
func ipt(t testing.TB, input string, vars ...string) string {
	t.Helper()
	out, stderr, err := awkRun(t, "nflog-iptables.awk", input, append([]string{"file=input"}, vars...)...)
	if err != nil {
		t.Fatalf("nflog-iptables.awk %v: %v\n%s", vars, err, stderr)
	}
	return out
}

// nftEdit runs the nft engine on input in mode "conf" or "include".
func nftEdit(t testing.TB, input, mode string, vars ...string) string {
	t.Helper()
	out, stderr, err := awkRun(t, "nflog-nft.awk", input,
		append([]string{"file=input", "mode=" + mode, "include=/etc/nftables.d/nfdrop_exporter.nft"}, vars...)...)
	if err != nil {
		t.Fatalf("nflog-nft.awk %v: %v\n%s", vars, err, stderr)
	}
	return out
}

// ufwBefore is a before.rules as ufw ships it, shortened.
const ufwBefore = `# rules.before
*filter
:ufw-before-input - [0:0]
:ufw-not-local - [0:0]
-A ufw-before-input -i lo -j ACCEPT
-A ufw-before-input -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A ufw-before-input -m conntrack --ctstate INVALID -j ufw-logging-deny
-A ufw-before-input -m conntrack --ctstate INVALID -j DROP
-A ufw-before-input -j ufw-not-local
-A ufw-not-local -m addrtype --dst-type LOCAL -j RETURN
-A ufw-not-local -m limit --limit 3/min --limit-burst 10 -j ufw-logging-deny
-A ufw-not-local -j DROP
COMMIT
`

const ufwBeforeWant = `# rules.before
*filter
:ufw-before-input - [0:0]
:ufw-not-local - [0:0]
-A ufw-before-input -i lo -j ACCEPT
-A ufw-before-input -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A ufw-before-input -m conntrack --ctstate INVALID -j ufw-logging-deny
-A ufw-before-input -m conntrack --ctstate INVALID -m comment --comment nfdrop_exporter -j NFLOG --nflog-group 3 --nflog-prefix ufw-invalid --nflog-size 256
-A ufw-before-input -m conntrack --ctstate INVALID -j DROP
-A ufw-before-input -j ufw-not-local
-A ufw-not-local -m addrtype --dst-type LOCAL -j RETURN
-A ufw-not-local -m limit --limit 3/min --limit-burst 10 -j ufw-logging-deny
-A ufw-not-local -m comment --comment nfdrop_exporter -j NFLOG --nflog-group 3 --nflog-prefix ufw-not-local --nflog-size 256
-A ufw-not-local -j DROP
COMMIT
`

const ufwAfter6 = `*filter
:ufw6-after-input - [0:0]
:ufw6-after-forward - [0:0]
-A ufw6-after-input -p udp --dport 137 -j ufw6-skip-to-policy-input
-A ufw6-after-input -p udp --dport 546 -j ufw6-skip-to-policy-input
COMMIT
`

const ufwAfter6Want = `*filter
:ufw6-after-input - [0:0]
:ufw6-after-forward - [0:0]
-A ufw6-after-input -p udp --dport 137 -m comment --comment nfdrop_exporter -j NFLOG --nflog-group 3 --nflog-prefix ufw-noise --nflog-size 256
-A ufw6-after-input -p udp --dport 137 -j ufw6-skip-to-policy-input
-A ufw6-after-input -p udp --dport 546 -m comment --comment nfdrop_exporter -j NFLOG --nflog-group 3 --nflog-prefix ufw-noise --nflog-size 256
-A ufw6-after-input -p udp --dport 546 -j ufw6-skip-to-policy-input
-A ufw6-after-input -m comment --comment nfdrop_exporter -j NFLOG --nflog-group 3 --nflog-prefix ufw-policy-input --nflog-size 256
-A ufw6-after-forward -m comment --comment nfdrop_exporter -j NFLOG --nflog-group 3 --nflog-prefix ufw-policy-forward --nflog-size 256
COMMIT
`

func TestIptablesEngineUFW(t *testing.T) {
	drop := []string{"flavor=ufw", "group=3", "pin=drop", "pfwd=drop", "pout=accept"}
	if got := ipt(t, ufwBefore, append(drop, "after=0", "fam=ufw")...); got != ufwBeforeWant {
		t.Errorf("before.rules:\n%s\nwant:\n%s", got, ufwBeforeWant)
	}
	if got := ipt(t, ufwAfter6, append(drop, "after=1", "fam=ufw6")...); got != ufwAfter6Want {
		t.Errorf("after6.rules:\n%s\nwant:\n%s", got, ufwAfter6Want)
	}
	// An ACCEPT direction gets nothing: what reaches its policy (or
	// ufw-skip-to-policy) is accepted.
	accept := []string{"flavor=ufw", "group=3", "pin=accept", "pfwd=accept", "pout=accept", "after=1", "fam=ufw6"}
	if got := ipt(t, ufwAfter6, accept...); got != ufwAfter6 {
		t.Errorf("after6.rules with ACCEPT policies:\n%s\nwant it unchanged", got)
	}
	// Uninstall gives back the file, whatever group installed it.
	for _, f := range []struct{ in, want string }{{ufwBefore, ufwBeforeWant}, {ufwAfter6, ufwAfter6Want}} {
		if got := ipt(t, f.want, "flavor=ufw", "uninstall=1"); got != f.in {
			t.Errorf("uninstall:\n%s\nwant:\n%s", got, f.in)
		}
	}
}

// rulesSaved is rules.v4 as iptables-save -c writes it, after install and
// a save: the recipe's lines in iptables' own spelling.
const rulesSaved = `*filter
:INPUT DROP [10:600]
:FORWARD ACCEPT [0:0]
[3:180] -A INPUT -m conntrack --ctstate INVALID -m comment --comment nfdrop_exporter -j NFLOG --nflog-prefix ipt-invalid --nflog-size 256
[3:180] -A INPUT -m conntrack --ctstate INVALID -j DROP
[0:0] -A INPUT -p tcp -m tcp --dport 23 -m comment --comment "keep out" -j REJECT --reject-with tcp-reset
[10:600] -A INPUT -m comment --comment nfdrop_exporter -j NFLOG --nflog-prefix ipt-policy-input --nflog-group 0 --nflog-size 256
COMMIT
*nat
:POSTROUTING ACCEPT [0:0]
-A POSTROUTING -o eth0 -j MASQUERADE
COMMIT
*raw
:PREROUTING DROP [0:0]
-A PREROUTING -s 192.0.2.1/32 -j DROP
COMMIT
`

const rulesSavedWant = `*filter
:INPUT DROP [10:600]
:FORWARD ACCEPT [0:0]
-A INPUT -m conntrack --ctstate INVALID -m comment --comment nfdrop_exporter -j NFLOG --nflog-group 0 --nflog-prefix ipt-invalid --nflog-size 256
[3:180] -A INPUT -m conntrack --ctstate INVALID -j DROP
-A INPUT -p tcp -m tcp --dport 23 -m comment --comment "keep out" -m comment --comment nfdrop_exporter -j NFLOG --nflog-group 0 --nflog-prefix ipt-input --nflog-size 256
[0:0] -A INPUT -p tcp -m tcp --dport 23 -m comment --comment "keep out" -j REJECT --reject-with tcp-reset
-A INPUT -m comment --comment nfdrop_exporter -j NFLOG --nflog-group 0 --nflog-prefix ipt-policy-input --nflog-size 256
COMMIT
*nat
:POSTROUTING ACCEPT [0:0]
-A POSTROUTING -o eth0 -j MASQUERADE
COMMIT
*raw
:PREROUTING DROP [0:0]
-A PREROUTING -s 192.0.2.1/32 -m comment --comment nfdrop_exporter -j NFLOG --nflog-group 0 --nflog-prefix ipt-raw-prerouting --nflog-size 256
-A PREROUTING -s 192.0.2.1/32 -j DROP
-A PREROUTING -m comment --comment nfdrop_exporter -j NFLOG --nflog-group 0 --nflog-prefix ipt-raw-policy-prerouting --nflog-size 256
COMMIT
`

func TestIptablesEnginePlain(t *testing.T) {
	got := ipt(t, rulesSaved, "flavor=plain", "group=0")
	if got != rulesSavedWant {
		t.Errorf("saved rules:\n%s\nwant:\n%s", got, rulesSavedWant)
	}
	if again := ipt(t, got, "flavor=plain", "group=0"); again != got {
		t.Errorf("a second run changed it:\n%s", again)
	}
}

func TestIptablesEngineWarnsAndLeavesAlone(t *testing.T) {
	in := "*filter\n:INPUT ACCEPT [0:0]\n" +
		"-A INPUT -p udp -m limit --limit 5/s -j DROP\n" +
		"-A INPUT -p udp -m recent --name x --set -j DROP\n" +
		"-A INPUT -p tcp -j REJECT --reject-with tcp-reset -m comment --comment after\n" +
		"COMMIT\n"
	out, stderr, err := awkRun(t, "nflog-iptables.awk", in, "file=rules.v4", "flavor=plain", "group=1")
	if err != nil {
		t.Fatal(err)
	}
	if out != in {
		t.Errorf("changed:\n%s", out)
	}
	for _, w := range []string{`"limit" keeps state`, `"recent" keeps state`, "options after the target"} {
		if !strings.Contains(stderr, w) {
			t.Errorf("no warning %q in:\n%s", w, stderr)
		}
	}
}

// The real Debian files, when ufw is installed: the counts the e2e test
// expects in the live ruleset.
func TestIptablesEngineDebianUFW(t *testing.T) {
	dir := "/usr/share/ufw/iptables"
	if _, err := os.Stat(dir); err != nil {
		if e2e.Enabled() {
			t.Fatalf("NFDROP_E2E=1 but ufw is not installed (.ci/deps installs it): %v", err)
		}
		t.Skip("ufw is not installed")
	}
	want := map[string]int{"before.rules": 2, "before6.rules": 4, "after.rules": 9, "after6.rules": 8}
	for f, n := range want {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		fam, after := "ufw", "0"
		if strings.Contains(f, "6") {
			fam = "ufw6"
		}
		if strings.HasPrefix(f, "after") {
			after = "1"
		}
		got := ipt(t, string(b), "flavor=ufw", "group=0", "pin=drop", "pfwd=drop", "pout=accept", "fam="+fam, "after="+after)
		if added := strings.Count(got, "nfdrop_exporter") - strings.Count(string(b), "nfdrop_exporter"); added != n {
			t.Errorf("%s: %d lines added, want %d", f, added, n)
		}
		if back := ipt(t, got, "flavor=ufw", "uninstall=1"); back != string(b) {
			t.Errorf("%s: uninstall does not give the file back", f)
		}
	}
}

func TestNftEngine(t *testing.T) {
	conf := nftEdit(t, nftablesConf, "conf", "group=8")
	for _, want := range []string{
		`ct state invalid log group 8 prefix "nft-invalid" snaplen 256 counter drop`,
		`tcp dport 23 log group 8 prefix "nft-input" snaplen 256 counter reject with tcp reset`,
		`udp dport 9 limit rate 1/hour burst 1 packets log group 8 prefix "nft-input" snaplen 256 counter reject`,
		`counter log group 8 prefix "nft-noise" snaplen 256 counter drop comment "NetBIOS"`,
		`udp dport vmap { 137 : jump noise, 138 : jump noise }`,
		"include \"/etc/nftables.d/nfdrop_exporter.nft\" # nfdrop_exporter\n",
	} {
		if !strings.Contains(conf, want) {
			t.Errorf("edited conf has no %q:\n%s", want, conf)
		}
	}
	if n := strings.Count(conf, "log group 8"); n != 4 {
		t.Errorf("%d log statements, want 4", n)
	}
	incl := nftEdit(t, nftablesConf, "include", "group=8")
	for _, want := range []string{
		`add rule inet filter forward log group 8 prefix "nft-policy-forward" snaplen 256 counter comment "nfdrop_exporter"`,
		`add rule inet filter input log group 8 prefix "nft-policy-input" snaplen 256 counter comment "nfdrop_exporter"`,
	} {
		if !strings.Contains(incl, want) {
			t.Errorf("include has no %q:\n%s", want, incl)
		}
	}
	if strings.Contains(incl, "output") {
		t.Errorf("include logs the output chain, whose policy accepts:\n%s", incl)
	}
	if again := nftEdit(t, conf, "conf", "group=8"); again != conf {
		t.Errorf("a second run changed it:\n%s", again)
	}
	if back := nftEdit(t, conf, "conf", "uninstall=1"); back != nftablesConf {
		t.Errorf("uninstall:\n%s\nwant:\n%s", back, nftablesConf)
	}
}

// What `nft list ruleset` prints of an installed ruleset (the rules of the
// include file inline, log and counter in nft's own order) is recognised.
func TestNftEngineListedRuleset(t *testing.T) {
	listed := `table inet filter {
	chain input {
		type filter hook input priority filter; policy drop;
		ct state invalid log prefix "nft-invalid" group 8 snaplen 256 counter packets 3 bytes 120 drop
		log prefix "nft-policy-input" group 8 snaplen 256 counter packets 7 bytes 420 comment "nfdrop_exporter"
	}
}
`
	want := `table inet filter {
	chain input {
		type filter hook input priority filter; policy drop;
		ct state invalid drop
	}
}
`
	if got := nftEdit(t, listed, "conf", "uninstall=1"); got != want {
		t.Errorf("uninstall of a listed ruleset:\n%s\nwant:\n%s", got, want)
	}
}

func TestNftEngineTopLevelAndOtherFamilies(t *testing.T) {
	in := `add table ip t
add chain ip t c { type filter hook input priority 0; policy drop; }
add rule ip t c tcp dport { 1, 2 } drop
table netdev n {
	chain i {
		type filter hook ingress device "lo" priority 0;
		ip saddr 0.0.0.0 drop
	}
}
`
	out, stderr, err := awkRun(t, "nflog-nft.awk", in, "file=f", "mode=conf", "group=1", "include=/x.nft")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, `add rule ip t c tcp dport { 1, 2 } log group 1 prefix "nft-c" snaplen 256 counter drop`) {
		t.Errorf("top-level rule not edited:\n%s", out)
	}
	if !strings.Contains(out, "\t\tip saddr 0.0.0.0 drop\n") || !strings.Contains(stderr, "netdev") {
		t.Errorf("netdev drop edited or not warned about:\n%s\n%s", out, stderr)
	}
	incl := nftEdit(t, in, "include", "group=1")
	if !strings.Contains(incl, `add rule ip t c log group 1 prefix "nft-policy-c"`) {
		t.Errorf("include:\n%s", incl)
	}
}

// The scripts themselves, on files in a temporary directory.
func TestInstallScriptsOnFiles(t *testing.T) {
	dir := t.TempDir()
	conf := "*filter\n:INPUT DROP [0:0]\n-A INPUT -m conntrack --ctstate INVALID -j DROP\nCOMMIT" // no final newline
	writeFile(t, filepath.Join(dir, "rules.v4"), conf)
	script := filepath.Join(recipeDir("netfilter-persistent"), "install")
	run := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(script, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("install %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	run("--group", "12", dir)
	b, _ := os.ReadFile(filepath.Join(dir, "rules.v4"))
	if !strings.Contains(string(b), "--nflog-group 12 --nflog-prefix ipt-invalid") || strings.HasSuffix(string(b), "\n") {
		t.Errorf("installed file (its missing final newline must stay missing):\n%q", b)
	}
	if out := run("--group", "12", dir); !strings.Contains(out, "nothing to change") {
		t.Errorf("second run: %s", out)
	}
	run("--uninstall", dir)
	if b, _ := os.ReadFile(filepath.Join(dir, "rules.v4")); string(b) != conf {
		t.Errorf("after uninstall: %q, want %q", b, conf)
	}
	for _, bad := range [][]string{{"--group", "x", dir}, {"--group", "65536", dir}, {"--bogus"}} {
		cmd := exec.Command(script, bad...)
		if err := cmd.Run(); err == nil || cmd.ProcessState.ExitCode() != 2 {
			t.Errorf("install %v: %v, want exit status 2", bad, err)
		}
	}
	if err := exec.Command(script, filepath.Join(dir, "nothing")).Run(); err == nil {
		t.Error("install on a directory without rules files succeeded")
	}
}

// fuzzable keeps fuzz inputs to what a rules file holds: printable text.
func fuzzable(s string) bool {
	if !utf8.ValidString(s) || len(s) > 4096 {
		return false
	}
	for _, r := range s {
		if r < 0x20 && r != '\n' && r != '\t' || r == 0x7f {
			return false
		}
	}
	return true
}

// ensureNL is what the install scripts do with a missing final newline
// (keep it missing); the engines themselves always end lines.
func ensureNL(s string) string {
	if s != "" && !strings.HasSuffix(s, "\n") {
		return s + "\n"
	}
	return s
}

// FuzzIptablesEngine: for any file, a second install changes nothing, the
// input's lines all stay in order, and uninstall after install gives what
// uninstall alone gives.
func FuzzIptablesEngine(f *testing.F) {
	for _, s := range []string{ufwBefore, ufwAfter6, rulesSaved, rulesSavedWant, rulesV4, rulesV6, "*filter\n-A X -j DROP\nCOMMIT\n"} {
		f.Add(s, true)
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, in string, ufw bool) {
		if !fuzzable(in) {
			t.Skip()
		}
		in = ensureNL(in)
		vars := []string{"flavor=plain", "group=7"}
		if ufw {
			vars = []string{"flavor=ufw", "group=7", "pin=drop", "pfwd=drop", "pout=drop", "after=1", "fam=ufw"}
		}
		run := func(s string, extra ...string) (string, bool) {
			out, _, err := awkRun(t, "nflog-iptables.awk", s, append(append([]string{"file=f"}, vars...), extra...)...)
			return out, err == nil
		}
		once, ok := run(in)
		if !ok {
			return // refused (an after file without a *filter COMMIT)
		}
		twice, _ := run(once)
		if twice != once {
			t.Fatalf("second install changed\n%q\nto\n%q", once, twice)
		}
		back, _ := run(once, "uninstall=1")
		alone, _ := run(in, "uninstall=1")
		if back != alone {
			t.Fatalf("uninstall after install\n%q\n!= uninstall alone\n%q", back, alone)
		}
		if !subsequence(strings.Split(alone, "\n"), strings.Split(once, "\n")) {
			t.Fatalf("install lost lines of\n%q\ngot\n%q", alone, once)
		}
	})
}

// FuzzNftEngine: the same properties for nft files.
func FuzzNftEngine(f *testing.F) {
	for _, s := range []string{nftablesConf, "table t { chain c { type filter hook input priority 0; policy drop; drop; } }\n",
		"add rule inet t c ip saddr { 1.1.1.1,\n 2.2.2.2 } drop\n", `table inet x { chain y { tcp dport 1 reject with tcp reset comment "a" } }` + "\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		if !fuzzable(in) {
			t.Skip()
		}
		in = ensureNL(in)
		run := func(s string, extra ...string) string {
			out, stderr, err := awkRun(t, "nflog-nft.awk", s, append([]string{"file=f", "mode=conf", "group=7", "include=/i.nft"}, extra...)...)
			if err != nil {
				t.Fatalf("awk: %v\n%s", err, stderr)
			}
			return out
		}
		once := run(in)
		if twice := run(once); twice != once {
			t.Fatalf("second install changed\n%q\nto\n%q", once, twice)
		}
		if back, alone := run(once, "uninstall=1"), run(in, "uninstall=1"); back != alone {
			t.Fatalf("uninstall after install\n%q\n!= uninstall alone\n%q", back, alone)
		}
	})
}

// subsequence reports whether every element of a appears in b in order.
func subsequence(a, b []string) bool {
	i := 0
	for _, x := range b {
		if i < len(a) && x == a[i] {
			i++
		}
	}
	return i == len(a)
}

// FuzzSaveCounters and FuzzNftCounters: the tests' readers of the kernel's
// counters never panic and report nothing that is not in their input.
func FuzzSaveCounters(f *testing.F) {
	f.Add(rulesSaved)
	f.Add(":INPUT DROP [5:300]\n[2:80] -A INPUT -j NFLOG --nflog-prefix \"a b\"\n[1:40] -A INPUT -j REJECT\n")
	f.Fuzz(func(t *testing.T, s string) {
		drops, nflog, err := saveCounters(s)
		if err != nil {
			return
		}
		// Every NFLOG or drop line's packets are read from a [p:b] prefix
		// of at most 20 digits; the parser must never report a prefix it
		// did not see.
		for p := range nflog {
			if !strings.Contains(s, p) {
				t.Fatalf("prefix %q is not in the input (drops %d)", p, drops)
			}
		}
	})
}

func FuzzNftCounters(f *testing.F) {
	f.Add(`{"nftables":[{"rule":{"chain":"c","expr":[{"log":{"group":1,"prefix":"p"}},{"counter":{"packets":3,"bytes":9}}]}}]}`)
	f.Add(`{"nftables":[{"rule":{"chain":"input_first","expr":[{"counter":{"packets":1,"bytes":2}}]}}]}`)
	f.Fuzz(func(t *testing.T, s string) {
		// Without escapes and with valid UTF-8, JSON strings decode to
		// their bytes: every chain read must be in the input.
		literal := utf8.ValidString(s) && !strings.Contains(s, `\`)
		if c, err := chainCounters([]byte(s)); err == nil && literal {
			for ch := range c {
				if !strings.Contains(s, ch) {
					t.Fatalf("chain %q is not in the input", ch)
				}
			}
		}
		_, _ = logCounters([]byte(s), 1)
	})
}
