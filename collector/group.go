package collector

import (
	"sync/atomic"

	"github.com/nfdrop/nfdrop_exporter/collector/classify"
	"github.com/nfdrop/nfdrop_exporter/collector/ctlog"
	"github.com/nfdrop/nfdrop_exporter/collector/packet"
	"github.com/nfdrop/nfdrop_exporter/collector/source"
	"github.com/nfdrop/nfdrop_exporter/collector/topsources"
)

// group is one group's record: its counters and its share of every part
// that sees its packets, so that the per-packet path looks it up once. Only
// the group's reader writes the counters; scrapes read them with atomics.
type group struct {
	id           classify.Group
	label        string
	counters     *counterTable
	sizes        [classify.NumClasses]*sizeHistogram
	lost         atomic.Uint64
	rebinds      atomic.Uint64
	recvErrors   [source.NumReasons]atomic.Uint64
	decodeErrors [packet.NumErrors]atomic.Uint64
	lastPacket   atomic.Int64 // unix nanoseconds; 0 = none yet; published by Flush
	up           atomic.Bool
	sources      *topsources.Sources // nil: the sources view is off
	teardown     teardownReader      // nil: no teardown evidence
	reasons      *ctlog.GroupLog     // nil: conntrack's messages are not counted
	joining      bool                // reasons joins this group's drops to conntrack's reasons

	// Owned by the group's reader goroutine.
	inBatch   bool          // a packet of the current kernel batch was seen (Flush ends the batch)
	pkt       packet.Packet // scratch, reused per packet
	last      int64         // newest packet's time, not yet published
	rawPrefix [128]byte     // the last prefix seen, untrimmed, if it fits (NFLOG allows 127 bytes)...
	rawLen    int           // ...and its length (-1: none yet)
	prefixIdx uint8         // ...and its label index, or
	prefixCT  bool          // ...whether it is conntrack's own message prefix,
	ctReason  ctlog.Reason  // ...and then conntrack's reason
}

// teardownReader is the group's way into the conntrack tracker
// (*conntrack.GroupReader): Observe for each teardown-shaped drop, Flush at
// the end of each datagram, both on the group's reader goroutine.
type teardownReader interface {
	Observe(p *packet.Packet, tsNs int64)
	Flush()
}

func newGroup(id classify.Group, sourcesCapacity int) (*group, error) {
	g := &group{id: id, label: id.String(), counters: newCounterTable(counterSlots), rawLen: -1}
	if sourcesCapacity > 0 {
		s, err := topsources.NewSources(sourcesCapacity)
		if err != nil {
			return nil, err
		}
		g.sources = s
	}
	for cl := classify.Class(0); cl < classify.NumClasses; cl++ {
		g.sizes[cl] = newSizeHistogram(packetSizeOpts(g.label, cl.String()))
	}
	return g, nil
}

// eachSeries calls f for every packet counter of the group, the overflow
// series included: what a scrape emits as nfdrop_packets_total.
func (g *group) eachSeries(f func(k classify.Key, n uint64, created int64)) {
	g.counters.each(f)
	for cl := classify.Class(0); cl < classify.NumClasses; cl++ {
		if n := g.counters.overflow[cl].Load(); n > 0 {
			f(classify.OverflowKey(cl), n, 0)
		}
	}
}
