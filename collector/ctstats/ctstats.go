// Package ctstats exposes conntrack's own statistics (invalid packets,
// drops, failed inserts, table fill) of the exporter's network namespace,
// read over ctnetlink at scrape time. Since Linux 5.15 the
// /proc/net/stat/nf_conntrack file is off by default, and unprivileged
// exporters cannot use netlink; this exporter already holds CAP_NET_ADMIN.
package ctstats

import (
	"fmt"
	"log/slog"
	"sync"

	"github.com/mdlayher/netlink"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/ti-mo/conntrack"
)

// Stats are conntrack's counters summed over CPUs, and its table fill.
type Stats struct {
	Invalid, Drop, EarlyDrop, InsertFailed, SearchRestart uint64
	Entries, MaxEntries                                   uint64
}

// Reader reads the statistics.
type Reader interface {
	Stats() (Stats, error)
}

// Netlink reads over ctnetlink in the calling process's network namespace:
// IPCTNL_MSG_CT_GET_STATS_CPU (per-CPU counters) and IPCTNL_MSG_CT_GET_STATS
// (the namespace's entry count and the nf_conntrack_max limit).
type Netlink struct {
	// NetNS is a file descriptor of another network namespace to read;
	// 0 reads the caller's own.
	NetNS int
}

// Stats implements Reader.
func (n Netlink) Stats() (Stats, error) {
	c, err := conntrack.Dial(&netlink.Config{NetNS: n.NetNS})
	if err != nil {
		return Stats{}, fmt.Errorf("ctnetlink: %w", err)
	}
	defer c.Close()
	perCPU, err := c.Stats()
	if err != nil {
		return Stats{}, fmt.Errorf("conntrack per-CPU statistics: %w", err)
	}
	g, err := c.StatsGlobal()
	if err != nil {
		return Stats{}, fmt.Errorf("conntrack table statistics: %w", err)
	}
	s := Sum(perCPU)
	s.Entries, s.MaxEntries = uint64(g.Entries), uint64(g.MaxEntries)
	return s, nil
}

// Sum adds the per-CPU counters up. Each is a 32-bit kernel counter that
// wraps on its own CPU; Prometheus sees a wrap as a counter reset.
func Sum(perCPU []conntrack.Stats) Stats {
	var s Stats
	for _, c := range perCPU {
		s.Invalid += uint64(c.Invalid)
		s.Drop += uint64(c.Drop)
		s.EarlyDrop += uint64(c.EarlyDrop)
		s.InsertFailed += uint64(c.InsertFailed)
		s.SearchRestart += uint64(c.SearchRestart)
	}
	return s
}

var (
	invalidDesc = prometheus.NewDesc("nfdrop_conntrack_stat_invalid_total",
		"Packets conntrack could not track (invalid state or malformed), summed over CPUs; \"ct state invalid\" matches them.", nil, nil)
	dropDesc = prometheus.NewDesc("nfdrop_conntrack_stat_drop_total",
		"Packets conntrack dropped itself (failed to set up tracking, or invalid packets a tracker rejects), summed over CPUs.", nil, nil)
	earlyDropDesc = prometheus.NewDesc("nfdrop_conntrack_stat_early_drop_total",
		"Unassured entries conntrack evicted to make room because the table was full, summed over CPUs.", nil, nil)
	insertFailedDesc = prometheus.NewDesc("nfdrop_conntrack_stat_insert_failed_total",
		"New entries conntrack could not insert (clashing tuples, typically racing UDP), summed over CPUs.", nil, nil)
	searchRestartDesc = prometheus.NewDesc("nfdrop_conntrack_stat_search_restart_total",
		"Table lookups restarted because a resize moved the entry, summed over CPUs.", nil, nil)
	entriesDesc = prometheus.NewDesc("nfdrop_conntrack_entries",
		"Entries in the conntrack table of the exporter's network namespace.", nil, nil)
	limitDesc = prometheus.NewDesc("nfdrop_conntrack_entries_limit",
		"Most entries the conntrack table holds (net.netfilter.nf_conntrack_max).", nil, nil)
	successDesc = prometheus.NewDesc("nfdrop_conntrack_stats_success",
		"1 if the last read of conntrack's statistics succeeded; while 0 the other series of the family are absent.", nil, nil)
)

// Collector is a prometheus.Collector reading the statistics at scrape time.
type Collector struct {
	reader Reader
	logger *slog.Logger
	mu     sync.Mutex
	failed bool // the last read failed: log failures once, not per scrape
}

// New builds the collector.
func New(r Reader, logger *slog.Logger) *Collector {
	return &Collector{reader: r, logger: logger}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{invalidDesc, dropDesc, earlyDropDesc, insertFailedDesc, searchRestartDesc, entriesDesc, limitDesc, successDesc} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	s, err := c.reader.Stats()
	c.mu.Lock()
	if err != nil && !c.failed {
		c.logger.Warn("Reading conntrack statistics failed (is the nf_conntrack_netlink module loaded?); nfdrop_conntrack_stats_success is 0", "err", err)
	} else if err == nil && c.failed {
		c.logger.Info("Reading conntrack statistics works again")
	}
	c.failed = err != nil
	c.mu.Unlock()
	if err != nil {
		ch <- prometheus.MustNewConstMetric(successDesc, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(successDesc, prometheus.GaugeValue, 1)
	for _, v := range []struct {
		d *prometheus.Desc
		t prometheus.ValueType
		n uint64
	}{
		{invalidDesc, prometheus.CounterValue, s.Invalid},
		{dropDesc, prometheus.CounterValue, s.Drop},
		{earlyDropDesc, prometheus.CounterValue, s.EarlyDrop},
		{insertFailedDesc, prometheus.CounterValue, s.InsertFailed},
		{searchRestartDesc, prometheus.CounterValue, s.SearchRestart},
		{entriesDesc, prometheus.GaugeValue, s.Entries},
		{limitDesc, prometheus.GaugeValue, s.MaxEntries},
	} {
		ch <- prometheus.MustNewConstMetric(v.d, v.t, float64(v.n))
	}
}
