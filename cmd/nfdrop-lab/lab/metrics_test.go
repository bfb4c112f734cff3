package lab

import (
	"bytes"
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// TestHeadline: the verdict follows the evidence. The teardown shape alone is never
// called harmless; with conntrack evidence only the proven (destroyed/closing) drops are,
// and those without a connection (none) are named as not harmless.
func TestHeadline(t *testing.T) {
	tests := []struct {
		name            string
		total, teardown float64
		ev              *Evidence
		want            string
	}{
		{"nothing counted", 0, 0, nil, "=> no drops counted."},
		{"the demo: mostly unproven", 510, 458, &Evidence{Destroyed: 20, Closing: 4, None: 434},
			"=> 458 of 510 drops (89.8%) are shaped like late TCP teardown; conntrack proved 24 of them late packets of real connections (destroyed/closing: harmless) and found no connection for 434 (none: scan or crafted packet, not harmless); 52 are not teardown-shaped."},
		{"all proven", 4, 4, &Evidence{Destroyed: 3, Closing: 1},
			"=> 4 of 4 drops (100.0%) are shaped like late TCP teardown; conntrack proved 4 of them late packets of real connections (destroyed/closing: harmless) and found no connection for 0 (none: scan or crafted packet, not harmless); 0 are not teardown-shaped."},
		{"none proven", 10, 9, &Evidence{None: 9},
			"=> 9 of 10 drops (90.0%) are shaped like late TCP teardown; conntrack proved 0 of them late packets of real connections (destroyed/closing: harmless) and found no connection for 9 (none: scan or crafted packet, not harmless); 1 is not teardown-shaped."},
		{"established, skipped and still held", 100, 50, &Evidence{Destroyed: 10, Established: 5, None: 20, Skipped: 3},
			"=> 50 of 100 drops (50.0%) are shaped like late TCP teardown; conntrack proved 10 of them late packets of real connections (destroyed/closing: harmless) and found no connection for 20 (none: scan or crafted packet, not harmless), 5 hit a live connection (established), 3 were not checked (skipped), 12 still wait for evidence; 50 are not teardown-shaped."},
		{"correlation off", 510, 458, nil,
			"=> 458 of 510 drops (89.8%) are shaped like late TCP teardown; without conntrack evidence (--no-conntrack.correlate) none is proven harmless; 52 are not teardown-shaped."},
		{"one teardown drop", 3, 1, nil,
			"=> 1 of 3 drops (33.3%) is shaped like late TCP teardown; without conntrack evidence (--no-conntrack.correlate) none is proven harmless; 2 are not teardown-shaped."},
		{"no teardown", 7, 0, &Evidence{},
			"=> 0 of 7 drops (0.0%) are shaped like late TCP teardown; 7 are not teardown-shaped."},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Headline(tc.total, tc.teardown, tc.ev)
			if got != tc.want {
				t.Errorf("Headline(%v, %v, %+v) =\n%s\nwant\n%s", tc.total, tc.teardown, tc.ev, got, tc.want)
			}
		})
	}
}

// TestWriteSummaryHeadline: the summary of a scrape prints the headline of that scrape's
// own evidence, and says so when the exporter collects none.
func TestWriteSummaryHeadline(t *testing.T) {
	const packets = `# TYPE nfdrop_packets_total counter
nfdrop_packets_total{class="teardown",family="ipv4",flags="ACK,FIN",group="0",port="443",prefix="denied",proto="tcp",side="client"} 8
nfdrop_packets_total{class="handshake",family="ipv4",flags="SYN",group="0",port="22",prefix="denied",proto="tcp",side="client"} 2
# TYPE nfdrop_messages_lost_total counter
nfdrop_messages_lost_total{group="0"} 0
# TYPE nfdrop_up gauge
nfdrop_up{group="0"} 1
`
	const evidence = `# TYPE nfdrop_teardown_evidence_total counter
nfdrop_teardown_evidence_total{evidence="destroyed",group="0"} 3
nfdrop_teardown_evidence_total{evidence="closing",group="0"} 0
nfdrop_teardown_evidence_total{evidence="established",group="0"} 0
nfdrop_teardown_evidence_total{evidence="none",group="0"} 5
nfdrop_teardown_evidence_total{evidence="skipped",group="0"} 0
`
	for _, tc := range []struct{ name, exposition, want string }{
		{"with evidence", packets + evidence, "=> 8 of 10 drops (80.0%) are shaped like late TCP teardown; conntrack proved 3 of them late packets of real connections (destroyed/closing: harmless) and found no connection for 5 (none: scan or crafted packet, not harmless); 2 are not teardown-shaped.\n"},
		{"without evidence", packets, "=> 8 of 10 drops (80.0%) are shaped like late TCP teardown; without conntrack evidence (--no-conntrack.correlate) none is proven harmless; 2 are not teardown-shaped.\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			parser := expfmt.NewTextParser(model.UTF8Validation)
			mfs, err := parser.TextToMetricFamilies(strings.NewReader(tc.exposition))
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			WriteSummary(&out, Scrape(mfs), "0", 10)
			if !strings.Contains(out.String(), "\n"+tc.want) {
				t.Errorf("summary lacks the headline %q:\n%s", tc.want, out.String())
			}
		})
	}
}

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
