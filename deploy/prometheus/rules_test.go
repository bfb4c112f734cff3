// Package prometheus holds no code: its tests check the shipped Prometheus
// rules (alerts.yml, rules.yml, alerts_test.yml, scrape-config.yml) with
// promtool and check the conventions promtool does not know about.
package prometheus

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop-lab/e2e"
	yaml "go.yaml.in/yaml/v2"
)

type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Record      string            `yaml:"record"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

func readRules(t *testing.T, name string) ruleFile {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	var f ruleFile
	if err := yaml.UnmarshalStrict(b, &f); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return f
}

// promtoolPath finds promtool; under NFDROP_E2E=1 a missing promtool fails
// the run instead of silently dropping the rule tests.
func promtoolPath(t *testing.T) string {
	t.Helper()
	return e2e.Tool(t, "promtool")
}

func TestMain(m *testing.M) { e2e.Main(m) }

func runPromtool(t *testing.T, dir string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(promtoolPath(t), args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestPromtool(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"check rules", []string{"check", "rules", "alerts.yml", "rules.yml"}},
		{"test rules", []string{"test", "rules", "alerts_test.yml"}},
		// Also re-checks the rule files it references, as a server would load them.
		{"check config", []string{"check", "config", "scrape-config.yml"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := runPromtool(t, ".", tc.args...)
			if err != nil {
				t.Fatalf("promtool %s: %v\n%s", strings.Join(tc.args, " "), err, out)
			}
			if !strings.Contains(out, "SUCCESS") {
				t.Fatalf("promtool %s printed no SUCCESS:\n%s", strings.Join(tc.args, " "), out)
			}
		})
	}
}

// TestPromtoolCatchesBrokenRules proves alerts_test.yml can fail: each
// mutation of the rules is a plausible mistake that the unit tests must
// reject.
func TestPromtoolCatchesBrokenRules(t *testing.T) {
	for _, tc := range []struct {
		name, file, old, new string
	}{
		{"threshold raised", "alerts.yml", ") > 10\n", ") > 100\n"},
		{"threshold inclusive", "alerts.yml", ") > 10\n", ") >= 10\n"},
		{"for shortened", "alerts.yml", "for: 10m\n", "for: 1m\n"},
		{"teardown counted", "alerts.yml", `rate(nfdrop_packets_total{class!="teardown"}[5m])`, `rate(nfdrop_packets_total[5m])`},
		{"new series ignored", "alerts.yml", "unless", "and"},
		{"no zero fill", "rules.yml", "or\n          nfdrop_up * 0\n", ""},
		{"unproven threshold raised", "alerts.yml", "nfdrop_up * 0\n          ) > 10\n        # UNPROVEN", "nfdrop_up * 0\n          ) > 11\n        # UNPROVEN"},
		{"unproven counts proven", "alerts.yml", `rate(nfdrop_teardown_evidence_total{evidence="none"}[5m])`, `rate(nfdrop_teardown_evidence_total[5m])`},
		{"unproven counts skipped", "alerts.yml", `rate(nfdrop_teardown_evidence_total{evidence="none"}[5m])`, `rate(nfdrop_teardown_evidence_total{evidence=~"none|skipped"}[5m])`},
		{"probe on any count", "alerts.yml", ") > 1\n", ") > 0\n"},
		{"probe without for", "alerts.yml", "for: 2m\n", ""},
		{"decode trickle", "alerts.yml", "> 0.1\n", "> 0\n"},
		{"proven misses closing", "rules.yml", `evidence=~"destroyed|closing|established"`, `evidence=~"destroyed|established"`},
		{"suspicious without unproven", "rules.yml", "+\n          instance_group:nfdrop_teardown_evidence_unproven:rate5m\n", "\n"},
		{"missing rule of a down group", "alerts.yml", "and on (job, instance, group)\n          nfdrop_up == 1", "and on (job, instance, group)\n          nfdrop_up >= 0"},
		{"losses not accounted", "alerts.yml", "increase(nfdrop_messages_lost_total[15m])", "increase(nfdrop_messages_lost_total[15m]) * 0"},
		{"rules without counter compared", "alerts.yml", "nfdrop_log_rules_uncounted == 0", "nfdrop_log_rules_uncounted >= 0"},
		{"silent exporter not compared", "alerts.yml", "or\n              nfdrop_up * 0\n", ""},
		{"no tolerance", "alerts.yml", "10 + 0.02 *", "0 *"},
		{"eBPF losses as NFLOG losses", "alerts.yml", `nfdrop_messages_lost_total{group!="ebpf"}`, "nfdrop_messages_lost_total"},
		{"eBPF losses ignored", "alerts.yml", `nfdrop_messages_lost_total{group="ebpf"}`, `nfdrop_messages_lost_total{group="bpf"}`},
		{"eBPF group worded as an NFLOG group", "alerts.yml", `eq $labels.group "ebpf"`, `eq $labels.group "bpf"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			for _, f := range []string{"alerts.yml", "rules.yml", "alerts_test.yml"} {
				b, err := os.ReadFile(f)
				if err != nil {
					t.Fatal(err)
				}
				s := string(b)
				if f == tc.file {
					if !strings.Contains(s, tc.old) {
						t.Fatalf("%s no longer contains %q: update this mutation", f, tc.old)
					}
					s = strings.ReplaceAll(s, tc.old, tc.new)
				}
				if err := os.WriteFile(filepath.Join(dir, f), []byte(s), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			out, err := runPromtool(t, dir, "test", "rules", "alerts_test.yml")
			var exitErr *exec.ExitError
			if !errors.As(err, &exitErr) {
				t.Fatalf("promtool test rules accepted the broken rules (err %v):\n%s", err, out)
			}
			if !strings.Contains(out, "FAILED") {
				t.Fatalf("promtool failed without a FAILED test:\n%s", out)
			}
		})
	}
}

