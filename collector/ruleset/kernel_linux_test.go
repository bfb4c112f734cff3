//go:build linux

package ruleset

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop-lab/e2e"
	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop-lab/lab"
	"golang.org/x/sys/unix"
)

// The kernel tests load rulesets into the server namespace of a lab of
// their own (nfd-rs*) and read them back; the host's firewall is never
// touched. They need NFDROP_E2E=1 and root.

// labNS creates a lab, runs setup commands in its server namespace and
// returns the lab and a descriptor of that namespace.
func labNS(t testing.TB, tag string, setup ...[]string) (*lab.Lab, int) {
	t.Helper()
	e2e.Require(t, "ip", "nft", "iptables-restore", "ip6tables-restore")
	l, err := lab.New(fmt.Sprintf("nfd-rs%s%d", tag, os.Getpid()%100000))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Error(err)
		}
	})
	for _, c := range setup {
		if _, err := l.Run(l.Server, c[0], c[1:]...); err != nil {
			t.Fatal(err)
		}
	}
	fd, err := unix.Open(filepath.Join(lab.NetnsDir, l.Server), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return l, fd
}

// loadFile writes text to a file and returns the command that loads it.
func loadFile(t testing.TB, tool, text string) []string {
	p := filepath.Join(t.TempDir(), "rules")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	if tool == "nft" {
		return []string{"nft", "-f", p}
	}
	return []string{tool, "-c", p}
}

