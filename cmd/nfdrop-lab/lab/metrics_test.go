package lab

import (
	"strings"
	"testing"
)

const exposition = `# TYPE nfdrop_packets_total counter
nfdrop_packets_total{class="other",family="ipv4",flags="",group="0",port="53",prefix="denied",proto="udp",side="client"} 3
nfdrop_packets_total{class="teardown",family="ipv6",flags="ACK,FIN",group="1",port="443",prefix="denied",proto="tcp",side="client"} 4
# TYPE nfdrop_up gauge
nfdrop_up{group="0"} 1
`

// TestParseMetricsValues: Value matches the series whose labels include the
// wanted ones, ValueExact only the series with exactly those labels.
func TestParseMetricsValues(t *testing.T) {
	s, err := ParseMetrics(strings.NewReader(exposition))
	if err != nil {
		t.Fatal(err)
	}
	all := map[string]string{"class": "other", "family": "ipv4", "flags": "", "group": "0", "port": "53",
		"prefix": "denied", "proto": "udp", "side": "client"}
	for _, c := range []struct {
		name, metric string
		labels       map[string]string
		exact        bool
		want         float64
		wantOK       bool
	}{
		{"subset", "nfdrop_packets_total", map[string]string{"group": "1"}, false, 4, true},
		{"subset no labels", "nfdrop_up", nil, false, 1, true},
		{"subset absent", "nfdrop_packets_total", map[string]string{"group": "2"}, false, 0, false},
		{"exact all labels", "nfdrop_packets_total", all, true, 3, true},
		{"exact refuses a subset", "nfdrop_packets_total", map[string]string{"group": "1"}, true, 0, false},
		{"exact gauge", "nfdrop_up", map[string]string{"group": "0"}, true, 1, true},
		{"exact no labels", "nfdrop_up", nil, true, 0, false},
		{"missing family", "nfdrop_messages_lost_total", nil, false, 0, false},
	} {
		get := s.Value
		if c.exact {
			get = s.ValueExact
		}
		if v, ok := get(c.metric, c.labels); v != c.want || ok != c.wantOK {
			t.Errorf("%s: %s%v = %v, %v; want %v, %v", c.name, c.metric, c.labels, v, ok, c.want, c.wantOK)
		}
	}
	if got := Sum(s.Packets("")); got != 7 {
		t.Errorf("Sum(Packets(\"\")) = %v, want 7", got)
	}
	if _, err := ParseMetrics(strings.NewReader("nfdrop_up{group=\"0\" 1\n")); err == nil {
		t.Error("a broken exposition parsed without an error")
	}
}