var (
	alertName    = regexp.MustCompile(`^Nfdrop[A-Z][A-Za-z]+$`)
	recordName   = regexp.MustCompile(`^instance[a-z_]*:nfdrop_[a-z_]+:[a-z0-9_]+$`)
	trailingGT   = regexp.MustCompile(`\)\s*>\s*([0-9.]+)\s*$`)
	descThresh   = regexp.MustCompile(`threshold ([0-9.]+)/s for ([0-9a-z]+)`)
	jobFilter    = regexp.MustCompile(`\bjob\s*=~?\s*"`)
	byClause     = regexp.MustCompile(`\bby\s*\(`)
	severityOK   = map[string]bool{"critical": true, "warning": true, "info": true}
	requiredAlrt = []string{
		"NfdropNonTeardownDropsHigh", "NfdropProbeTraffic", "NfdropMessagesLost",
		"NfdropGroupDown", "NfdropExporterDown", "NfdropUnprovenTeardownDropsHigh", "NfdropEBPFDropsLost",
	}
)

func TestAlertConventions(t *testing.T) {
	f := readRules(t, "alerts.yml")
	seen := map[string]bool{}
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			if r.Record != "" {
				t.Errorf("recording rule %s belongs in rules.yml", r.Record)
				continue
			}
			seen[r.Alert] = true
			if !alertName.MatchString(r.Alert) {
				t.Errorf("alert %q: name must be CamelCase with prefix Nfdrop", r.Alert)
			}
			if !severityOK[r.Labels["severity"]] {
				t.Errorf("%s: severity %q, want critical, warning or info", r.Alert, r.Labels["severity"])
			}
			if s := r.Annotations["summary"]; s == "" || !strings.HasSuffix(s, ".") || strings.Contains(s, "{{") {
				t.Errorf("%s: summary %q must be a static sentence", r.Alert, s)
			}
			if d := r.Annotations["description"]; !strings.Contains(d, "{{ $labels.instance }}") || len(d) < 120 {
				t.Errorf("%s: description must name the instance and say what to check: %q", r.Alert, d)
			}
			if jobFilter.MatchString(r.Expr) {
				t.Errorf("%s: expr filters on a job; metric names are unique to the exporter", r.Alert)
			}
			if byClause.MatchString(r.Expr) {
				t.Errorf("%s: aggregate with without(...) so job, instance and target labels survive", r.Alert)
			}
			if r.For != "" {
				if _, err := time.ParseDuration(r.For); err != nil {
					t.Errorf("%s: for %q: %v", r.Alert, r.For, err)
				}
			}
		}
	}
	for _, a := range requiredAlrt {
		if !seen[a] {
			t.Errorf("alert %s missing", a)
		}
	}
}

