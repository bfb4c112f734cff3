package main

import (
	"regexp"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/promslog"
)

// auditMetricNames lists the families of the rule-audit and conntrack-stats
// collectors (which read the live kernel, so the replay golden file has
// none), from their own Describe.
func auditMetricNames(t *testing.T) []string {
	t.Helper()
	f := &auditFlags{ruleAudit: true, ctStats: true}
	colls := f.build([]uint16{0}, nil, false, promslog.NewNopLogger())
	if len(colls) != 2 {
		t.Fatalf("%d audit collectors, want 2", len(colls))
	}
	ch := make(chan *prometheus.Desc, 64)
	for _, c := range colls {
		c.Describe(ch)
	}
	close(ch)
	re := regexp.MustCompile(`fqName: "([a-z_]+)"`)
	var names []string
	for d := range ch {
		if m := re.FindStringSubmatch(d.String()); m != nil {
			names = append(names, m[1])
		}
	}
	if len(names) != 12 {
		t.Fatalf("the audit collectors describe %d families, want 12: %v", len(names), names)
	}
	return names
}
