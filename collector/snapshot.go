package collector

import (
	"net/netip"

	"github.com/nfdrop/nfdrop_exporter/collector/packet"
	"github.com/nfdrop/nfdrop_exporter/collector/topsources"
)

// This file is the collector's read-only view for the landing page and its
// JSON (package summary), and the hook that feeds the top-sources sketch.
// A view reads the same counters a scrape reads, and costs no more.

// GroupSnapshot is one NFLOG group's state at the time of Snapshot.
type GroupSnapshot struct {
	Group      uint16
	Up         bool
	LastPacket int64 // unix nanoseconds; 0 = no packet yet
	Lost       uint64
	Series     []SeriesCount // every packet counter, as nfdrop_packets_total has them
	// Sources are the heaviest sources of the group's non-teardown drops;
	// nil when the sources view is off.
	Sources *SourcesSnapshot
}

// SeriesCount is one nfdrop_packets_total series of a group.
type SeriesCount struct {
	Labels
	Prefix  string
	Packets uint64
}

// SourcesSnapshot is a copy of a group's top-sources sketches.
type SourcesSnapshot struct {
	Addresses, Networks topsources.Top
}

// Snapshot copies every group's state, in configuration order, with the k
// heaviest sources per level (k = 0: no sources, for callers that only need
// the counts). Safe to call from any goroutine.
func (c *Collector) Snapshot(k int) []GroupSnapshot {
	names := c.prefixes.names()
	ports := c.classifier.Ports()
	out := make([]GroupSnapshot, 0, len(c.order))
	for _, gs := range c.order {
		s := GroupSnapshot{Group: gs.group, Up: gs.up.Load(), LastPacket: gs.lastPacket.Load(), Lost: gs.lost.Load()}
		gs.counters.each(func(key seriesKey, n uint64, _ int64) {
			prefix := otherPrefix
			if i := int(key.prefix()); i < len(names) {
				prefix = names[i]
			}
			s.Series = append(s.Series, SeriesCount{Labels: key.labels(ports), Prefix: prefix, Packets: n})
		})
		for cl := Class(0); cl < NumClasses; cl++ {
			if n := gs.counters.overflow[cl].Load(); n > 0 {
				s.Series = append(s.Series, SeriesCount{Labels: Labels{Class: cl, ports: ports}, Prefix: otherPrefix, Packets: n})
			}
		}
		if gs.sources != nil && k > 0 {
			a, n := gs.sources.Snapshot(k)
			s.Sources = &SourcesSnapshot{Addresses: a, Networks: n}
		}
		out = append(out, s)
	}
	return out
}

// observeSource counts a non-teardown drop's source address in the group's
// sketch, when the header it comes from was decoded.
func observeSource(s *topsources.Sources, p *packet.Packet, class Class, ts int64) {
	switch p.Err {
	case packet.ErrNone, packet.ErrBadHeaderLength, packet.ErrBadTotalLength, packet.ErrTruncatedExtHeader, packet.ErrTruncatedTCPHeader:
	default:
		return // the source address was not reached (or the version is unknown)
	}
	switch p.Family {
	case packet.FamilyIPv4:
		s.Observe(netip.AddrFrom4([4]byte(p.Src[:4])), uint8(class), ts)
	case packet.FamilyIPv6:
		s.Observe(netip.AddrFrom16(p.Src), uint8(class), ts)
	}
}
