package collector

import (
	"github.com/nfdrop/nfdrop_exporter/collector/classify"
	"github.com/nfdrop/nfdrop_exporter/collector/conntrack"
	"github.com/nfdrop/nfdrop_exporter/collector/packet"
	"github.com/nfdrop/nfdrop_exporter/collector/topsources"
)

// This file is the collector's read-only view for the landing page and its
// JSON (package summary), and the hook that feeds the top-sources sketch.
// A view reads the same counters a scrape reads, and costs no more.

// GroupSnapshot is one group's state at the time of Snapshot.
type GroupSnapshot struct {
	Group      classify.Group
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
	ports := c.classifier.Ports()
	out := make([]GroupSnapshot, 0, len(c.order))
	for _, g := range c.order {
		s := GroupSnapshot{Group: g.id, Up: g.up.Load(), LastPacket: g.lastPacket.Load(), Lost: g.lost.Load()}
		g.eachSeries(func(key classify.Key, n uint64, _ int64) {
			s.Series = append(s.Series, SeriesCount{Labels: key.Labels(ports), Prefix: c.prefixes.Name(key.Prefix()), Packets: n})
		})
		if g.sources != nil && k > 0 {
			a, n := g.sources.Snapshot(k)
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

// EvidenceCounts returns a group's teardown evidence counts; ok is false
// when there is no conntrack evidence or the group is not read.
func (c *Collector) EvidenceCounts(id classify.Group) (counts [conntrack.NumEvidence]uint64, ok bool) {
	if c.tracker == nil {
		return counts, false
	}
	return c.tracker.EvidenceCounts(id)
}

// DropReasons returns a group's drops by conntrack's reason; ok is false
// when drops are not joined to reasons or the group is not read.
func (c *Collector) DropReasons(id classify.Group) (drops map[string]uint64, ok bool) {
	if c.reasons == nil {
		return nil, false
	}
	return c.reasons.DropReasons(id)
}

// LogRules returns how many nf_tables rules log to the group, read at most
// --collector.rule-audit.max-age ago; ok is false when the rule audit is
// off, the read failed, or the group is no NFLOG group.
func (c *Collector) LogRules(id classify.Group) (n int, ok bool) {
	if c.auditor == nil {
		return 0, false
	}
	return c.auditor.LogRules(id)
}

// SetConntrackAttrs records whether the kernel accepts NFLOG conntrack
// attributes on conntrack's group, once the source probed it.
func (c *Collector) SetConntrackAttrs(supported bool) {
	if c.reasons != nil {
		c.reasons.SetConntrackAttrs(supported)
	}
}
