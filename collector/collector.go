// Package collector turns NFLOG messages into Prometheus metrics: it decodes
// each packet, classifies it with package classify, counts it in an
// allocation-free table and emits the counts at scrape time.
package collector

import (
	"encoding/binary"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/nfdrop/nfdrop_exporter/collector/classify"
	"github.com/nfdrop/nfdrop_exporter/collector/ctlog"
	"github.com/nfdrop/nfdrop_exporter/collector/packet"
	"github.com/nfdrop/nfdrop_exporter/collector/source"
	"github.com/nfdrop/nfdrop_exporter/collector/topsources"
	"github.com/prometheus/client_golang/prometheus"
)

// Config is everything the collector needs; main builds it from flags.
type Config struct {
	Groups      []uint16
	Ports       classify.Ports
	MaxPrefixes int
	// Teardown, if set, receives every teardown-shaped packet (for conntrack
	// correlation). It must not block.
	Teardown TeardownSink
	// SourcesCapacity, if positive, keeps a top-sources sketch of that many
	// counters per group over the sources of non-teardown drops (Snapshot).
	SourcesCapacity int
	// Reasons counts conntrack's own log messages and joins drops to their
	// reasons. Conntrack's messages are never
	// counted as drops, with or without it.
	Reasons *ctlog.Log
}

// TeardownSink receives teardown-shaped drops. tsNs is when the kernel logged
// the packet, in unix nanoseconds. Observe and Flush run on the group's reader
// goroutine and must return quickly; Flush follows the last Observe of each
// datagram.
type TeardownSink interface {
	Observe(group uint16, p *packet.Packet, tsNs int64)
	Flush(group uint16)
}

// Collector implements prometheus.Collector and source.Handler.
type Collector struct {
	logger     *slog.Logger
	classifier *classify.Classifier
	prefixes   *classify.PrefixTable
	teardown   TeardownSink
	reasons    *ctlog.Log
	groups     map[uint16]*groupState // read-only after New: no lock on lookup
	order      []*groupState
}

// groupState holds one group's counters. Only the group's reader writes them.
type groupState struct {
	group        uint16
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

	// Owned by the group's reader goroutine.
	pkt       packet.Packet // scratch, reused per packet
	last      int64         // newest packet's time, not yet published
	rawPrefix [128]byte     // the last prefix seen, untrimmed, if it fits (NFLOG allows 127 bytes)...
	rawLen    int           // ...and its length (-1: none yet)
	prefixIdx uint8         // ...and its label index, or
	prefixCT  bool          // ...whether it is conntrack's own message prefix,
	ctReason  ctlog.Reason  // ...and then conntrack's reason
}

// New validates cfg and builds the collector.
func New(cfg Config, logger *slog.Logger) (*Collector, error) {
	if err := classify.CheckGroups(cfg.Groups); err != nil {
		return nil, err
	}
	if err := classify.CheckMaxPrefixes("--collector.max-prefixes", cfg.MaxPrefixes); err != nil {
		return nil, err
	}
	if cfg.Ports.Empty() {
		cfg.Ports = classify.MustParsePorts(classify.DefaultPorts)
	}
	c := &Collector{
		logger:     logger,
		classifier: classify.NewClassifier(cfg.Ports),
		prefixes:   classify.NewPrefixTable(cfg.MaxPrefixes),
		teardown:   cfg.Teardown,
		reasons:    cfg.Reasons,
		groups:     map[uint16]*groupState{},
	}
	for _, g := range cfg.Groups {
		gs := &groupState{group: g, label: strconv.Itoa(int(g)), counters: newCounterTable(counterSlots), rawLen: -1}
		if cfg.SourcesCapacity > 0 {
			s, err := topsources.NewSources(cfg.SourcesCapacity)
			if err != nil {
				return nil, err
			}
			gs.sources = s
		}
		for cl := classify.Class(0); cl < classify.NumClasses; cl++ {
			gs.sizes[cl] = newSizeHistogram(packetSizeOpts(gs.label, cl.String()))
		}
		c.groups[g] = gs
		c.order = append(c.order, gs)
	}
	return c, nil
}

