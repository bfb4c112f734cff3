// Package collector turns NFLOG messages into Prometheus metrics: it decodes
// each packet, classifies it (classify.go), counts it in an allocation-free table
// and emits the counts at scrape time.
package collector

import (
	"encoding/binary"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/nfdrop/nfdrop_exporter/collector/packet"
	"github.com/nfdrop/nfdrop_exporter/collector/source"
	"github.com/prometheus/client_golang/prometheus"
)

// Config is everything the collector needs; main builds it from flags.
type Config struct {
	Groups      []uint16
	Ports       Ports
	MaxPrefixes int
	// Teardown, if set, receives every teardown-shaped packet (for conntrack
	// correlation). It must not block.
	Teardown TeardownSink
}

// TeardownSink receives teardown-shaped drops. tsNs is when the kernel logged
// the packet, in unix nanoseconds. Observe and Flush run on the group's reader
// goroutine and must return quickly; Flush follows the last Observe of each
// datagram.
type TeardownSink interface {
	Observe(group uint16, p *packet.Packet, tsNs int64)
	Flush(group uint16)
}

// DefaultMaxPrefixes is the default --collector.max-prefixes.
const DefaultMaxPrefixes = 32

// Collector implements prometheus.Collector and source.Handler.
type Collector struct {
	logger     *slog.Logger
	classifier *Classifier
	prefixes   *prefixTable
	teardown   TeardownSink
	groups     map[uint16]*groupState // read-only after New: no lock on lookup
	order      []*groupState
}

// groupState holds one group's counters. Only the group's reader writes them.
type groupState struct {
	group        uint16
	label        string
	counters     *counterTable
	sizes        [NumClasses]*sizeHistogram
	lost         atomic.Uint64
	recvErrors   [source.NumReasons]atomic.Uint64
	decodeErrors [packet.NumErrors]atomic.Uint64
	lastPacket   atomic.Int64 // unix nanoseconds; 0 = none yet; published by Flush
	up           atomic.Bool

	// Owned by the group's reader goroutine.
	pkt       packet.Packet // scratch, reused per packet
	last      int64         // newest packet's time, not yet published
	rawPrefix [128]byte     // the last prefix seen, untrimmed, if it fits (NFLOG allows 127 bytes)...
	rawLen    int           // ...and its length (-1: none yet)
	prefixIdx uint8         // ...and its label index
}

// New validates cfg and builds the collector.
func New(cfg Config, logger *slog.Logger) (*Collector, error) {
	if len(cfg.Groups) == 0 {
		return nil, fmt.Errorf("no NFLOG group configured")
	}
	if cfg.MaxPrefixes < 1 || cfg.MaxPrefixes > 254 {
		return nil, fmt.Errorf("--collector.max-prefixes=%d: want 1 to 254", cfg.MaxPrefixes)
	}
	if cfg.Ports.index == nil {
		cfg.Ports = MustParsePorts(DefaultPorts)
	}
	c := &Collector{
		logger:     logger,
		classifier: NewClassifier(cfg.Ports),
		prefixes:   newPrefixTable(cfg.MaxPrefixes),
		teardown:   cfg.Teardown,
		groups:     map[uint16]*groupState{},
	}
	for _, g := range cfg.Groups {
		if _, dup := c.groups[g]; dup {
			return nil, fmt.Errorf("NFLOG group %d given twice", g)
		}
		gs := &groupState{group: g, label: strconv.Itoa(int(g)), counters: newCounterTable(counterSlots), rawLen: -1}
		for cl := Class(0); cl < NumClasses; cl++ {
			gs.sizes[cl] = newSizeHistogram(packetSizeOpts(gs.label, cl.String()))
		}
		c.groups[g] = gs
		c.order = append(c.order, gs)
	}
	return c, nil
}