func read(t testing.TB, fd int) *Snapshot {
	t.Helper()
	s, err := Netlink{Timeout: 5 * time.Second, NetNS: fd}.Read()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func chainOf(t testing.TB, s *Snapshot, f Family, table, chain string) *Chain {
	t.Helper()
	tb := s.Table(f, table)
	if tb == nil {
		t.Fatalf("no table %s %s", f, table)
	}
	c := tb.Chain(chain)
	if c == nil {
		t.Fatalf("no chain %s in %s %s", chain, f, table)
	}
	return c
}

const nftRuleset = `
table inet fw {
	counter shared { packets 11 bytes 1100 }
	map blocked { type ipv4_addr : verdict; elements = { 192.0.2.1 : drop, 192.0.2.2 : jump logdrop } }
	chain logdrop {
		log prefix "x" group 3 counter packets 2 bytes 200
		counter packets 2 bytes 200 drop
	}
	chain input {
		type filter hook input priority filter + 5; policy drop;
		ct state invalid counter packets 4 bytes 400 drop
		ct state established,related accept
		ip saddr vmap @blocked
		tcp dport vmap { 22 : accept, 23 : drop, 24 : goto logdrop }
		tcp dport 25 counter packets 5 bytes 500 reject with tcp reset
		limit rate 3/minute burst 10 packets log group 4 counter packets 6 bytes 600
		tcp dport 26 counter name shared drop
		tcp dport 27 counter packets 7 bytes 700 log prefix "kern" drop
		meta mark set 1 counter packets 8 bytes 800
		counter packets 9 bytes 900 tcp dport 28 drop
		tcp dport 30 jump logdrop
		udp dport 31 return
	}
}
`

// TestReadNft: a native ruleset with every kind of verdict, log, limit and
// counter the analysis reads; counters are preset so that values are exact.
func TestReadNft(t *testing.T) {
	_, fd := labNS(t, "n", loadFile(t, "nft", nftRuleset))
	s := read(t, fd)
	if s.Attempts != 1 || s.Generation == 0 || s.ReadTook <= 0 {
		t.Errorf("snapshot: generation %d, attempts %d, took %s", s.Generation, s.Attempts, s.ReadTook)
	}
	in := chainOf(t, s, FamilyINet, "fw", "input")
	if in.Base == nil || in.HookName() != "input" || in.Base.Priority != 5 || in.Base.Policy != Drop || in.Base.Counter != nil || in.Base.Type != "filter" {
		t.Errorf("base chain: %+v, hook %s", in.Base, in.HookName())
	}
	if chainOf(t, s, FamilyINet, "fw", "logdrop").Base != nil {
		t.Error("logdrop is no base chain")
	}
	type want struct {
		verdict  Verdict
		nTerms   int
		logs     []Log
		limit    string
		counter  *Counter
		exact    bool
		mapDrops int
	}
	wants := []want{
		{verdict: Verdict{Kind: Drop}, nTerms: 1, counter: &Counter{4, 400}, exact: true},
		{verdict: Verdict{Kind: Accept}, nTerms: 1},
		{nTerms: 1, mapDrops: 1},
		{nTerms: 1, mapDrops: 1},
		{verdict: Verdict{Kind: Reject}, nTerms: 2, counter: &Counter{5, 500}, exact: true},
		{logs: []Log{{Kind: LogNFT, NFLOG: true, Group: 4, Sampled: true}}, limit: "3/minute burst 10", counter: &Counter{6, 600}, exact: true},
		{verdict: Verdict{Kind: Drop}, nTerms: 2, counter: &Counter{11, 1100}, exact: true},
		{verdict: Verdict{Kind: Drop}, nTerms: 2, logs: []Log{{Kind: LogNFT, Prefix: "kern", Before: 2}}, counter: &Counter{7, 700}, exact: true},
		{counter: &Counter{8, 800}, exact: true},
		{verdict: Verdict{Kind: Drop}, nTerms: 2, counter: &Counter{9, 900}, exact: false},
		{verdict: Verdict{Kind: Jump, Chain: "logdrop"}, nTerms: 2},
		{verdict: Verdict{Kind: Return}, nTerms: 2},
	}
	if len(in.Rules) != len(wants) {
		t.Fatalf("%d rules, want %d", len(in.Rules), len(wants))
	}
	for i, w := range wants {
		r := in.Rules[i]
		got := want{verdict: r.Verdict, nTerms: len(r.Terms), logs: r.Logs, counter: r.Counter, exact: r.CounterExact}
		if r.RateLimit != nil {
			got.limit = r.RateLimit.Text
		}
		if r.Map != nil {
			for _, e := range r.Map.Elements {
				if e.Verdict.Kind == Drop {
					got.mapDrops++
				}
			}
		}
		if !reflect.DeepEqual(got, w) {
			t.Errorf("rule %d (%d):\n got %+v\nwant %+v", i, r.Handle, got, w)
		}
		if r.Index != i || r.Chain != in {
			t.Errorf("rule %d: index %d", i, r.Index)
		}
	}
	named := in.Rules[2].Map
	if named.Set != "blocked" || named.Anonymous || len(named.Elements) != 2 {
		t.Errorf("named map: %+v", named)
	}
	anon := in.Rules[3].Map
	kinds := map[VerdictKind]string{}
	for _, e := range anon.Elements {
		kinds[e.Verdict.Kind] = e.Verdict.Chain
	}
	if !anon.Anonymous || len(anon.Elements) != 3 || kinds[Goto] != "logdrop" {
		t.Errorf("anonymous map: %+v", anon)
	}
	// tcp dport 25 and tcp dport 26 share their first term, not the second.
	if in.Rules[4].Terms[0] != in.Rules[6].Terms[0] || in.Rules[4].Terms[1] == in.Rules[6].Terms[1] {
		t.Errorf("terms: %q vs %q", in.Rules[4].Terms, in.Rules[6].Terms)
	}
}

// TestReadIptablesNft: iptables-nft rules, with the base chains' policy
// counters (iptables -nvxL "policy DROP N packets") and every rule counted.
func TestReadIptablesNft(t *testing.T) {
	l, fd := labNS(t, "i", loadFile(t, "iptables-restore", `*filter
:INPUT DROP [17:1700]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:deny - [0:0]
[3:300] -A INPUT -m conntrack --ctstate INVALID -j DROP
[4:400] -A INPUT -m state --state INVALID -j NFLOG --nflog-group 5
[5:500] -A INPUT -p tcp --dport 22 -m limit --limit 3/min --limit-burst 10 -j LOG --log-prefix "[X] "
[6:600] -A INPUT -p tcp --dport 23 -j REJECT --reject-with tcp-reset
[7:700] -A INPUT -m hashlimit --hashlimit-name h --hashlimit-upto 5/sec -j ACCEPT
[8:800] -A INPUT -m comment --comment "hello world" -j deny
[9:900] -A INPUT -p tcp --dport 24 -j NFQUEUE --queue-num 3
[1:100] -A deny -j DROP
COMMIT
`))
	out, err := l.Run(l.Server, "iptables", "-nvxL", "INPUT")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "policy DROP 17 packets") {
		t.Fatalf("iptables-restore did not preset the policy counter:\n%s", out)
	}
	s := read(t, fd)
	in := chainOf(t, s, FamilyIP, "filter", "INPUT")
	if in.Base.Counter == nil || *in.Base.Counter != (Counter{17, 1700}) || in.Base.Policy != Drop {
		t.Fatalf("policy counter %+v, policy %s; want 17 packets", in.Base.Counter, in.Base.Policy)
	}
	if fwd := chainOf(t, s, FamilyIP, "filter", "FORWARD"); fwd.Base.Counter == nil || fwd.Base.Policy != Accept {
		t.Errorf("FORWARD: %+v", fwd.Base)
	}
	r := in.Rules
	if len(r) != 7 {
		t.Fatalf("%d rules", len(r))
	}
	for i, rr := range r {
		if rr.Counter == nil || rr.Counter.Packets != uint64(i+3) || !rr.CounterExact {
			t.Errorf("rule %d counter %+v exact %v", i, rr.Counter, rr.CounterExact)
		}
	}
	// -m conntrack --ctstate INVALID and -m state --state INVALID are the
	// same condition, and nft's "ct state invalid" spells it the same way.
	if len(r[0].Terms) != 1 || r[0].Terms[0] != "ct-state-any(0x1)" || !reflect.DeepEqual(r[0].Terms, r[1].Terms) {
		t.Errorf("conntrack terms %q, state terms %q", r[0].Terms, r[1].Terms)
	}
	if r[0].Verdict.Kind != Drop || !r[0].Xtables {
		t.Errorf("rule 0: %+v", r[0])
	}
	if len(r[1].Logs) != 1 || !r[1].Logs[0].NFLOG || r[1].Logs[0].Group != 5 || r[1].Logs[0].Before != 1 {
		t.Errorf("NFLOG: %+v", r[1].Logs)
	}
	if len(r[2].Logs) != 1 || r[2].Logs[0].NFLOG || r[2].Logs[0].Kind != LogXtLOG || r[2].Logs[0].Prefix != "[X] " || !r[2].Logs[0].Sampled ||
		r[2].RateLimit == nil || r[2].RateLimit.Text != "3/minute burst 10" {
		t.Errorf("LOG: %+v limit %+v", r[2].Logs, r[2].RateLimit)
	}
	if r[3].Verdict.Kind != Reject {
		t.Errorf("REJECT: %+v", r[3].Verdict)
	}
	if r[4].RateLimit == nil || r[4].RateLimit.Kind != "xt hashlimit" || len(r[4].Terms) != 0 || r[4].Verdict.Kind != Accept {
		t.Errorf("hashlimit: %+v", r[4])
	}
	if r[5].Comment != "hello world" || len(r[5].Terms) != 0 || r[5].Verdict != (Verdict{Kind: Jump, Chain: "deny"}) || !r[5].Unconditional() {
		t.Errorf("comment rule: %+v", r[5])
	}
	if r[6].Verdict != (Verdict{Kind: Queue, Queue: 3}) {
		t.Errorf("NFQUEUE: %+v", r[6].Verdict)
	}
}

