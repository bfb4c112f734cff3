package conntrack

import (
	"path/filepath"
	"time"

	"github.com/nfdrop/nfdrop_exporter/collector/classify"
	"github.com/prometheus/client_golang/prometheus"
)

const namespace = "nfdrop"

var (
	evidenceDesc = prometheus.NewDesc(
		prometheus.BuildFQName(namespace, "", "teardown_evidence_total"),
		"Teardown-shaped drops by what conntrack says about their connection: destroyed (ended within the window), closing, established, none (never seen: scans), skipped (not determined).",
		[]string{classify.LabelGroup, "evidence"}, nil)
	eventsDesc = prometheus.NewDesc(
		prometheus.BuildFQName(namespace, "", "conntrack_events_total"),
		"Conntrack events received, by type (only DESTROY is subscribed).",
		[]string{"type"}, nil)
	eventsLostDesc = prometheus.NewDesc(
		prometheus.BuildFQName(namespace, "", "conntrack_events_lost_total"),
		"Conntrack events the exporter missed: dropped by the kernel on a full event socket, or undecodable.",
		nil, nil)
	rememberedDesc = prometheus.NewDesc(
		prometheus.BuildFQName(namespace, "", "conntrack_flows_remembered"),
		"Ended TCP flows currently remembered (at most --conntrack.max-flows, for --conntrack.window).",
		nil, nil)
	evictedDesc = prometheus.NewDesc(
		prometheus.BuildFQName(namespace, "", "conntrack_flows_evicted_total"),
		"Ended TCP flows forgotten before their window ended because --conntrack.max-flows was reached.",
		nil, nil)
	lookupsDesc = prometheus.NewDesc(
		prometheus.BuildFQName(namespace, "", "conntrack_lookups_total"),
		"Direct conntrack table lookups for teardown-shaped drops of flows not remembered, by result.",
		[]string{"result"}, nil)
	ctUpDesc = prometheus.NewDesc(
		prometheus.BuildFQName(namespace, "", "conntrack_up"),
		"1 while the exporter is subscribed to conntrack DESTROY events.",
		nil, nil)
	preexistingDesc = prometheus.NewDesc(
		prometheus.BuildFQName(namespace, "", "conntrack_preexisting_flows"),
		"Conntrack entries that existed when the exporter subscribed; with nf_conntrack_events=2 they never emit a DESTROY, so their late packets get no destroyed evidence.",
		nil, nil)
	settingDesc = prometheus.NewDesc(
		prometheus.BuildFQName(namespace, "", "conntrack_setting"),
		"Conntrack sysctls of the exporter's network namespace that decide which late packets are dropped and what evidence exists (net.netfilter.nf_conntrack_<name>).",
		[]string{"name"}, nil)
	timeoutDesc = prometheus.NewDesc(
		prometheus.BuildFQName(namespace, "", "conntrack_tcp_timeout_seconds"),
		"Conntrack TCP timeouts of the exporter's network namespace by state (net.netfilter.nf_conntrack_tcp_timeout_<state>): a late packet after its state's timeout is dropped.",
		[]string{"state"}, nil)
)

// delayOpts describes nfdrop_teardown_delay_seconds: from conntrack's DESTROY
// of the flow to the late packet. Classic buckets span 1 ms to 10 min; the
// native histogram covers the same range at ~10% resolution.
func delayOpts(group string) prometheus.HistogramOpts {
	return prometheus.HistogramOpts{
		Namespace:                       namespace,
		Name:                            "teardown_delay_seconds",
		Help:                            "Seconds from conntrack's DESTROY of a flow to a late teardown packet of it (drops with evidence destroyed).",
		ConstLabels:                     prometheus.Labels{classify.LabelGroup: group},
		Buckets:                         []float64{0.001, 0.01, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600},
		NativeHistogramBucketFactor:     1.1,
		NativeHistogramMaxBucketNumber:  160,
		NativeHistogramMinResetDuration: time.Hour,
		NativeHistogramZeroThreshold:    0.0005,
	}
}

// setting is one sysctl read for the settings gauges.
type setting struct {
	timeout bool // a TCP timeout (seconds) rather than a setting
	name    string
	value   float64
}