// Classifier returns the collector's classifier (shared with explain).
func (c *Collector) Classifier() *Classifier { return c.classifier }

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
	packet.Decode(m.Payload, FamilyHint(m), p)
	if p.Err != packet.ErrNone {
		gs.decodeErrors[p.Err%packet.NumErrors].Add(1)
	}
	k := c.classifier.key(p)
	class := k.class()
	gs.counters.inc(k.withPrefix(c.prefixIndex(gs, m.Prefix)), class)
	if p.Err == packet.ErrNone {
		gs.sizes[class].observe(p.Length)
	}
	ts := m.TimestampNs
	if !m.HasTimestamp {
		ts = time.Now().UnixNano()
	}
	gs.last = ts
	if class == ClassTeardown && c.teardown != nil {
		c.teardown.Observe(m.Group, p, ts)
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

// prefixIndex is the label index of a message's prefix. A group is nearly
// always fed by one rule, so the last raw prefix and its index are kept: the
// trim and the search of the prefix table only run when the prefix changes.
func (c *Collector) prefixIndex(gs *groupState, raw []byte) uint8 {
	if len(raw) == gs.rawLen && sameBytes(raw, gs.rawPrefix[:gs.rawLen]) {
		return gs.prefixIdx
	}
	i := c.prefixes.index(TrimPrefix(raw))
	if len(raw) <= len(gs.rawPrefix) { // an index never changes, (other) included: the table only grows
		gs.rawLen = copy(gs.rawPrefix[:], raw)
		gs.prefixIdx = i
	}
	return i
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
	if c.teardown != nil {
		c.teardown.Flush(group)
	}
}

// FamilyHint is the family the kernel says an NFLOG message's packet has: the
// hook's protocol family, or for bridge/netdev hooks the link-layer protocol.
func FamilyHint(m *source.Message) packet.Family {
	switch m.Family {
	case 2: // AF_INET
		return packet.FamilyIPv4
	case 10: // AF_INET6
		return packet.FamilyIPv6
	}
	if m.HasHwProto {
		switch m.HwProtocol {
		case 0x0800:
			return packet.FamilyIPv4
		case 0x86dd:
			return packet.FamilyIPv6
		}
	}
	return packet.FamilyOther
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{packetsDesc, lostDesc, receiveErrorsDesc, decodeErrorsDesc, lastPacketDesc, upDesc} {
		ch <- d
	}
	for _, gs := range c.order {
		for _, h := range gs.sizes {
			h.Describe(ch)
		}
	}
}

// Collect implements prometheus.Collector: it emits the counter table as const
// metrics. Health series exist at 0 from the start.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	names := c.prefixes.names()
	ports := c.classifier.Ports()
	for _, gs := range c.order {
		g := gs.label
		ch <- prometheus.MustNewConstMetric(upDesc, prometheus.GaugeValue, b2f(gs.up.Load()), g)
		ch <- prometheus.MustNewConstMetric(lostDesc, prometheus.CounterValue, float64(gs.lost.Load()), g)
		for r := source.ErrorReason(0); r < source.NumReasons; r++ {
			ch <- prometheus.MustNewConstMetric(receiveErrorsDesc, prometheus.CounterValue, float64(gs.recvErrors[r].Load()), g, r.String())
		}
		for e := packet.Error(1); e < packet.NumErrors; e++ {
			ch <- prometheus.MustNewConstMetric(decodeErrorsDesc, prometheus.CounterValue, float64(gs.decodeErrors[e].Load()), g, e.String())
		}
		if ns := gs.lastPacket.Load(); ns != 0 {
			ch <- prometheus.MustNewConstMetric(lastPacketDesc, prometheus.GaugeValue, float64(ns)/1e9, g)
		}
		gs.counters.each(func(k seriesKey, n uint64, created int64) {
			l := k.labels(ports)
			prefix := otherPrefix
			if i := int(k.prefix()); i < len(names) {
				prefix = names[i]
			}
			values := []string{g, prefix, l.FamilyLabel(), l.ProtoLabel(), l.PortLabel(), l.SideLabel(), l.FlagsLabel(), l.ClassLabel()}
			if created != 0 {
				ch <- prometheus.MustNewConstMetricWithCreatedTimestamp(packetsDesc, prometheus.CounterValue, float64(n), time.Unix(0, created), values...)
			} else {
				ch <- prometheus.MustNewConstMetric(packetsDesc, prometheus.CounterValue, float64(n), values...)
			}
		})
		for cl := Class(0); cl < NumClasses; cl++ {
			if n := gs.counters.overflow[cl].Load(); n > 0 {
				ch <- prometheus.MustNewConstMetric(packetsDesc, prometheus.CounterValue, float64(n),
					g, otherPrefix, "other", "other", "", "", "", cl.String())
			}
		}
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
