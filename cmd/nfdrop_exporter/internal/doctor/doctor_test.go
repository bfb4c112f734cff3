package doctor

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/nfdrop/nfdrop_exporter/collector/nsfacts"
	"github.com/nfdrop/nfdrop_exporter/collector/ruleset"
)

var update = flag.Bool("update", false, "rewrite testdata/golden from the current output")

// recorded loads a ruleset TestRecord recorded from real ufw or firewalld,
// with its rule texts.
func recorded(t *testing.T, name string) (*ruleset.Snapshot, RuleText) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", name+".nlmsg"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := ruleset.Decode(raw)
	if err != nil {
		t.Fatal(err)
	}
	text := &Commands{done: map[string]bool{"ipt-ip": true, "ipt-ip6": true, "nft": true}, ipt: map[ruleset.Family]iptablesSave{}}
	for fam, ext := range map[ruleset.Family]string{ruleset.FamilyIP: ".iptables-save", ruleset.FamilyIP6: ".ip6tables-save"} {
		b, err := os.ReadFile(filepath.Join("testdata", name+ext))
		if err != nil {
			t.Fatal(err)
		}
		text.ipt[fam] = ParseIptablesSave(string(b))
	}
	b, err := os.ReadFile(filepath.Join("testdata", name+".nft"))
	if err != nil {
		t.Fatal(err)
	}
	text.nft = ParseNftList(string(b))
	return s, text
}

func intp(v int) *int { return &v }

// facts are a namespace's facts as the lab has them: conntrack loaded with
// its defaults, nothing bound.
var labFacts = nsfacts.Facts{NFLOGLoaded: true, TCPLoose: intp(1), LogInvalid: intp(0)}

func diagnose(t *testing.T, name string, groups ...uint16) Report {
	t.Helper()
	s, text := recorded(t, name)
	return Diagnose(Input{Snapshot: s, Facts: labFacts, Groups: groups, EBPF: EBPF{Supported: true}, Text: text})
}

