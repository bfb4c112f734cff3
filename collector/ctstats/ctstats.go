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

// Poller reads the statistics and logs once when reading starts failing
// and once when it works again, not at every scrape.
type Poller struct {
	reader Reader
	logger *slog.Logger
	mu     sync.Mutex
	failed bool // the last read failed
}

// NewPoller returns a Poller of r.
func NewPoller(r Reader, logger *slog.Logger) *Poller {
	return &Poller{reader: r, logger: logger}
}

// Read reads the statistics.
func (p *Poller) Read() (Stats, error) {
	s, err := p.reader.Stats()
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil && !p.failed {
		p.logger.Warn("Reading conntrack statistics failed (is the nf_conntrack_netlink module loaded?); nfdrop_conntrack_stats_success is 0", "err", err)
	} else if err == nil && p.failed {
		p.logger.Info("Reading conntrack statistics works again")
	}
	p.failed = err != nil
	return s, err
}