// Classifier returns the collector's classifier (shared with explain).
func (c *Collector) Classifier() *classify.Classifier { return c.classifier }

// Bound implements source.Handler.
func (c *Collector) Bound(group uint16, up bool) {
	if gs := c.groups[group]; gs != nil {
		gs.up.Store(up)
	}
}

// Lost implements source.Handler.
func (c *Collector) Lost(group uint16, n uint64) {
	if gs := c.groups[group]; gs != nil {
		gs.lost.Add(n)
	}
}

// Rebind implements source.Handler.
func (c *Collector) Rebind(group uint16) {
	if gs := c.groups[group]; gs != nil {
		gs.rebinds.Add(1)
	}
}

// ReceiveError implements source.Handler.
func (c *Collector) ReceiveError(group uint16, r source.ErrorReason) {
	if gs := c.groups[group]; gs != nil {
		gs.recvErrors[r%source.NumReasons].Add(1)
	}
}

// Packet implements source.Handler: the per-packet path. It decodes, classifies,
// counts and observes without allocating or taking a lock.
func (c *Collector) Packet(m *source.Message) {
	gs := c.group(m.Group)
	if gs == nil {
		return
	}
	p := &gs.pkt
	family := classify.FamilyHint(m)
	packet.Decode(m.Payload, family, p)
	idx, r, isCT := c.prefixOf(gs, m.Prefix)
	// Conntrack's own messages are not drops.
	if isCT {
		if c.reasons != nil {
			var k uint64
			if c.reasons.Joining() { // the key is only for the join
				k = ctlog.Key(family, m.Payload)
			}
			c.reasons.Message(m.Group, p.Family, p.Proto, r, k, m.SeqGlobal, m.HasSeqGlobal)
		}
		return
	}
	if p.Err != packet.ErrNone {
		gs.decodeErrors[p.Err%packet.NumErrors].Add(1)
	}
	k := c.classifier.Key(p)
	class := k.Class()
	gs.counters.inc(k.WithPrefix(idx), class)
	if p.Err == packet.ErrNone {
		gs.sizes[class].observe(p.Length)
	}
	ts := m.TimestampNs
	if !m.HasTimestamp {
		ts = time.Now().UnixNano()
	}
	gs.last = ts
	if class == classify.ClassTeardown {
		if c.teardown != nil {
			c.teardown.Observe(m.Group, p, ts)
		}
	} else if gs.sources != nil {
		observeSource(gs.sources, p, class, ts)
	}
	if c.reasons != nil && c.reasons.Joining() {
		c.reasons.DropPacket(m.Group, uint8(class), family, m.Payload, m.SeqGlobal, m.HasSeqGlobal)
	}
}

// group returns the state of an NFLOG group, nil if it is not configured.
// Each reader serves one group: the map is skipped when there is only one.
func (c *Collector) group(g uint16) *groupState {
	if gs := c.order[0]; len(c.order) == 1 && gs.group == g {
		return gs
	}
	return c.groups[g]
}

// prefixOf reads a message's prefix: conntrack's reason if the prefix is
// one of conntrack's own messages (isCT), else its label index. A group is
// nearly always fed by one rule, so the last raw prefix and what it is are
// kept: recognising, trimming and searching the prefix table only run when
// the prefix changes, and the comparison is of raw bytes, so it never
// allocates. Conntrack's prefixes never enter the prefix table.
func (c *Collector) prefixOf(gs *groupState, raw []byte) (idx uint8, r ctlog.Reason, isCT bool) {
	if len(raw) == gs.rawLen && sameBytes(raw, gs.rawPrefix[:gs.rawLen]) {
		return gs.prefixIdx, gs.ctReason, gs.prefixCT
	}
	if r, isCT = ctlog.Recognise(raw); !isCT {
		idx = c.prefixes.Index(classify.TrimPrefix(raw))
	}
	if len(raw) <= len(gs.rawPrefix) { // an index never changes, (other) included: the table only grows
		gs.rawLen = copy(gs.rawPrefix[:], raw)
		gs.prefixIdx, gs.ctReason, gs.prefixCT = idx, r, isCT
	}
	return idx, r, isCT
}