// TestTermsAcrossSpellings: the same condition written with nft and with
// iptables-nft gives the same terms.
func TestTermsAcrossSpellings(t *testing.T) {
	_, fd := labNS(t, "s",
		loadFile(t, "iptables-restore", "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p tcp --dport 22 -j DROP\n-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n-A INPUT -p udp -j DROP\nCOMMIT\n"),
		loadFile(t, "nft", "table ip t {\nchain c {\ntcp dport 22 drop\nct state established,related accept\nmeta l4proto udp drop\n}\n}\n"))
	s := read(t, fd)
	ipt, nft := chainOf(t, s, FamilyIP, "filter", "INPUT").Rules, chainOf(t, s, FamilyIP, "t", "c").Rules
	for i := range ipt {
		if !reflect.DeepEqual(ipt[i].Terms, nft[i].Terms) {
			t.Errorf("rule %d: iptables %q, nft %q", i, ipt[i].Terms, nft[i].Terms)
		}
	}
}

// TestNonUTF8Names: any CAP_NET_ADMIN process can name a table or chain
// with bytes that are not UTF-8 (nft refuses to, netlink does not): the
// reader keeps the bytes and Printable makes them valid.
func TestNonUTF8Names(t *testing.T) {
	_, fd := labNS(t, "u")
	tname, cname := "t\xff\xfe", "c\xc3("
	c, err := nftables.New(nftables.WithNetNSFd(fd))
	if err != nil {
		t.Fatal(err)
	}
	tbl := c.AddTable(&nftables.Table{Family: nftables.TableFamilyIPv4, Name: tname})
	ch := c.AddChain(&nftables.Chain{Name: cname, Table: tbl, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookInput, Priority: nftables.ChainPriorityFilter, Policy: ptr(nftables.ChainPolicyDrop)})
	other := c.AddChain(&nftables.Chain{Name: "\x80", Table: tbl})
	c.AddRule(&nftables.Rule{Table: tbl, Chain: ch, Exprs: []expr.Any{&expr.Counter{}, &expr.Verdict{Kind: expr.VerdictJump, Chain: "\x80"}}})
	c.AddRule(&nftables.Rule{Table: tbl, Chain: other, Exprs: []expr.Any{&expr.Verdict{Kind: expr.VerdictDrop}}})
	if err := c.Flush(); err != nil {
		t.Fatalf("creating non-UTF-8 names over netlink: %v", err)
	}
	s := read(t, fd)
	got := chainOf(t, s, FamilyIP, tname, cname)
	if got.Table.Name != tname || got.Name != cname || got.Rules[0].Verdict.Chain != "\x80" || got.Base.Policy != Drop {
		t.Fatalf("names %q %q, rule %+v", got.Table.Name, got.Name, got.Rules[0].Verdict)
	}
	for _, n := range []string{tname, cname, "\x80"} {
		if v := Printable(n); !utf8.ValidString(v) {
			t.Errorf("Printable(%q) = %q, not UTF-8", n, v)
		}
	}
	if Printable(tname) != `t\xff\xfe` || Printable(cname) != `c\xc3(` {
		t.Errorf("Printable: %q, %q", Printable(tname), Printable(cname))
	}
}

