package collector

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nfdrop/nfdrop_exporter/collector/classify"
	"github.com/nfdrop/nfdrop_exporter/collector/conntrack"
	"github.com/nfdrop/nfdrop_exporter/collector/sysctl"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/promslog"
)

// fakeSysctls writes a /proc/sys/net/netfilter look-alike; the kernel's
// nf_conntrack_tcp_ignore_invalid_rst is left out, as on kernels before 5.14.
func fakeSysctls(t *testing.T, extra map[string]string) string {
	dir := t.TempDir()
	files := map[string]string{
		"nf_conntrack_tcp_loose": "1", "nf_conntrack_tcp_be_liberal": "0", "nf_conntrack_tcp_max_retrans": "3",
		"nf_conntrack_events": "2", "nf_conntrack_timestamp": "0", "nf_conntrack_count": "17",
		"nf_conntrack_tcp_timeout_close_wait": "60", "nf_conntrack_tcp_timeout_time_wait": "120",
		"nf_conntrack_tcp_timeout_established": "432000",
		"nf_conntrack_max":                     "262144", // not exported
	}
	for k, v := range extra {
		files[k] = v
	}
	for name, v := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(v+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// collectorFunc is a prometheus.Collector of a function, for the emitters.
type collectorFunc func(chan<- prometheus.Metric)

func (f collectorFunc) Collect(ch chan<- prometheus.Metric) { f(ch) }
func (f collectorFunc) Describe(chan<- *prometheus.Desc)    {}

// TestEvidenceExposition: the conntrack tracker's counters, the delay
// histogram and conntrack's settings as a scrape shows them.
func TestEvidenceExposition(t *testing.T) {
	delay := prometheus.NewHistogram(teardownDelayOpts("0"))
	delay.Observe(2)
	delay.Observe(0.0002)
	s := conntrack.Stats{Up: true, Destroys: 3, EventsLost: 5, Remembered: 1, Preexisting: 17,
		Lookups: [conntrack.NumLookupResults]uint64{conntrack.LookupNotFound: 1},
		Groups:  []conntrack.GroupStats{{Group: 0, Evidence: [conntrack.NumEvidence]uint64{conntrack.EvidenceDestroyed: 2, conntrack.EvidenceNone: 1}}}}
	settings := sysctl.Read(fakeSysctls(t, nil))
	c := collectorFunc(func(ch chan<- prometheus.Metric) { emitEvidence(ch, s, []prometheus.Histogram{delay}, &settings) })
	want := `
# HELP nfdrop_conntrack_events_lost_total Conntrack events the exporter missed: dropped by the kernel on a full event socket, or undecodable.
# TYPE nfdrop_conntrack_events_lost_total counter
nfdrop_conntrack_events_lost_total 5
# HELP nfdrop_conntrack_events_total Conntrack events received, by type (only DESTROY is subscribed).
# TYPE nfdrop_conntrack_events_total counter
nfdrop_conntrack_events_total{type="destroy"} 3
# HELP nfdrop_conntrack_flows_evicted_total Ended TCP flows forgotten before their window ended because --conntrack.max-flows was reached.
# TYPE nfdrop_conntrack_flows_evicted_total counter
nfdrop_conntrack_flows_evicted_total 0
# HELP nfdrop_conntrack_flows_remembered Ended TCP flows currently remembered (at most --conntrack.max-flows, for --conntrack.window).
# TYPE nfdrop_conntrack_flows_remembered gauge
nfdrop_conntrack_flows_remembered 1
# HELP nfdrop_conntrack_lookups_total Direct conntrack table lookups for teardown-shaped drops of flows not remembered, by result.
# TYPE nfdrop_conntrack_lookups_total counter
nfdrop_conntrack_lookups_total{result="error"} 0
nfdrop_conntrack_lookups_total{result="found"} 0
nfdrop_conntrack_lookups_total{result="not_found"} 1
# HELP nfdrop_conntrack_preexisting_flows Conntrack entries that existed when the exporter subscribed; with nf_conntrack_events=2 they never emit a DESTROY, so their late packets get no destroyed evidence.
# TYPE nfdrop_conntrack_preexisting_flows gauge
nfdrop_conntrack_preexisting_flows 17
# HELP nfdrop_conntrack_setting Conntrack sysctls of the exporter's network namespace that decide which late packets are dropped and what evidence exists (net.netfilter.nf_conntrack_<name>).
# TYPE nfdrop_conntrack_setting gauge
nfdrop_conntrack_setting{name="events"} 2
nfdrop_conntrack_setting{name="tcp_be_liberal"} 0
nfdrop_conntrack_setting{name="tcp_loose"} 1
nfdrop_conntrack_setting{name="tcp_max_retrans"} 3
nfdrop_conntrack_setting{name="timestamp"} 0
# HELP nfdrop_conntrack_tcp_timeout_seconds Conntrack TCP timeouts of the exporter's network namespace by state (net.netfilter.nf_conntrack_tcp_timeout_<state>): a late packet after its state's timeout is dropped.
# TYPE nfdrop_conntrack_tcp_timeout_seconds gauge
nfdrop_conntrack_tcp_timeout_seconds{state="close_wait"} 60
nfdrop_conntrack_tcp_timeout_seconds{state="established"} 432000
nfdrop_conntrack_tcp_timeout_seconds{state="time_wait"} 120
# HELP nfdrop_conntrack_up 1 while the exporter is subscribed to conntrack DESTROY events.
# TYPE nfdrop_conntrack_up gauge
nfdrop_conntrack_up 1
# HELP nfdrop_teardown_delay_seconds Seconds from conntrack's DESTROY of a flow to a late teardown packet of it (drops with evidence destroyed).
# TYPE nfdrop_teardown_delay_seconds histogram
nfdrop_teardown_delay_seconds_bucket{group="0",le="0.001"} 1
nfdrop_teardown_delay_seconds_bucket{group="0",le="0.01"} 1
nfdrop_teardown_delay_seconds_bucket{group="0",le="0.1"} 1
nfdrop_teardown_delay_seconds_bucket{group="0",le="0.5"} 1
nfdrop_teardown_delay_seconds_bucket{group="0",le="1"} 1
nfdrop_teardown_delay_seconds_bucket{group="0",le="2"} 2
nfdrop_teardown_delay_seconds_bucket{group="0",le="5"} 2
nfdrop_teardown_delay_seconds_bucket{group="0",le="10"} 2
nfdrop_teardown_delay_seconds_bucket{group="0",le="30"} 2
nfdrop_teardown_delay_seconds_bucket{group="0",le="60"} 2
nfdrop_teardown_delay_seconds_bucket{group="0",le="120"} 2
nfdrop_teardown_delay_seconds_bucket{group="0",le="300"} 2
nfdrop_teardown_delay_seconds_bucket{group="0",le="600"} 2
nfdrop_teardown_delay_seconds_bucket{group="0",le="+Inf"} 2
nfdrop_teardown_delay_seconds_sum{group="0"} 2.0002
nfdrop_teardown_delay_seconds_count{group="0"} 2
# HELP nfdrop_teardown_evidence_total Teardown-shaped drops by what conntrack says about their connection: destroyed (ended within the window), closing, established, none (never seen: scans), skipped (not determined).
# TYPE nfdrop_teardown_evidence_total counter
nfdrop_teardown_evidence_total{evidence="closing",group="0"} 0
nfdrop_teardown_evidence_total{evidence="destroyed",group="0"} 2
nfdrop_teardown_evidence_total{evidence="established",group="0"} 0
nfdrop_teardown_evidence_total{evidence="none",group="0"} 1
nfdrop_teardown_evidence_total{evidence="skipped",group="0"} 0
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
	problems, err := testutil.CollectAndLint(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
}

// TestEvidenceFreshTracker: before anything happens every evidence series and
// the health series exist at 0 for every group, and a missing sysctl
// directory (no conntrack module) only leaves the settings out.
func TestEvidenceFreshTracker(t *testing.T) {
	c, err := New(Config{Groups: []classify.Group{0, 5}, MaxPrefixes: 2, SysctlDir: "/nonexistent",
		Conntrack: &conntrack.Config{Window: conntrack.DefaultWindow, Hold: conntrack.DefaultHold, MaxFlows: 16, LookupsPerSecond: 10, QueueSize: 8, SysctlDir: "/nonexistent"}},
		promslog.NewNopLogger())
	if err != nil {
		t.Fatal(err)
	}
	if n := testutil.CollectAndCount(c, "nfdrop_teardown_evidence_total"); n != 2*int(conntrack.NumEvidence) {
		t.Errorf("%d evidence series, want %d", n, 2*int(conntrack.NumEvidence))
	}
	for name, want := range map[string]int{
		"nfdrop_conntrack_up": 1, "nfdrop_conntrack_events_lost_total": 1, "nfdrop_conntrack_events_total": 1,
		"nfdrop_conntrack_flows_remembered": 1, "nfdrop_teardown_delay_seconds": 2,
		"nfdrop_conntrack_preexisting_flows": 0, "nfdrop_conntrack_setting": 0,
	} {
		if n := testutil.CollectAndCount(c, name); n != want {
			t.Errorf("%s: %d series, want %d", name, n, want)
		}
	}
	if v := sumOf(t, c, "nfdrop_conntrack_up"); v != 0 {
		t.Errorf("nfdrop_conntrack_up %v before Start, want 0", v)
	}
}
