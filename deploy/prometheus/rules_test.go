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

	"github.com/nfdrop/nfdrop_exporter/internal/e2e"
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
	headerPPS    = regexp.MustCompile(`NON_TEARDOWN_PPS = ([0-9.]+)`)
	headerFor    = regexp.MustCompile(`NON_TEARDOWN_FOR = ([0-9a-z]+)`)
	descThresh   = regexp.MustCompile(`threshold ([0-9.]+)/s for ([0-9a-z]+)`)
	jobFilter    = regexp.MustCompile(`\bjob\s*=~?\s*"`)
	byClause     = regexp.MustCompile(`\bby\s*\(`)
	severityOK   = map[string]bool{"critical": true, "warning": true, "info": true}
	requiredAlrt = []string{
		"NfdropNonTeardownDropsHigh", "NfdropProbeTraffic", "NfdropMessagesLost",
		"NfdropGroupDown", "NfdropExporterDown",
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

// TestNonTeardownThresholdDocumented keeps the tunables of the key alert in
// one place: the header constants, the expr, "for" and the description must
// agree, so changing one without the others fails here.
func TestNonTeardownThresholdDocumented(t *testing.T) {
	raw, err := os.ReadFile("alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	f := readRules(t, "alerts.yml")
	var expr, forDur, desc string
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			if r.Alert == "NfdropNonTeardownDropsHigh" {
				expr, forDur, desc = r.Expr, r.For, r.Annotations["description"]
			}
		}
	}
	m := trailingGT.FindStringSubmatch(expr)
	if m == nil {
		t.Fatalf("NfdropNonTeardownDropsHigh expr must end in \") > THRESHOLD\":\n%s", expr)
	}
	thr, err := strconv.ParseFloat(m[1], 64)
	if err != nil || thr <= 0 {
		t.Fatalf("threshold %q: %v", m[1], err)
	}
	if forDur == "" {
		t.Fatal("NfdropNonTeardownDropsHigh has no for clause")
	}
	hp := headerPPS.FindStringSubmatch(string(raw))
	hf := headerFor.FindStringSubmatch(string(raw))
	dt := descThresh.FindStringSubmatch(desc)
	if hp == nil || hf == nil || dt == nil {
		t.Fatalf("header NON_TEARDOWN_PPS/NON_TEARDOWN_FOR or description \"threshold N/s for D\" missing")
	}
	for _, c := range []struct{ what, got, want string }{
		{"header NON_TEARDOWN_PPS", hp[1], m[1]},
		{"header NON_TEARDOWN_FOR", hf[1], forDur},
		{"description threshold", dt[1], m[1]},
		{"description for", dt[2], forDur},
	} {
		if c.got != c.want {
			t.Errorf("%s = %s, expr/for say %s", c.what, c.got, c.want)
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
	if n < 6 {
		t.Errorf("%d recording rules, want at least 6", n)
	}
}
