package conntrack

import (
	"encoding/binary"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/mdlayher/netlink"
	"github.com/nfdrop/nfdrop_exporter/collector/classify"
	"github.com/nfdrop/nfdrop_exporter/collector/packet"
	"github.com/prometheus/common/promslog"
)

// tup builds a Tuple from text addresses.
func tup(t testing.TB, src string, sport uint16, dst string, dport uint16) Tuple {
	t.Helper()
	tp, ok := tupleFromAddrs(netip.MustParseAddr(src), netip.MustParseAddr(dst), sport, dport)
	if !ok {
		t.Fatalf("bad tuple %s %s", src, dst)
	}
	return tp
}

// pkt is the packet.Packet the collector would hand to Observe.
func pkt(tp Tuple) *packet.Packet {
	return &packet.Packet{Family: tp.Family, Proto: packet.ProtoTCP, IPProto: 6, HasPorts: true, HasFlags: true,
		TCPFlags: packet.FlagACK | packet.FlagFIN, Src: tp.Src, Dst: tp.Dst, SrcPort: tp.SrcPort, DstPort: tp.DstPort}
}

// fakeLooker answers lookups from a map keyed by the unordered key, as the
// kernel's table answers for either direction.
type fakeLooker struct {
	states map[flowKey]uint8
	err    error
	calls  int
}

func (f *fakeLooker) Lookup(tp *Tuple) (uint8, bool, error) {
	f.calls++
	if f.err != nil {
		return 0, false, f.err
	}
	s, ok := f.states[tp.key()]
	return s, ok, nil
}

// fakeClock is a settable now().
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func nopLogger() *slog.Logger { return promslog.NewNopLogger() }

func testConfig() Config {
	return Config{Groups: []classify.Group{0, 5}, Window: DefaultWindow, Hold: DefaultHold, MaxFlows: 16,
		LookupsPerSecond: 10, QueueSize: 8, SysctlDir: "/nonexistent"}
}

// destroyMessage builds the netlink message the kernel sends for a conntrack
// DESTROY event (ctnetlink_conntrack_event), with the attributes a TCP
// DESTROY carries: both tuples, status, id, protoinfo with the state, and the
// timestamps when stop is not zero. proto 17 builds a UDP flow.
func destroyMessage(t testing.TB, proto uint8, src string, sport uint16, dst string, dport uint16, stop time.Time) netlink.Message {
	return eventMessage(t, 2, false, proto, src, sport, dst, dport, stop)
}

// eventMessage builds a conntrack event of message type msg (0 NEW/UPDATE, 2
// DELETE); future adds attributes this kernel does not send (a new
// CTA_PROTOINFO_TCP child and a new top-level attribute), as a newer kernel
// might.
func eventMessage(t testing.TB, msg uint16, future bool, proto uint8, src string, sport uint16, dst string, dport uint16, stop time.Time) netlink.Message {
	t.Helper()
	s, d := netip.MustParseAddr(src), netip.MustParseAddr(dst)
	family := byte(2)
	if s.Is6() {
		family = 10
	}
	ae := netlink.NewAttributeEncoder()
	ae.ByteOrder = binary.BigEndian
	tuple := func(typ uint16, a, b netip.Addr, pa, pb uint16) {
		ae.Nested(typ, func(ne *netlink.AttributeEncoder) error {
			ne.Nested(1, func(ie *netlink.AttributeEncoder) error { // CTA_TUPLE_IP
				if a.Is4() {
					ie.Bytes(1, a.AsSlice())
					ie.Bytes(2, b.AsSlice())
				} else {
					ie.Bytes(3, a.AsSlice())
					ie.Bytes(4, b.AsSlice())
				}
				return nil
			})
			ne.Nested(2, func(pe *netlink.AttributeEncoder) error { // CTA_TUPLE_PROTO
				pe.Uint8(1, proto)
				pe.Uint16(2, pa)
				pe.Uint16(3, pb)
				return nil
			})
			return nil
		})
	}
	tuple(1, s, d, sport, dport) // CTA_TUPLE_ORIG
	tuple(2, d, s, dport, sport) // CTA_TUPLE_REPLY
	ae.Uint32(3, 0x20e)          // CTA_STATUS: SEEN_REPLY|ASSURED|CONFIRMED|DYING
	if proto == 6 {
		ae.Nested(4, func(pe *netlink.AttributeEncoder) error { // CTA_PROTOINFO
			pe.Nested(1, func(te *netlink.AttributeEncoder) error { // CTA_PROTOINFO_TCP
				te.Uint8(1, tcpTimeWait)
				if future {
					te.Uint32(42, 7)
				}
				return nil
			})
			return nil
		})
	}
	ae.Uint32(7, 119)        // CTA_TIMEOUT
	ae.Uint32(12, 123456789) // CTA_ID
	if !stop.IsZero() {
		ae.Nested(20, func(te *netlink.AttributeEncoder) error { // CTA_TIMESTAMP
			te.Uint64(1, uint64(stop.Add(-3*time.Second).UnixNano()))
			te.Uint64(2, uint64(stop.UnixNano()))
			return nil
		})
	}
	if future {
		ae.Uint64(99, 1)
	}
	attrs, err := ae.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return netlink.Message{
		Header: netlink.Header{Type: netlink.HeaderType(1<<8 | msg)}, // NFNL_SUBSYS_CTNETLINK
		Data:   append([]byte{family, 0, 0, 0}, attrs...),
	}
}

// observe hands group g's reader a drop, as the collector does; a group
// the tracker does not serve is ignored.
func (t *Tracker) observe(g classify.Group, p *packet.Packet, tsNs int64) {
	if r := t.Reader(g); r != nil {
		r.Observe(p, tsNs)
	}
}

// flush ends group g's datagram.
func (t *Tracker) flush(g classify.Group) {
	if r := t.Reader(g); r != nil {
		r.Flush()
	}
}
