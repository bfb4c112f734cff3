//go:build linux

package firewall_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"maps"
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
)

// Each recipe test also runs `nfdrop_exporter doctor` in its sandbox twice:
// on the vanilla manager after its drops happened (exit 1, one
// drop-not-logged finding per drop point, with the kernel's counters), and
// after the recipe and the manager's reload (exit 0, or exactly the drops
// the recipe's README says it cannot cover). The text output is kept in
// testdata/doctor/ (go test -update rewrites it); the JSON output is what
// the checks read.

var update = flag.Bool("update", false, "rewrite testdata/doctor/*.txt from doctor's output")

type doctorFinding struct {
	ID       string  `json:"id"`
	Severity string  `json:"severity"`
	Family   string  `json:"family"`
	Table    string  `json:"table"`
	Chain    string  `json:"chain"`
	Packets  *uint64 `json:"packets"`
	Rule     *uint64 `json:"rule"`
	Fix      string  `json:"fix"`
}

// doctorReport is what the checks read of doctor's JSON; the managers it
// detects are in the text output, which the golden files hold.
type doctorReport struct {
	Findings []doctorFinding `json:"findings"`
}

// doctorRun is one check: doctor's text and JSON output and exit status,
// and the ruleset's rules and counters as nft and iptables-save show them.
type doctorRun struct {
	text   string
	rep    doctorReport
	code   int
	kernel kernelRules
}

// doctor runs `nfdrop_exporter doctor --nflog.group=G` (text, then
// --format=json) in the sandbox and reads the kernel's rules and counters
// around it; it runs again (at most 5 times) if a counter moved meanwhile.
// The counting table is removed first, so that doctor sees the manager's
// ruleset alone.
func (r *rlab) doctor() doctorRun {
	r.t.Helper()
	r.dropCountOff()
	bin := e2e.Binary(r.t)
	for i := 0; ; i++ {
		before := r.kernelRules()
		text, code := r.doctorOut(bin)
		js, jcode := r.doctorOut(bin, "--format=json")
		after := r.kernelRules()
		if code != jcode {
			r.t.Fatalf("doctor: exit %d, with --format=json %d", code, jcode)
		}
		var rep doctorReport
		if err := json.Unmarshal([]byte(js), &rep); err != nil {
			r.t.Fatalf("doctor --format=json: %v\n%s", err, js)
		}
		if before.equal(after) {
			rn := strings.NewReplacer(r.renames...)
			for k, v := range after.text {
				after.text[k] = rn.Replace(v)
			}
			return doctorRun{text: rn.Replace(text), rep: rep, code: code, kernel: after}
		}
		if i == 4 {
			r.t.Fatal("doctor: the kernel's counters kept moving")
		}
		time.Sleep(time.Second)
	}
}

// doctorOut runs doctor once; anything on stderr fails the test.
func (r *rlab) doctorOut(bin string, args ...string) (string, int) {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := r.sb.command(ctx, bin, append([]string{"doctor", "--nflog.group=" + r.group}, args...)...)
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	code := 0
	switch {
	case err == nil:
	case errors.As(err, &ee) && ee.ExitCode() > 0:
		code = ee.ExitCode()
	default:
		r.t.Fatalf("doctor %v: %v\n%s", args, err, e.String())
	}
	if code == 2 || e.Len() > 0 {
		r.t.Fatalf("doctor %v: exit %d:\n%s", args, code, e.String())
	}
	return o.String(), code
}

// kernelRules is the live ruleset as the checks name it: each rule
// ("family table chain#handle") with its text as `nft -a list ruleset`
// shows it (counters left out), the rules' counters, and the counters of
// iptables' chains with policy DROP ("family table chain").
type kernelRules struct {
	listing string // nft -a list ruleset
	text    map[string]string
	counter map[string]uint64
	policy  map[string]uint64
}

func (k kernelRules) equal(o kernelRules) bool {
	return maps.Equal(k.counter, o.counter) && maps.Equal(k.policy, o.policy)
}

var (
	nftTableRE   = regexp.MustCompile(`^table (\S+) (\S+) \{`)
	nftChainRE   = regexp.MustCompile(`^chain (\S+) \{`)
	nftRuleRE    = regexp.MustCompile(`^(.*) # handle (\d+)$`)
	nftCounterRE = regexp.MustCompile(`counter packets (\d+) bytes \d+`)
	iptPolicyRE  = regexp.MustCompile(`^:(\S+) DROP \[(\d+):\d+\]$`)
)