// TestThresholdsDocumented keeps the tunables of each threshold alert in
// one place: the header constants, the expr, "for" and the description must
// agree, so changing one without the others fails here.
func TestThresholdsDocumented(t *testing.T) {
	raw, err := os.ReadFile("alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	f := readRules(t, "alerts.yml")
	for _, tc := range []struct{ alert, key string }{
		{"NfdropNonTeardownDropsHigh", "NON_TEARDOWN"},
		{"NfdropUnprovenTeardownDropsHigh", "UNPROVEN_TEARDOWN"},
		{"NfdropProbeTraffic", "PROBE"},
		{"NfdropDecodeErrors", "DECODE"},
	} {
		t.Run(tc.alert, func(t *testing.T) {
			var expr, forDur, desc string
			for _, g := range f.Groups {
				for _, r := range g.Rules {
					if r.Alert == tc.alert {
						expr, forDur, desc = r.Expr, r.For, r.Annotations["description"]
					}
				}
			}
			m := trailingGT.FindStringSubmatch(expr)
			if m == nil {
				t.Fatalf("%s expr must end in \"> THRESHOLD\":\n%s", tc.alert, expr)
			}
			thr, err := strconv.ParseFloat(m[1], 64)
			if err != nil || thr <= 0 {
				t.Fatalf("threshold %q: %v", m[1], err)
			}
			if forDur == "" {
				t.Fatalf("%s has no for clause", tc.alert)
			}
			hp := regexp.MustCompile(tc.key + `_PPS = ([0-9.]+)`).FindStringSubmatch(string(raw))
			hf := regexp.MustCompile(tc.key + `_FOR = ([0-9a-z]+)`).FindStringSubmatch(string(raw))
			dt := descThresh.FindStringSubmatch(desc)
			if hp == nil || hf == nil || dt == nil {
				t.Fatalf("header %s_PPS/%s_FOR or description \"threshold N/s for D\" missing", tc.key, tc.key)
			}
			for _, c := range []struct{ what, got, want string }{
				{"header " + tc.key + "_PPS", hp[1], m[1]},
				{"header " + tc.key + "_FOR", hf[1], forDur},
				{"description threshold", dt[1], m[1]},
				{"description for", dt[2], forDur},
			} {
				if c.got != c.want {
					t.Errorf("%s = %s, expr/for say %s", c.what, c.got, c.want)
				}
			}
		})
	}
}

// runbookBase is where every alert's runbook_url points: the "Runbooks"
// part of dashboards/README.md as GitHub renders it.
const runbookBase = "https://github.com/nfdrop/nfdrop_exporter/blob/main/dashboards/README.md#"

// githubAnchor is the anchor GitHub gives a Markdown heading: lower case,
// punctuation other than '-' and '_' removed, spaces turned into '-'.
func githubAnchor(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(heading)) {
		switch {
		case r == ' ':
			b.WriteByte('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}

// readmeAnchors returns the anchors of every heading in the Runbooks part
// of dashboards/README.md (from its "## Runbooks" heading to the next
// second-level heading).
func readmeAnchors(t *testing.T) map[string]bool {
	t.Helper()
	b, err := os.ReadFile("../../dashboards/README.md")
	if err != nil {
		t.Fatal(err)
	}
	anchors := map[string]bool{}
	in, fence := false, false
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "```") {
			fence = !fence
		}
		if fence || !strings.HasPrefix(l, "#") {
			continue
		}
		level := len(l) - len(strings.TrimLeft(l, "#"))
		text := strings.TrimSpace(l[level:])
		if level == 2 {
			in = text == "Runbooks"
			continue
		}
		if in && level > 2 {
			anchors[githubAnchor(text)] = true
		}
	}
	if len(anchors) == 0 {
		t.Fatal("dashboards/README.md has no \"## Runbooks\" part with one heading per alert")
	}
	return anchors
}

func TestGithubAnchor(t *testing.T) {
	for in, want := range map[string]string{
		"NfdropProbeTraffic":                    "nfdropprobetraffic",
		"What to look at after an alert":        "what-to-look-at-after-an-alert",
		"Proven vs. unproven (conntrack) drops": "proven-vs-unproven-conntrack-drops",
		"snake_case-name":                       "snake_case-name",
	} {
		if got := githubAnchor(in); got != want {
			t.Errorf("githubAnchor(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestRunbooks: every alert links its own section of the Runbooks part of
// dashboards/README.md, and every section there belongs to an alert.
func TestRunbooks(t *testing.T) {
	anchors := readmeAnchors(t)
	used := map[string]bool{}
	for _, g := range readRules(t, "alerts.yml").Groups {
		for _, r := range g.Rules {
			u := r.Annotations["runbook_url"]
			anchor, ok := strings.CutPrefix(u, runbookBase)
			if !ok {
				t.Errorf("%s: runbook_url %q, want %s<anchor>", r.Alert, u, runbookBase)
				continue
			}
			if anchor != strings.ToLower(r.Alert) {
				t.Errorf("%s: runbook_url anchor %q, want the alert's own section %q", r.Alert, anchor, strings.ToLower(r.Alert))
			}
			if !anchors[anchor] {
				t.Errorf("%s: runbook_url anchor #%s is not a heading of the Runbooks part of dashboards/README.md", r.Alert, anchor)
			}
			used[anchor] = true
		}
	}
	for a := range anchors {
		if !used[a] {
			t.Errorf("dashboards/README.md Runbooks section #%s belongs to no alert in alerts.yml", a)
		}
	}
}

func TestRecordingRuleConventions(t *testing.T) {
	f := readRules(t, "rules.yml")
	n := 0
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			if r.Alert != "" {
				t.Errorf("alert %s belongs in alerts.yml", r.Alert)
				continue
			}
			n++
			if !recordName.MatchString(r.Record) {
				t.Errorf("record %q: want level:metric:operations with an instance level", r.Record)
			}
			if strings.Contains(r.Record, "_total") {
				t.Errorf("record %q: drop _total after rate()", r.Record)
			}
			if byClause.MatchString(r.Expr) || jobFilter.MatchString(r.Expr) {
				t.Errorf("%s: aggregate with without(...), never by(...) or on a job", r.Record)
			}
		}
	}
	if n < 11 {
		t.Errorf("%d recording rules, want at least 11", n)
	}
}
