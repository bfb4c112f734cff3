package collector

import (
	"regexp"
	"time"

	"github.com/nfdrop/nfdrop_exporter/collector/classify"
	"github.com/nfdrop/nfdrop_exporter/collector/conntrack"
	"github.com/nfdrop/nfdrop_exporter/collector/packet"
	"github.com/nfdrop/nfdrop_exporter/collector/source"
	"github.com/nfdrop/nfdrop_exporter/collector/sysctl"
	"github.com/prometheus/client_golang/prometheus"
)

// families lists the families Collect may emit with a const metric, for
// Describe; the histograms describe themselves.
func (c *Collector) families() []*prometheus.Desc {
	d := []*prometheus.Desc{packetsDesc, lostDesc, rebindsDesc, receiveErrorsDesc, decodeErrorsDesc, lastPacketDesc, upDesc}
	if c.tracker != nil {
		d = append(d, evidenceDesc, ctEventsDesc, ctEventsLostDesc, ctRememberedDesc, ctEvictedDesc, ctLookupsDesc,
			ctUpDesc, ctPreexistingDesc, ctSettingDesc, ctTimeoutDesc)
	}
	if c.reasons != nil {
		d = append(d, ctMessagesDesc, dropReasonsDesc, dropReasonsWaitingDesc)
		if c.cfg.KernelSettings {
			d = append(d, ctLogInvalidDesc, ctLoggerDesc, ctAttrsDesc)
		}
	}
	if c.auditor != nil {
		d = append(d, logRulesDesc, logRulesUncountedDesc, logRulePacketsDesc, ruleAuditSuccessDesc, ruleAuditAgeDesc,
			firewallDropsDesc, firewallUncountedDesc)
	}
	if c.ebpf != nil {
		d = append(d, ebpfDropsDesc, ebpfMissedDesc, kernelDropsDesc)
	}
	if c.ctstats != nil {
		d = append(d, ctStatInvalidDesc, ctStatDropDesc, ctStatEarlyDropDesc, ctStatInsertFailedDesc,
			ctStatSearchRestartDesc, ctEntriesDesc, ctEntriesLimitDesc, ctStatsSuccessDesc)
	}
	return d
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.describe {
		ch <- d
	}
	for _, g := range c.order {
		for _, h := range g.sizes {
			h.Describe(ch)
		}
	}
	for _, h := range c.delays {
		h.Describe(ch)
	}
}

// Collect implements prometheus.Collector. Health series exist at 0 from the
// start. A series that cannot be built is reported as an invalid metric and
// the others are still emitted, so one bad label value never takes a group's
// nfdrop_up or another group away.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	c.collectPackets(ch)
	var settings sysctl.Settings
	if c.tracker != nil || (c.reasons != nil && c.cfg.KernelSettings) {
		settings = sysctl.Read(c.cfg.SysctlDir)
	}
	if c.tracker != nil {
		emitEvidence(ch, c.tracker.Stats(), c.delays, &settings)
	}
	if c.reasons != nil {
		c.collectReasons(ch, &settings)
	}
	if c.auditor != nil {
		c.collectAudit(ch)
	}
	if c.ctstats != nil {
		c.collectConntrackStats(ch)
	}
	if c.ebpf != nil {
		c.collectEBPF(ch)
	}
}

