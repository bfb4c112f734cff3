package main

import (
	"regexp"
	"testing"

	"github.com/nfdrop/nfdrop_exporter/collector/conntrack"
	"github.com/nfdrop/nfdrop_exporter/collector/ctlog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/promslog"
)

// conntrackMetricNames lists the families only a live conntrack tracker, or
// conntrack's own messages on a live kernel, expose
// (the replay golden file runs without one), from the tracker's own Describe.
func conntrackMetricNames(t *testing.T) []string {
	t.Helper()
	tr, err := conntrack.New(conntrack.Config{Groups: []uint16{0}, Window: conntrack.DefaultWindow, Hold: conntrack.DefaultHold, MaxFlows: 16, LookupsPerSecond: 1, QueueSize: 16}, promslog.NewNopLogger())
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan *prometheus.Desc, 64)
	tr.Describe(ch)
	// Conntrack's own messages and the settings need a live kernel too.
	ctlog.New(ctlog.Config{Groups: []uint16{0}}).Describe(ch)
	close(ch)
	re := regexp.MustCompile(`fqName: "([a-z_]+)"`)
	var names []string
	for d := range ch {
		if m := re.FindStringSubmatch(d.String()); m != nil {
			names = append(names, m[1])
		}
	}
	if len(names) == 0 {
		t.Fatal("the conntrack tracker describes no metrics")
	}
	return names
}
