package conntrack

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// fakeSysctls writes a /proc/sys/net/netfilter look-alike; the kernel's
// nf_conntrack_tcp_ignore_invalid_rst is left out, as on kernels before 5.14.
func fakeSysctls(t *testing.T) string {
	dir := t.TempDir()
	for name, v := range map[string]string{
		"nf_conntrack_tcp_loose": "1", "nf_conntrack_tcp_be_liberal": "0", "nf_conntrack_tcp_max_retrans": "3",
		"nf_conntrack_events": "2", "nf_conntrack_timestamp": "0", "nf_conntrack_count": "17",
		"nf_conntrack_tcp_timeout_close_wait": "60", "nf_conntrack_tcp_timeout_time_wait": "120",
		"nf_conntrack_tcp_timeout_established": "432000",
		"nf_conntrack_max":                     "262144", // not exported
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(v+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestMetrics(t *testing.T) {
	cfg := testConfig()
	cfg.Groups = []uint16{0}
	cfg.SysctlDir = fakeSysctls(t)
	tr, err := New(cfg, nopLogger())
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	tr.up.Store(true)
	tr.preexisting.Store(17)
	tr.destroys.Add(3)
	tr.undecodable.Add(1)
	tr.lostBase.Add(4)
	tp := tup(t, "10.99.0.2", 40000, "10.99.0.1", 443)
	tr.recordDestroy(&tp, t0.Add(-2*time.Second).UnixNano())
	tr.groups[0].evidence[EvidenceDestroyed].Add(2)
	tr.groups[0].evidence[EvidenceNone].Add(1)
	tr.groups[0].delay.Observe(2)
	tr.groups[0].delay.Observe(0.0002)
	tr.lookups[lookupNotFound].Add(1)

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
	if err := testutil.CollectAndCompare(tr, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
	problems, err := testutil.CollectAndLint(tr)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
}

// TestMetricsFreshTracker: before anything happens every evidence series and
// the health series exist at 0 for every group, and a missing sysctl
// directory (no conntrack module) only leaves the settings out.
func TestMetricsFreshTracker(t *testing.T) {
	tr, err := New(testConfig(), nopLogger())
	if err != nil {
		t.Fatal(err)
	}
	if n := testutil.CollectAndCount(tr, "nfdrop_teardown_evidence_total"); n != 2*int(NumEvidence) {
		t.Errorf("%d evidence series, want %d", n, 2*int(NumEvidence))
	}
	for name, want := range map[string]int{
		"nfdrop_conntrack_up": 1, "nfdrop_conntrack_events_lost_total": 1, "nfdrop_conntrack_events_total": 1,
		"nfdrop_conntrack_flows_remembered": 1, "nfdrop_teardown_delay_seconds": 2,
		"nfdrop_conntrack_preexisting_flows": 0, "nfdrop_conntrack_setting": 0,
	} {
		if n := testutil.CollectAndCount(tr, name); n != want {
			t.Errorf("%s: %d series, want %d", name, n, want)
		}
	}
	if v := testutil.ToFloat64(prometheusGauge(tr, "nfdrop_conntrack_up")); v != 0 {
		t.Errorf("nfdrop_conntrack_up %v before Start, want 0", v)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"defaults", func(*Config) {}, ""},
		{"no group", func(c *Config) { c.Groups = nil }, "no NFLOG group configured: give at least one group"},
		{"window shorter than hold", func(c *Config) { c.Window = time.Second }, "--conntrack.window=1s: want at least --conntrack.hold (2s) and at most 24h"},
		{"hold too long", func(c *Config) { c.Hold = 2 * time.Minute }, "--conntrack.hold=2m0s: want 0 to 1m"},
		{"no flows", func(c *Config) { c.MaxFlows = 0 }, "--conntrack.max-flows=0: want 1 to 16777216"},
		{"negative lookups", func(c *Config) { c.LookupsPerSecond = -1 }, "--conntrack.lookups-per-second=-1: want 0 to 1000000"},
		{"no queue", func(c *Config) { c.QueueSize = 0 }, "--conntrack.hold-queue=0: want 1 to 4194304"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := testConfig()
			tc.mod(&c)
			err := c.Validate()
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tc.want {
				t.Errorf("Validate() = %q, want %q", got, tc.want)
			}
		})
	}
	c := testConfig()
	c.Groups = []uint16{3, 3}
	if _, err := New(c, nopLogger()); err == nil || err.Error() != "NFLOG group 3 is given twice: give each group once" {
		t.Errorf("New with a duplicate group: %v", err)
	}
}