// golden compares the text and JSON renderings with testdata/golden.
func golden(t *testing.T, name string, r Report) {
	t.Helper()
	var txt, js bytes.Buffer
	if err := WriteText(&txt, r); err != nil {
		t.Fatal(err)
	}
	if err := WriteJSON(&js, r); err != nil {
		t.Fatal(err)
	}
	for ext, got := range map[string][]byte{".txt": txt.Bytes(), ".json": js.Bytes()} {
		p := filepath.Join("testdata", "golden", name+ext)
		if *update {
			if err := os.WriteFile(p, got, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from the golden file (go test -update to accept):\n%s", p, got)
		}
	}
}

// drops lists "id family table chain rule packets" of the drop findings.
func drops(r Report) []string {
	var out []string
	for _, f := range r.Findings {
		if !strings.HasPrefix(f.ID, "drop-") {
			continue
		}
		s := fmt.Sprintf("%s %s %s %s", f.ID, f.Family, f.Table, f.Chain)
		if f.Rule != nil {
			s += fmt.Sprintf(" #%d", *f.Rule)
		}
		if f.Packets != nil {
			s += fmt.Sprintf(" %d", *f.Packets)
		}
		out = append(out, s)
	}
	return out
}

func ids(r Report, sev Severity) []string {
	var out []string
	for _, f := range r.Findings {
		if f.Severity == sev {
			out = append(out, f.ID)
		}
	}
	return out
}

// TestVanillaUFW: Debian's ufw (deny incoming, allow 80) after the audit
// set (9 INVALID packets, 5 NEW ones to closed ports): every drop point is
// reported, with the kernel's counts where it keeps them.
func TestVanillaUFW(t *testing.T) {
	r := diagnose(t, "ufw")
	want := []string{
		"drop-not-logged ip filter ufw-before-input #60 9",
		"drop-not-logged ip filter INPUT 5",
		"drop-not-logged ip filter FORWARD 0",
		"drop-not-logged ip filter ufw-skip-to-policy-input #50 0",
		"drop-not-logged ip filter ufw-not-local #75 0",
		"drop-not-logged ip6 filter ufw6-before-input #55 0",
		"drop-not-logged ip6 filter ufw6-before-input #63 0",
		"drop-not-logged ip6 filter ufw6-before-output #57 0",
		"drop-not-logged ip6 filter ufw6-before-forward #56 0",
		"drop-not-logged ip6 filter INPUT 0",
		"drop-not-logged ip6 filter FORWARD 0",
		"drop-not-logged ip6 filter ufw6-skip-to-policy-input #50 0",
	}
	if got := drops(r); !slices.Equal(got, want) {
		t.Errorf("drops:\n got %q\nwant %q", got, want)
	}
	if r.ExitCode() != 1 || len(r.Managers) != 1 || r.Managers[0].Name != "ufw" {
		t.Errorf("exit %d, managers %+v", r.ExitCode(), r.Managers)
	}
	if w := ids(r, Warning); !slices.Equal(w, []string{IDLogKernel, IDLogKernel, IDLogKernel, IDLogKernel, IDGroupNoRule}) {
		t.Errorf("warnings %q", w)
	}
	golden(t, "ufw", r)
}

// TestUFWAfter: the same ufw with an NFLOG line in front of every drop
// (before.rules, after.rules and their IPv6 twins): exit 0.
func TestUFWAfter(t *testing.T) {
	r := diagnose(t, "ufw-after")
	if got := drops(r); len(got) != 0 || r.ExitCode() != 0 {
		t.Errorf("exit %d, drops %q", r.ExitCode(), got)
	}
	if e := append(ids(r, Error), ids(r, Warning)...); len(e) != 0 {
		t.Errorf("errors and warnings: %q", e)
	}
	golden(t, "ufw-after", r)
}

// TestVanillaFirewalld: Debian's firewalld (zone public): its own drops
// (reverse path, INVALID, IPv6 address rejects) and the zones' rejects,
// none counted by the kernel.
func TestVanillaFirewalld(t *testing.T) {
	r := diagnose(t, "firewalld")
	want := []string{
		"drop-not-logged inet firewalld filter_PREROUTING #52",
		"drop-not-logged inet firewalld filter_INPUT #29",
		"drop-not-logged inet firewalld filter_FORWARD #39",
		"drop-not-logged inet firewalld filter_FORWARD #58",
		"drop-not-logged inet firewalld filter_OUTPUT #56",
		"drop-not-logged inet firewalld filter_IN_public #72",
		"drop-not-logged inet firewalld filter_FWD_public #101",
	}
	if got := drops(r); !slices.Equal(got, want) {
		t.Errorf("drops:\n got %q\nwant %q", got, want)
	}
	if r.ExitCode() != 1 || len(r.Managers) != 1 || r.Managers[0].Name != "firewalld" {
		t.Errorf("exit %d, managers %+v", r.ExitCode(), r.Managers)
	}
	golden(t, "firewalld", r)
}

// dropFixes returns the fix of each drop-not-logged finding by "family
// chain".
func dropFixes(r Report) map[string]string {
	fixes := map[string]string{}
	for _, f := range r.Findings {
		if f.ID == IDDropNotLogged {
			fixes[f.Family+" "+f.Chain] = f.Fix
		}
	}
	return fixes
}

// TestFirewalldForwardFix: a zone's reject of forwarded packets is logged
// by a policy from the zone (as the firewalld recipe does), whose reach
// ends at the interfaces in no zone; not only by --ebpf.enable.
func TestFirewalldForwardFix(t *testing.T) {
	fix := dropFixes(diagnose(t, "firewalld", 3))["inet filter_FWD_public"]
	for _, want := range []string{
		"firewall-cmd --permanent --new-policy=nfdrop-forward\n",
		"firewall-cmd --permanent --policy=nfdrop-forward --add-ingress-zone=public\n",
		"--add-egress-zone=ANY\n", "--set-priority=32767\n", "--set-target=CONTINUE\n",
		`--add-rich-rule='rule priority=32767 nflog group="3" prefix="forward"'`,
		"firewall-cmd --permanent --zone=public --change-interface=IF",
		"--ebpf.enable",
	} {
		if !strings.Contains(fix, want) {
			t.Errorf("fix for filter_FWD_public lacks %q:\n%s", want, fix)
		}
	}
}

// TestFirewalldForwardFixWithPolicy: once a policy logs the zone's
// forwarded packets (the firewalld recipe's), what is left are packets from
// interfaces in no zone: the fix says so instead of adding the policy again.
func TestFirewalldForwardFixWithPolicy(t *testing.T) {
	s, text := recorded(t, "firewalld")
	fw := s.Table(ruleset.FamilyINet, "firewalld")
	c := &ruleset.Chain{Table: fw, Name: "filter_FWD_policy_nfdrop-forward_post"}
	c.Rules = []*ruleset.Rule{{Chain: c, Handle: 500, Logs: []ruleset.Log{{NFLOG: true, Group: 3}}}}
	fw.Chains = append(fw.Chains, c)
	fix := dropFixes(Diagnose(Input{Snapshot: s, Facts: labFacts, Groups: []uint16{3}, EBPF: EBPF{Supported: true}, Text: text}))["inet filter_FWD_public"]
	for _, want := range []string{
		"firewalld's policy nfdrop-forward logs the forwarded packets",
		"firewall-cmd --permanent --zone=public --change-interface=IF",
		"--ebpf.enable",
	} {
		if !strings.Contains(fix, want) {
			t.Errorf("fix for filter_FWD_public lacks %q:\n%s", want, fix)
		}
	}
	if strings.Contains(fix, "--new-policy") {
		t.Errorf("fix adds a policy although one logs:\n%s", fix)
	}
}

// TestLimitedLogOfItsOwnReject: "udp dport 9 limit rate 1/hour log group 0
// reject" logs exactly what it rejects (the limit passes both the same
// packets): no warning. A rate-limited log rule in front of another drop
// is still reported, and so is that drop.
func TestLimitedLogOfItsOwnReject(t *testing.T) {
	tb := &ruleset.Table{Family: ruleset.FamilyINet, Name: "filter"}
	c := &ruleset.Chain{Table: tb, Name: "input", Base: &ruleset.BaseChain{Type: "filter", Hook: 1, Policy: ruleset.Accept}}
	tb.Chains = []*ruleset.Chain{c}
	limited := func(h uint64, term string, v ruleset.VerdictKind) *ruleset.Rule {
		return &ruleset.Rule{Chain: c, Handle: h, Index: int(h) - 1, Terms: []string{term}, RateLimit: &ruleset.RateLimit{Kind: "limit"},
			Logs: []ruleset.Log{{NFLOG: true, Before: 1, Sampled: true}}, Verdict: ruleset.Verdict{Kind: v}, Counter: &ruleset.Counter{}}
	}
	c.Rules = []*ruleset.Rule{
		limited(1, "udp dport 9", ruleset.Reject),
		limited(2, "tcp dport 23", ruleset.Continue),
		{Chain: c, Handle: 3, Index: 2, Terms: []string{"tcp dport 23"}, Verdict: ruleset.Verdict{Kind: ruleset.Drop}},
	}
	r := Diagnose(Input{Snapshot: &ruleset.Snapshot{Tables: []*ruleset.Table{tb}}, Facts: labFacts, Groups: []uint16{0}})
	var got []string
	for _, f := range r.Findings {
		if f.Rule != nil {
			got = append(got, fmt.Sprintf("%s #%d", f.ID, *f.Rule))
		}
	}
	if want := []string{"drop-log-sampled #3", "log-rate-limited #2"}; !slices.Equal(got, want) {
		t.Errorf("findings %q, want %q", got, want)
	}
}

// ruleText is RuleText from fixed texts.
type ruleText map[*ruleset.Rule]string

func (t ruleText) Iptables(r *ruleset.Rule) (string, bool) { s, ok := t[r]; return s, ok }
func (t ruleText) Nft(r *ruleset.Rule) (string, bool)      { s, ok := t[r]; return s, ok }

// TestLimitedDropFix: a drop behind a rate limit cannot get an NFLOG rule
// with a copy of its matches in front (the copy's limit decides apart from
// the drop's): iptables gets a chain that logs and rejects, which the rule
// jumps to; nft gets the log statement in the rule, after the limit.
func TestLimitedDropFix(t *testing.T) {
	ipt := &ruleset.Table{Family: ruleset.FamilyIP, Name: "filter"}
	in := &ruleset.Chain{Table: ipt, Name: "INPUT", Base: &ruleset.BaseChain{Type: "filter", Hook: 1, Policy: ruleset.Accept}}
	ipt.Chains = []*ruleset.Chain{in}
	ir := &ruleset.Rule{Chain: in, Handle: 14, Index: 9, Terms: []string{"udp dport 9"}, RateLimit: &ruleset.RateLimit{Kind: "xt limit"},
		Verdict: ruleset.Verdict{Kind: ruleset.Reject}, Xtables: true, Counter: &ruleset.Counter{Packets: 1}, CounterExact: true}
	in.Rules = []*ruleset.Rule{ir}
	nft := &ruleset.Table{Family: ruleset.FamilyINet, Name: "filter"}
	nin := &ruleset.Chain{Table: nft, Name: "input", Base: &ruleset.BaseChain{Type: "filter", Hook: 1, Policy: ruleset.Accept}}
	nft.Chains = []*ruleset.Chain{nin}
	nr := &ruleset.Rule{Chain: nin, Handle: 15, Terms: []string{"udp dport 9"}, RateLimit: &ruleset.RateLimit{Kind: "limit"},
		Verdict: ruleset.Verdict{Kind: ruleset.Reject}}
	nin.Rules = []*ruleset.Rule{nr}
	text := ruleText{
		ir: "-A INPUT -p udp -m udp --dport 9 -m limit --limit 1/hour --limit-burst 1 -j REJECT --reject-with icmp-port-unreachable",
		nr: "udp dport 9 limit rate 1/hour burst 1 packets counter packets 3 bytes 90 reject",
	}
	r := Diagnose(Input{Snapshot: &ruleset.Snapshot{Tables: []*ruleset.Table{ipt, nft}}, Facts: labFacts, Groups: []uint16{9}, Text: text})
	fixes := dropFixes(r)
	for chain, want := range map[string]string{
		"ip INPUT": "iptables -N nfdrop-reject-14\n" +
			"iptables -A nfdrop-reject-14 -j NFLOG --nflog-group 9\n" +
			"iptables -A nfdrop-reject-14 -j REJECT --reject-with icmp-port-unreachable\n" +
			"iptables -R INPUT 10 -p udp -m udp --dport 9 -m limit --limit 1/hour --limit-burst 1 -j nfdrop-reject-14\n",
		"inet input": "nft replace rule inet filter input handle 15 udp dport 9 limit rate 1/hour burst 1 packets counter log group 9 reject\n",
	} {
		if !strings.HasPrefix(fixes[chain], want) {
			t.Errorf("%s: fix\n%s\nwant it to start with\n%s", chain, fixes[chain], want)
		}
	}
}

// TestForwardPolicyFixOnContainerHost: the admin's FORWARD policy on a
// podman host: the fix saves the rules of its own family, and points to
// the containers recipe, which keeps the rule last of FORWARD.
func TestForwardPolicyFixOnContainerHost(t *testing.T) {
	var tables []*ruleset.Table
	for _, fam := range []ruleset.Family{ruleset.FamilyIP, ruleset.FamilyIP6} {
		tb := &ruleset.Table{Family: fam, Name: "filter"}
		fwd := &ruleset.Chain{Table: tb, Name: "FORWARD", Base: &ruleset.BaseChain{Type: "filter", Hook: 2, Policy: ruleset.Drop, Counter: &ruleset.Counter{}}}
		cni := &ruleset.Chain{Table: tb, Name: "CNI-FORWARD"}
		fwd.Rules = []*ruleset.Rule{{Chain: fwd, Handle: 1, Verdict: ruleset.Verdict{Kind: ruleset.Jump, Chain: "CNI-FORWARD"}, Xtables: true}}
		tb.Chains = []*ruleset.Chain{fwd, cni}
		tables = append(tables, tb)
	}
	r := Diagnose(Input{Snapshot: &ruleset.Snapshot{Tables: tables}, Facts: labFacts, Groups: []uint16{7}})
	fixes := dropFixes(r)
	for chain, want := range map[string][]string{
		"ip FORWARD":  {"iptables -A FORWARD -j NFLOG --nflog-group 7\n", "iptables-save > /etc/iptables/rules.v4", "deploy/firewall/containers/install --group 7"},
		"ip6 FORWARD": {"ip6tables -A FORWARD -j NFLOG --nflog-group 7\n", "ip6tables-save > /etc/iptables/rules.v6", "deploy/firewall/containers/install --group 7"},
	} {
		for _, w := range want {
			if !strings.Contains(fixes[chain], w) {
				t.Errorf("%s: fix lacks %q:\n%s", chain, w, fixes[chain])
			}
		}
	}
}

// TestFirewalldAfter: the rich rule nflog at the end of the zone, and log
// rules with the same matches in front of firewalld's own drops: exit 0.
func TestFirewalldAfter(t *testing.T) {
	r := diagnose(t, "firewalld-after")
	if r.ExitCode() != 0 {
		t.Errorf("exit %d: %q", r.ExitCode(), drops(r))
	}
	golden(t, "firewalld-after", r)
}

// TestJSONShape: the fields scripts rely on are there, packets null where
// the kernel counts nothing.
func TestJSONShape(t *testing.T) {
	var b bytes.Buffer
	if err := WriteJSON(&b, diagnose(t, "firewalld")); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Managers []map[string]any `json:"managers"`
		Findings []map[string]any `json:"findings"`
	}
	if err := json.Unmarshal(b.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Managers) != 1 || len(doc.Findings) == 0 {
		t.Fatalf("%s", b.Bytes())
	}
	for _, f := range doc.Findings {
		for _, k := range []string{"id", "severity", "family", "table", "chain", "packets", "fix"} {
			if _, ok := f[k]; !ok {
				t.Errorf("finding %v lacks %q", f["id"], k)
			}
		}
		if f["id"] == IDDropNotLogged && f["packets"] != nil {
			t.Errorf("firewalld drop with packets %v; its rules have no counter", f["packets"])
		}
	}
}