// emit sends one const metric, or an invalid metric if its labels cannot
// be exposed: a scrape never panics on a value from outside.
func emit(ch chan<- prometheus.Metric, d *prometheus.Desc, t prometheus.ValueType, v float64, labels ...string) {
	m, err := prometheus.NewConstMetric(d, t, v, labels...)
	if err != nil {
		m = prometheus.NewInvalidMetric(d, err)
	}
	ch <- m
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// collectPackets emits the groups' packet counters, health series and size
// histograms.
func (c *Collector) collectPackets(ch chan<- prometheus.Metric) {
	ports := c.classifier.Ports()
	for _, g := range c.order {
		l := g.label
		emit(ch, upDesc, prometheus.GaugeValue, boolValue(g.up.Load()), l)
		emit(ch, lostDesc, prometheus.CounterValue, float64(c.lost(g)), l)
		emit(ch, rebindsDesc, prometheus.CounterValue, float64(g.rebinds.Load()), l)
		for r := source.ErrorReason(0); r < source.NumReasons; r++ {
			emit(ch, receiveErrorsDesc, prometheus.CounterValue, float64(g.recvErrors[r].Load()), l, r.String())
		}
		for e := packet.Error(1); e < packet.NumErrors; e++ {
			emit(ch, decodeErrorsDesc, prometheus.CounterValue, float64(g.decodeErrors[e].Load()), l, e.String())
		}
		if ns := g.lastPacket.Load(); ns != 0 {
			emit(ch, lastPacketDesc, prometheus.GaugeValue, float64(ns)/1e9, l)
		}
		g.eachSeries(func(k classify.Key, n uint64, created int64) {
			// The prefix name is looked up per series, after its key was
			// read: a prefix first seen during this scrape has its name.
			values := k.Labels(ports).Values(l, c.prefixes.Name(k.Prefix()))
			var (
				m   prometheus.Metric
				err error
			)
			if created != 0 {
				m, err = prometheus.NewConstMetricWithCreatedTimestamp(packetsDesc, prometheus.CounterValue, float64(n), time.Unix(0, created), values...)
			} else {
				m, err = prometheus.NewConstMetric(packetsDesc, prometheus.CounterValue, float64(n), values...)
			}
			if err != nil {
				m = prometheus.NewInvalidMetric(packetsDesc, err)
			}
			ch <- m
		})
		for _, h := range g.sizes {
			m, err := h.metric()
			if err != nil {
				m = prometheus.NewInvalidMetric(h.desc, err)
			}
			ch <- m
		}
	}
}

// lost is a group's lost messages: NFLOG's sequence gaps, or for the eBPF
// source the drops its full ring buffer had no room for, as the kernel
// counts them now (before Collect reads its drops, so that the drops are
// never fewer than the packets and losses of one scrape).
func (c *Collector) lost(g *group) uint64 {
	if g.id == classify.GroupEBPF && c.ebpf != nil {
		if counts, err := c.ebpf.Counts(); err == nil {
			g.lost.Store(counts.Lost) // the last good read, should one fail
		}
	}
	return g.lost.Load()
}

// collectEBPF emits the eBPF program's own counts. They are read after the
// packet counters: every drop is counted in the kernel before it is read or
// lost, so nfdrop_ebpf_drops_total is never below the packets and losses of
// the same scrape.
func (c *Collector) collectEBPF(ch chan<- prometheus.Metric) {
	if counts, err := c.ebpf.Counts(); err == nil {
		emit(ch, ebpfDropsDesc, prometheus.CounterValue, float64(counts.Matched))
		emit(ch, ebpfMissedDesc, prometheus.CounterValue, float64(counts.Missed))
	} else {
		c.logger.Debug("reading the eBPF program's counters failed", "err", err)
	}
	drops, err := c.ebpf.KernelDrops()
	if err != nil {
		c.logger.Debug("reading the eBPF program's drop reasons failed", "err", err)
		return
	}
	for _, d := range drops {
		emit(ch, kernelDropsDesc, prometheus.CounterValue, float64(d.Count), d.Reason)
	}
}

// emitEvidence emits the conntrack tracker's counters, the groups' delay
// histograms and conntrack's settings. Every evidence value exists at 0 per
// group from the start, so rules can divide by the total.
func emitEvidence(ch chan<- prometheus.Metric, s conntrack.Stats, delays []prometheus.Histogram, settings *sysctl.Settings) {
	for _, gs := range s.Groups {
		for e := conntrack.Evidence(0); e < conntrack.NumEvidence; e++ {
			emit(ch, evidenceDesc, prometheus.CounterValue, float64(gs.Evidence[e]), gs.Group.String(), e.String())
		}
	}
	for _, h := range delays {
		ch <- h
	}
	emit(ch, ctUpDesc, prometheus.GaugeValue, boolValue(s.Up))
	emit(ch, ctEventsDesc, prometheus.CounterValue, float64(s.Destroys), "destroy")
	emit(ch, ctEventsLostDesc, prometheus.CounterValue, float64(s.EventsLost))
	emit(ch, ctRememberedDesc, prometheus.GaugeValue, float64(s.Remembered))
	emit(ch, ctEvictedDesc, prometheus.CounterValue, float64(s.Evicted))
	for r := conntrack.LookupResult(0); r < conntrack.NumLookupResults; r++ {
		emit(ch, ctLookupsDesc, prometheus.CounterValue, float64(s.Lookups[r]), r.String())
	}
	if s.Preexisting >= 0 {
		emit(ch, ctPreexistingDesc, prometheus.GaugeValue, float64(s.Preexisting))
	}
	for _, v := range settings.Conntrack {
		emit(ch, ctSettingDesc, prometheus.GaugeValue, v.Value, v.Name)
	}
	for _, v := range settings.TCPTimeouts {
		emit(ch, ctTimeoutDesc, prometheus.GaugeValue, v.Value, v.Name)
	}
}

// collectReasons emits the counts of conntrack's messages and of the drops
// joined to them, and conntrack's logging settings. Series appear once
// non-zero.
func (c *Collector) collectReasons(ch chan<- prometheus.Metric, settings *sysctl.Settings) {
	joining := c.reasons.Joining()
	for _, gc := range c.reasons.Counts() {
		l := gc.Group.String()
		for _, m := range gc.Messages {
			emit(ch, ctMessagesDesc, prometheus.CounterValue, float64(m.N), l, m.Family.String(), m.Proto.String(), m.Reason.String())
		}
		if !joining {
			continue
		}
		for _, d := range gc.Drops {
			emit(ch, dropReasonsDesc, prometheus.CounterValue, float64(d.N), l, className(d.Class), d.Reason.String())
		}
		emit(ch, dropReasonsWaitingDesc, prometheus.GaugeValue, float64(gc.Waiting), l)
	}
	if !c.cfg.KernelSettings {
		return
	}
	if settings.HasLogInvalid {
		emit(ch, ctLogInvalidDesc, prometheus.GaugeValue, float64(settings.LogInvalid))
	}
	if supported, probed := c.reasons.ConntrackAttrs(); probed {
		emit(ch, ctAttrsDesc, prometheus.GaugeValue, boolValue(supported))
	}
	for _, lg := range settings.Loggers {
		emit(ch, ctLoggerDesc, prometheus.GaugeValue, 1, lg.Family, lg.Name)
	}
}

// className is the class label value of a class number.
func className(class uint8) string {
	if classify.Class(class) < classify.NumClasses {
		return classify.Class(class).String()
	}
	return classify.ClassOther.String()
}

// collectAudit emits the log rules that feed the groups, as the kernel holds
// them at this scrape (or at a read at most --collector.rule-audit.max-age
// old), and how old that read is.
func (c *Collector) collectAudit(ch chan<- prometheus.Metric) {
	au := c.auditor.Read()
	if au.Err != nil {
		emit(ch, ruleAuditSuccessDesc, prometheus.GaugeValue, 0)
		return
	}
	emit(ch, ruleAuditSuccessDesc, prometheus.GaugeValue, 1)
	emit(ch, ruleAuditAgeDesc, prometheus.GaugeValue, max(time.Since(au.ReadAt).Seconds(), 0))
	for _, gr := range au.Groups {
		emit(ch, logRulesDesc, prometheus.GaugeValue, float64(gr.Rules), gr.Group.String())
		emit(ch, logRulesUncountedDesc, prometheus.GaugeValue, float64(gr.Uncounted), gr.Group.String())
	}
	for _, cp := range au.Chains {
		emit(ch, logRulePacketsDesc, prometheus.CounterValue, float64(cp.Packets), cp.Group.String(), cp.Family, cp.Table, cp.Chain)
	}
	for _, d := range au.Drops {
		emit(ch, firewallDropsDesc, prometheus.CounterValue, float64(d.Packets), d.Family, d.Table, d.Chain)
	}
	for _, u := range au.Uncounted {
		emit(ch, firewallUncountedDesc, prometheus.GaugeValue, float64(u.DropPoints), u.Family, u.Table)
	}
}

// collectConntrackStats emits conntrack's statistics, read now.
func (c *Collector) collectConntrackStats(ch chan<- prometheus.Metric) {
	s, err := c.ctstats.Read()
	if err != nil {
		emit(ch, ctStatsSuccessDesc, prometheus.GaugeValue, 0)
		return
	}
	emit(ch, ctStatsSuccessDesc, prometheus.GaugeValue, 1)
	for _, v := range []struct {
		d *prometheus.Desc
		t prometheus.ValueType
		n uint64
	}{
		{ctStatInvalidDesc, prometheus.CounterValue, s.Invalid},
		{ctStatDropDesc, prometheus.CounterValue, s.Drop},
		{ctStatEarlyDropDesc, prometheus.CounterValue, s.EarlyDrop},
		{ctStatInsertFailedDesc, prometheus.CounterValue, s.InsertFailed},
		{ctStatSearchRestartDesc, prometheus.CounterValue, s.SearchRestart},
		{ctEntriesDesc, prometheus.GaugeValue, s.Entries},
		{ctEntriesLimitDesc, prometheus.GaugeValue, s.MaxEntries},
	} {
		emit(ch, v.d, v.t, float64(v.n))
	}
}

// FamilyNames returns the names of the metric families the collector
// describes, for the checks of docs and dashboards against what it can
// expose.
func (c *Collector) FamilyNames() []string {
	ch := make(chan *prometheus.Desc, 256)
	go func() { c.Describe(ch); close(ch) }()
	var names []string
	for d := range ch {
		if m := fqNameRE.FindStringSubmatch(d.String()); m != nil {
			names = append(names, m[1])
		}
	}
	return names
}

var fqNameRE = regexp.MustCompile(`fqName: "([a-z_]+)"`)
