package main

import (
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// readmeMetrics returns the metric names listed in the README's metrics tables.
func readmeMetrics(t *testing.T) map[string]bool {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	begin, end := strings.Index(s, "<!-- METRICS:BEGIN"), strings.Index(s, "<!-- METRICS:END -->")
	if begin < 0 || end < begin {
		t.Fatal("README has no METRICS:BEGIN/END markers")
	}
	names := map[string]bool{}
	for _, m := range regexp.MustCompile("(?m)^\\| `(nfdrop_[a-z_]+)`").FindAllStringSubmatch(s[begin:end], -1) {
		names[m[1]] = true
	}
	return names
}

// exposedMetrics returns the metric families of the golden exposition plus the
// ones it filters out or that need a live kernel (extra).
func exposedMetrics(t *testing.T, extra ...string) map[string]bool {
	t.Helper()
	b, err := os.ReadFile("testdata/e2e-output.txt")
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^# TYPE (nfdrop_[a-z_]+) `).FindAllStringSubmatch(string(b), -1) {
		names[m[1]] = true
	}
	for _, e := range extra {
		names[e] = true
	}
	return names
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TestReadmeMetricsMatchExporter keeps the README's metrics reference from drifting.
func TestReadmeMetricsMatchExporter(t *testing.T) {
	doc := readmeMetrics(t)
	code := exposedMetrics(t, append(append([]string{"nfdrop_exporter_build_info"}, conntrackMetricNames(t)...), auditMetricNames(t)...)...)
	for _, n := range keys(code) {
		if !doc[n] {
			t.Errorf("%s is exposed but missing from the README metrics table", n)
		}
	}
	for _, n := range keys(doc) {
		if !code[n] {
			t.Errorf("the README lists %s, which the exporter does not expose", n)
		}
	}
}