func (r *rlab) kernelRules() kernelRules {
	r.t.Helper()
	k := kernelRules{text: map[string]string{}, counter: map[string]uint64{}, policy: map[string]uint64{}}
	out, err := r.Run(r.Server, "nft", "-a", "list", "ruleset")
	if err != nil {
		r.t.Fatal(err)
	}
	k.listing = out
	var table, chain string
	for _, l := range strings.Split(out, "\n") {
		l = strings.TrimSpace(l)
		if m := nftTableRE.FindStringSubmatch(l); m != nil {
			table, chain = m[1]+" "+unquote(m[2]), ""
			continue
		}
		if m := nftChainRE.FindStringSubmatch(l); m != nil && table != "" {
			chain = unquote(m[1])
			continue
		}
		m := nftRuleRE.FindStringSubmatch(l)
		if m == nil || chain == "" || strings.HasPrefix(l, "type ") {
			continue
		}
		key := table + " " + chain + "#" + m[2]
		k.text[key] = strings.Join(strings.Fields(withoutCounters(m[1])), " ")
		if c := nftCounterRE.FindStringSubmatch(m[1]); c != nil {
			n, _ := strconv.ParseUint(c[1], 10, 64)
			k.counter[key] = n
		}
	}
	for fam, tool := range map[string]string{"ip": "iptables-save", "ip6": "ip6tables-save"} {
		if !strings.Contains(out, "table "+fam+" filter ") {
			continue // iptables-save would create the table
		}
		out, err := r.Run(r.Server, tool, "-c", "-t", "filter")
		if err != nil {
			r.t.Fatal(err)
		}
		for _, l := range strings.Split(out, "\n") {
			if m := iptPolicyRE.FindStringSubmatch(l); m != nil {
				n, _ := strconv.ParseUint(m[2], 10, 64)
				k.policy[fam+" filter "+m[1]] = n
			}
		}
	}
	return k
}

func unquote(s string) string { return strings.Trim(s, `"`) }

// name names a finding's place: "family table chain: the rule's text", or
// ": policy" for a chain's policy.
func (k kernelRules) name(f doctorFinding) string {
	s := f.Family + " " + f.Table + " " + f.Chain
	if f.Rule == nil {
		if f.Chain == "" {
			return s
		}
		return s + ": policy"
	}
	key := fmt.Sprintf("%s#%d", s, *f.Rule)
	if text, ok := k.text[key]; ok {
		return s + ": " + text
	}
	return fmt.Sprintf("%s: rule %d (not in nft -a list ruleset)", s, *f.Rule)
}

// kernelPackets is the kernel's counter of a drop point, if it keeps one.
func (k kernelRules) kernelPackets(f doctorFinding) (uint64, bool) {
	s := f.Family + " " + f.Table + " " + f.Chain
	if f.Rule == nil {
		n, ok := k.policy[s]
		return n, ok
	}
	n, ok := k.counter[fmt.Sprintf("%s#%d", s, *f.Rule)]
	return n, ok
}