func ptr[T any](v T) *T { return &v }

// TestChangingRuleset: a ruleset that changes between the dumps and the
// second generation read is read again; one that changes every time fails
// with ChangingError after the attempts.
func TestChangingRuleset(t *testing.T) {
	l, fd := labNS(t, "c", loadFile(t, "nft", "table inet t {\nchain c {\ncounter\n}\n}\n"))
	change := func(int) {
		if _, err := l.Run(l.Server, "nft", "add", "rule", "inet", "t", "c", "counter"); err != nil {
			t.Error(err)
		}
	}
	n := Netlink{Timeout: 5 * time.Second, NetNS: fd, Attempts: 3, between: func(a int) {
		if a == 1 {
			change(a)
		}
	}}
	s, err := n.Read()
	if err != nil {
		t.Fatal(err)
	}
	if s.Attempts != 2 || len(chainOf(t, s, FamilyINet, "t", "c").Rules) != 2 {
		t.Errorf("changed once: attempts %d, rules %d; want 2 and 2", s.Attempts, len(chainOf(t, s, FamilyINet, "t", "c").Rules))
	}
	n.between = change
	_, err = n.Read()
	var ce *ChangingError
	if !errors.As(err, &ce) || ce.Attempts != 3 {
		t.Fatalf("changing at every attempt: %v; want ChangingError after 3", err)
	}
}