// sameBytes reports whether a and b, of equal length, are equal. Rule
// prefixes are mostly 8 to 16 bytes: two overlapping 8-byte compares are
// cheaper there than a call to the runtime's memequal.
func sameBytes(a, b []byte) bool {
	if n := len(a); n >= 8 && n <= 16 && len(b) == n {
		return binary.LittleEndian.Uint64(a) == binary.LittleEndian.Uint64(b) &&
			binary.LittleEndian.Uint64(a[n-8:]) == binary.LittleEndian.Uint64(b[n-8:])
	}
	return string(a) == string(b)
}

// Flush implements source.Handler: at the end of a datagram it publishes the
// newest packet's time (once per datagram rather than with an atomic store per
// packet) and ends the datagram for the teardown sink.
func (c *Collector) Flush(group uint16) {
	gs := c.group(group)
	if gs == nil {
		return
	}
	if gs.last != 0 {
		gs.lastPacket.Store(gs.last)
	}
	if gs.sources != nil {
		gs.sources.Flush()
	}
	if c.teardown != nil {
		c.teardown.Flush(group)
	}
}

// LastPacket returns the time of the group's newest packet as Flush
// published it; zero when none has arrived or the group is not bound.
func (c *Collector) LastPacket(group uint16) time.Time {
	gs := c.group(group)
	if gs == nil {
		return time.Time{}
	}
	if ns := gs.lastPacket.Load(); ns != 0 {
		return time.Unix(0, ns)
	}
	return time.Time{}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{packetsDesc, lostDesc, rebindsDesc, receiveErrorsDesc, decodeErrorsDesc, lastPacketDesc, upDesc} {
		ch <- d
	}
	for _, gs := range c.order {
		for _, h := range gs.sizes {
			h.Describe(ch)
		}
	}
}

// Collect implements prometheus.Collector: it emits the counter table as const
// metrics. Health series exist at 0 from the start. A series that cannot be
// built is reported as an invalid metric and the others are still emitted, so
// one bad label value never takes a group's nfdrop_up or another group away.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	names := c.prefixes.Names()
	ports := c.classifier.Ports()
	for _, gs := range c.order {
		g := gs.label
		ch <- prometheus.MustNewConstMetric(upDesc, prometheus.GaugeValue, b2f(gs.up.Load()), g)
		ch <- prometheus.MustNewConstMetric(lostDesc, prometheus.CounterValue, float64(gs.lost.Load()), g)
		ch <- prometheus.MustNewConstMetric(rebindsDesc, prometheus.CounterValue, float64(gs.rebinds.Load()), g)
		for r := source.ErrorReason(0); r < source.NumReasons; r++ {
			ch <- prometheus.MustNewConstMetric(receiveErrorsDesc, prometheus.CounterValue, float64(gs.recvErrors[r].Load()), g, r.String())
		}
		for e := packet.Error(1); e < packet.NumErrors; e++ {
			ch <- prometheus.MustNewConstMetric(decodeErrorsDesc, prometheus.CounterValue, float64(gs.decodeErrors[e].Load()), g, e.String())
		}
		if ns := gs.lastPacket.Load(); ns != 0 {
			ch <- prometheus.MustNewConstMetric(lastPacketDesc, prometheus.GaugeValue, float64(ns)/1e9, g)
		}
		series := func(k classify.Key, n uint64, created int64) {
			values := k.Labels(ports).Values(g, prefixName(names, k))
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
		}
		gs.eachSeries(series)
		for _, h := range gs.sizes {
			m, err := h.metric()
			if err != nil {
				m = prometheus.NewInvalidMetric(h.desc, err)
			}
			ch <- m
		}
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
