package collector

import (
	"github.com/nfdrop/nfdrop_exporter/collector/classify"
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
	classify.Labels
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
	names := c.prefixes.Names()
	ports := c.classifier.Ports()
	out := make([]GroupSnapshot, 0, len(c.order))
	for _, gs := range c.order {
		s := GroupSnapshot{Group: gs.group, Up: gs.up.Load(), LastPacket: gs.lastPacket.Load(), Lost: gs.lost.Load()}
		gs.eachSeries(func(key classify.Key, n uint64, _ int64) {
			s.Series = append(s.Series, SeriesCount{Labels: key.Labels(ports), Prefix: prefixName(names, key), Packets: n})
		})
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
func observeSource(s *topsources.Sources, p *packet.Packet, class classify.Class, ts int64) {
	switch p.Err {
	case packet.ErrNone, packet.ErrBadHeaderLength, packet.ErrBadTotalLength, packet.ErrTruncatedExtHeader, packet.ErrTruncatedTCPHeader:
	default:
		return // the source address was not reached (or the version is unknown)
	}
	switch p.Family {
	case packet.FamilyIPv4:
		s.ObserveSrc(&p.Src, false, uint8(class), ts)
	case packet.FamilyIPv6:
		s.ObserveSrc(&p.Src, true, uint8(class), ts)
	}
}

// eachSeries calls f for every packet counter of the group, the overflow
// series included: what a scrape emits as nfdrop_packets_total.
func (gs *groupState) eachSeries(f func(k classify.Key, n uint64, created int64)) {
	gs.counters.each(f)
	for cl := classify.Class(0); cl < classify.NumClasses; cl++ {
		if n := gs.counters.overflow[cl].Load(); n > 0 {
			f(classify.OverflowKey(cl), n, 0)
		}
	}
}

// prefixName is the prefix label value of a series key.
func prefixName(names []string, k classify.Key) string {
	if i := int(k.Prefix()); i < len(names) {
		return names[i]
	}
	return classify.OtherPrefix
}