// settingNames are the sysctls that decide which late packets are INVALID
// (loose, be_liberal, ignore_invalid_rst, max_retrans) and whether and how
// DESTROY events exist (events, timestamp). Missing ones (older kernels) are
// left out.
var settingNames = []string{"tcp_loose", "tcp_be_liberal", "tcp_ignore_invalid_rst", "tcp_max_retrans", "events", "timestamp"}

var timeoutStates = []string{"syn_sent", "syn_recv", "established", "fin_wait", "close_wait", "last_ack", "time_wait", "close", "max_retrans", "unacknowledged"}

// readSettings reads the sysctls at scrape time: operators change them at
// run time, and reading a dozen small procfs files is cheap.
func readSettings(dir string) []setting {
	out := make([]setting, 0, len(settingNames)+len(timeoutStates))
	for _, n := range settingNames {
		if v, err := readUint(filepath.Join(dir, "nf_conntrack_"+n)); err == nil {
			out = append(out, setting{name: n, value: float64(v)})
		}
	}
	for _, s := range timeoutStates {
		if v, err := readUint(filepath.Join(dir, "nf_conntrack_tcp_timeout_"+s)); err == nil {
			out = append(out, setting{timeout: true, name: s, value: float64(v)})
		}
	}
	return out
}

// Describe implements prometheus.Collector.
func (t *Tracker) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{evidenceDesc, eventsDesc, eventsLostDesc, rememberedDesc, evictedDesc, lookupsDesc, ctUpDesc, preexistingDesc, settingDesc, timeoutDesc} {
		ch <- d
	}
	for i := range t.groups {
		t.groups[i].delay.Describe(ch)
	}
}

// Collect implements prometheus.Collector. Every evidence value exists at 0
// per group from the start, so rules can divide by the total.
func (t *Tracker) Collect(ch chan<- prometheus.Metric) {
	for i := range t.groups {
		gm := &t.groups[i]
		for e := Evidence(0); e < NumEvidence; e++ {
			ch <- prometheus.MustNewConstMetric(evidenceDesc, prometheus.CounterValue, float64(gm.evidence[e].Load()), gm.label, e.String())
		}
		ch <- gm.delay
	}
	up := 0.0
	if t.up.Load() {
		up = 1
	}
	ch <- prometheus.MustNewConstMetric(ctUpDesc, prometheus.GaugeValue, up)
	ch <- prometheus.MustNewConstMetric(eventsDesc, prometheus.CounterValue, float64(t.destroys.Load()), "destroy")
	lost := t.lostBase.Load() + t.undecodable.Load() + t.sock.drops()
	ch <- prometheus.MustNewConstMetric(eventsLostDesc, prometheus.CounterValue, float64(lost))

	now := t.now().UnixNano()
	t.mu.Lock()
	t.mem.expire(now)
	n := t.mem.len()
	t.mu.Unlock()
	ch <- prometheus.MustNewConstMetric(rememberedDesc, prometheus.GaugeValue, float64(n))
	ch <- prometheus.MustNewConstMetric(evictedDesc, prometheus.CounterValue, float64(t.evicted.Load()))
	for r := 0; r < numLookupResults; r++ {
		ch <- prometheus.MustNewConstMetric(lookupsDesc, prometheus.CounterValue, float64(t.lookups[r].Load()), lookupResultNames[r])
	}
	if p := t.preexisting.Load(); p >= 0 {
		ch <- prometheus.MustNewConstMetric(preexistingDesc, prometheus.GaugeValue, float64(p))
	}
	for _, s := range readSettings(t.cfg.SysctlDir) {
		if s.timeout {
			ch <- prometheus.MustNewConstMetric(timeoutDesc, prometheus.GaugeValue, s.value, s.name)
		} else {
			ch <- prometheus.MustNewConstMetric(settingDesc, prometheus.GaugeValue, s.value, s.name)
		}
	}
}

// EvidenceCounts returns a group's teardown evidence counters (what
// nfdrop_teardown_evidence_total has), for the landing page; ok is false
// for a group the tracker does not serve.
func (t *Tracker) EvidenceCounts(group uint16) (counts [NumEvidence]uint64, ok bool) {
	i := t.groupIndex(group)
	if i < 0 {
		return counts, false
	}
	for e := range counts {
		counts[e] = t.groups[i].evidence[e].Load()
	}
	return counts, true
}
