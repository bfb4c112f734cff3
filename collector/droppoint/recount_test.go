package droppoint

import (
	"reflect"
	"testing"

	"github.com/nfdrop/nfdrop_exporter/collector/ruleset"
)

// TestAnalysisRecount: after the snapshot's counters change, Recount gives
// the drop points and log statements the counts a new analysis gives.
func TestAnalysisRecount(t *testing.T) {
	s := snapshot(map[string][]string{"a": {"x", "y"}, "b": {"z"}})
	x := s.Tables[0].Chains[0]
	x.Base.Policy, x.Base.Counter = ruleset.Drop, &ruleset.Counter{Packets: 4}
	x.Rules = append(x.Rules, &ruleset.Rule{Chain: x, Handle: 2, Index: 1, Counter: &ruleset.Counter{Packets: 5},
		Logs: []ruleset.Log{{NFLOG: true, Group: 1}}})
	a := Analyze(s, Options{Groups: []uint16{1}})
	for _, c := range s.Chains() {
		if c.Base.Counter != nil {
			c.Base.Counter.Packets += 100
		}
		for _, r := range c.Rules {
			r.Counter.Packets += 10 * uint64(r.Handle)
		}
	}
	a.Recount()
	want := Analyze(s, Options{Groups: []uint16{1}})
	if !reflect.DeepEqual(a.DropPoints, want.DropPoints) || !reflect.DeepEqual(a.Logs, want.Logs) {
		t.Fatalf("recounted:\n%+v\n%+v\nwant\n%+v\n%+v", a.DropPoints, a.Logs, want.DropPoints, want.Logs)
	}
	cd, _ := a.FirewallDrops()
	if got := []uint64{cd[0].Packets, cd[1].Packets, cd[2].Packets}; !reflect.DeepEqual(got, []uint64{1 + 10 + 104, 2 + 10, 1 + 10}) {
		t.Errorf("drops per chain %v (%+v)", got, cd)
	}
	if a.Logs[0].Packets != 25 {
		t.Errorf("log statement counts %d, want 25", a.Logs[0].Packets)
	}
}