// check fails unless doctor exited with code, its findings of severity
// error are exactly want ("id name", see name), and every drop finding's
// packets equal the kernel's counter of that drop point (null where the
// kernel keeps none). It returns the packets of the drop-not-logged
// findings by name.
func (d doctorRun) check(t *testing.T, code int, want []string) map[string]*uint64 {
	t.Helper()
	if d.code != code {
		t.Errorf("doctor: exit %d, want %d", d.code, code)
	}
	var got []string
	packets := map[string]*uint64{}
	for _, f := range d.rep.Findings {
		name := d.kernel.name(f)
		if f.Severity == "error" {
			got = append(got, f.ID+" "+name)
		}
		if !strings.HasPrefix(f.ID, "drop-") {
			continue
		}
		if f.ID == "drop-not-logged" {
			packets[name] = f.Packets
		}
		n, counted := d.kernel.kernelPackets(f)
		switch {
		case counted && f.Packets == nil:
			t.Errorf("doctor: %s %s: packets null, the kernel counts %d", f.ID, name, n)
		case !counted && f.Packets != nil:
			t.Errorf("doctor: %s %s: packets %d, the kernel keeps no counter", f.ID, name, *f.Packets)
		case counted && *f.Packets != n:
			t.Errorf("doctor: %s %s: packets %d, the kernel counts %d", f.ID, name, *f.Packets, n)
		}
	}
	slices.Sort(got)
	want = slices.Sorted(slices.Values(want))
	if !slices.Equal(got, want) {
		t.Errorf("doctor's errors:\n\t%s\nwant:\n\t%s", strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
	}
	if t.Failed() {
		t.Logf("doctor (exit %d):\n%s\nnft -a list ruleset:\n%s", d.code, d.text, d.kernel.listing)
	}
	return packets
}

// fix is the fix doctor gives for the drop-not-logged finding of name.
func (d doctorRun) fix(t *testing.T, name string) string {
	t.Helper()
	for _, f := range d.rep.Findings {
		if f.ID == "drop-not-logged" && d.kernel.name(f) == name {
			return f.Fix
		}
	}
	t.Fatalf("doctor: no drop-not-logged finding for %s", name)
	return ""
}

// checkDoctorPackets checks doctor's packets of the drop points in want,
// and that its packets, iptables' DROP/REJECT and policy counters and the
// hooks' count (dropped) all agree.
func (r *rlab) checkDoctorPackets(t *testing.T, packets map[string]*uint64, want map[string]uint64, dropped uint64) {
	t.Helper()
	for name, n := range want {
		if p := packets[name]; p == nil || *p != n {
			t.Errorf("doctor: %s: packets %v, want %d", name, p, n)
		}
	}
	ipt, _ := r.iptablesCounters()
	if sum := sumPackets(packets); sum != dropped || ipt != dropped {
		t.Errorf("doctor's packets add up to %d, iptables' DROP/REJECT and policy counters to %d, the hooks dropped %d", sum, ipt, dropped)
	}
}

// sumPackets adds up the packets of drop findings (null counts as 0).
func sumPackets(p map[string]*uint64) uint64 {
	var n uint64
	for _, v := range p {
		if v != nil {
			n += *v
		}
	}
	return n
}

var (
	readTimeRE = regexp.MustCompile(`\) in [0-9.]+ ms;`)
	packetsRE  = regexp.MustCompile(`  packets: [1-9][0-9]*\n`)
)

// golden compares doctor's text output with testdata/doctor/NAME.txt, with
// the read time and the numbers of packets that depend on timing
// (every count above 0) left out.
func (d doctorRun) golden(t *testing.T, name string) {
	t.Helper()
	t.Logf("doctor, %s (exit %d):\n%s", name, d.code, d.text)
	got := readTimeRE.ReplaceAllString(d.text, ") in (time) ms;")
	got = packetsRE.ReplaceAllString(got, "  packets: (some)\n")
	p := filepath.Join("testdata", "doctor", name+".txt")
	if *update {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (go test -update writes it)", err)
	}
	if got != string(want) {
		t.Errorf("doctor's output differs from %s (go test -update rewrites it):\n%s", p, got)
	}
}

// quietTraffic zeroes the kernel's count (and iptables' counters with
// zeroIptables), sends the traffic and waits until nothing more is dropped.
// It returns what the hooks dropped.
func (r *rlab) quietTraffic(name string, zeroIptables bool, traffic func()) (uint64, map[string]uint64) {
	r.t.Helper()
	e2e.WaitEvery(r.t, zeroWithin, 200*time.Millisecond, name+": no drop while the counters are zeroed", func() bool {
		var ipt uint64
		if zeroIptables {
			r.zeroIptables()
		}
		r.resetDropCount()
		n, _ := r.dropped()
		if zeroIptables {
			ipt, _ = r.iptablesCounters()
		}
		return n == 0 && ipt == 0
	})
	start := time.Now()
	traffic()
	sent := time.Since(start)
	deadline := time.Now().Add(30 * time.Second)
	last, lastHooks := r.dropped()
	lastChange := time.Now()
	for time.Since(lastChange) < quietAfterTraffic {
		if time.Now().After(deadline) {
			r.t.Fatalf("%s: drops did not stop within 30s", name)
		}
		time.Sleep(250 * time.Millisecond)
		n, hooks := r.dropped()
		if n != last {
			last, lastHooks, lastChange = n, hooks, time.Now()
		}
	}
	r.t.Logf("%s: the hooks dropped %d %v (traffic %s, quiet after %s)", name, last, lastHooks, sent.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	return last, lastHooks
}