// TestTimeout: a read that cannot finish in time fails with TimeoutError.
func TestTimeout(t *testing.T) {
	l, fd := labNS(t, "t")
	n := Netlink{Timeout: 50 * time.Millisecond, NetNS: fd, between: func(int) { time.Sleep(100 * time.Millisecond) }}
	_, err := n.Read()
	var te *TimeoutError
	if !errors.As(err, &te) || te.Timeout != 50*time.Millisecond {
		t.Fatalf("%v; want TimeoutError", err)
	}
	_ = l
}

// TestTenThousandRules: a ruleset of 10,000 rules is read within the
// default timeout; the time is logged (measure it on a quiet machine).
func TestTenThousandRules(t *testing.T) {
	_, fd := labNS(t, "b", loadFile(t, "nft", e2e.TenThousandRules()))
	start := time.Now()
	s, err := Netlink{NetNS: fd}.Read()
	if err != nil {
		t.Fatal(err)
	}
	if n := s.RuleCount(); n != 10000 {
		t.Fatalf("%d rules, want 10000", n)
	}
	t.Logf("read 10,000 rules in %s (dumps %s, attempts %d)", time.Since(start), s.ReadTook, s.Attempts)
}

// BenchmarkRead reads the 10,000-rule ruleset.
func BenchmarkRead(b *testing.B) {
	_, fd := labNS(b, "B", loadFile(b, "nft", e2e.TenThousandRules()))
	n := Netlink{NetNS: fd}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := n.Read(); err != nil {
			b.Fatal(err)
		}
	}
}

// TestNoNetAdmin: without CAP_NET_ADMIN the read says which capability it
// needs. The test binary drops the capability in a child (setpriv).
func TestNoNetAdmin(t *testing.T) {
	e2e.Require(t, "setpriv")
	if os.Getenv("NFDROP_RULESET_CHILD") == "1" {
		_, err := Netlink{Timeout: time.Second}.Read()
		fmt.Println(err)
		return
	}
	cmd := exec.Command("setpriv", "--inh-caps=-all", "--bounding-set=-net_admin", "--", os.Args[0], "-test.run=^TestNoNetAdmin$")
	cmd.Env = append(os.Environ(), "NFDROP_RULESET_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if !strings.Contains(string(out), ErrNoNetAdmin.Error()) {
		t.Fatalf("without CAP_NET_ADMIN: %s; want %q", out, ErrNoNetAdmin)
	}
}

// TestAnonymousSetsCompareByContent: "{ 80, 443 }" written in two rules
// (two anonymous sets) is one condition; "{ 80, 8080 }" is another.
func TestAnonymousSetsCompareByContent(t *testing.T) {
	_, fd := labNS(t, "a", loadFile(t, "nft", `table inet t {
	chain a {
		tcp dport { 80, 443 } log group 0
		tcp dport { 443, 80 } drop
		tcp dport { 80, 8080 } drop
	}
}
`))
	r := chainOf(t, read(t, fd), FamilyINet, "t", "a").Rules
	if !reflect.DeepEqual(r[0].Terms, r[1].Terms) || reflect.DeepEqual(r[0].Terms, r[2].Terms) {
		t.Errorf("terms:\n%q\n%q\n%q", r[0].Terms, r[1].Terms, r[2].Terms)
	}
}