// TestNamesNotUTF8: table and chain names that are not UTF-8 (or hold
// control characters) come out as valid UTF-8 in JSON and printable text.
func TestNamesNotUTF8(t *testing.T) {
	tb := &ruleset.Table{Family: ruleset.FamilyIP, Name: "t\xff"}
	c := &ruleset.Chain{Table: tb, Name: "in\x1b[2J\xfe", Base: &ruleset.BaseChain{Hook: 1, Policy: ruleset.Drop, Counter: &ruleset.Counter{Packets: 3}}}
	tb.Chains = []*ruleset.Chain{c}
	r := Diagnose(Input{Snapshot: &ruleset.Snapshot{Tables: []*ruleset.Table{tb}}, Groups: []uint16{0}})
	var txt, js bytes.Buffer
	if err := WriteText(&txt, r); err != nil {
		t.Fatal(err)
	}
	if err := WriteJSON(&js, r); err != nil {
		t.Fatal(err)
	}
	if !utf8.Valid(txt.Bytes()) || bytes.Contains(txt.Bytes(), []byte("\x1b")) || !strings.Contains(txt.String(), `ip t\xff in\x1b[2J\xfe (nftables)`) {
		t.Errorf("text:\n%s", txt.String())
	}
	var doc struct {
		Findings []struct {
			Table, Chain string
			Packets      *uint64
		}
	}
	if err := json.Unmarshal(js.Bytes(), &doc); err != nil || !utf8.Valid(js.Bytes()) {
		t.Fatalf("json: %v", err)
	}
	f := doc.Findings[0]
	if f.Table != `t\xff` || f.Chain != "in\x1b[2J\\xfe" || f.Packets == nil || *f.Packets != 3 {
		t.Errorf("finding %+v", f)
	}
	if r.ExitCode() != 1 {
		t.Errorf("exit %d", r.ExitCode())
	}
}
