package conntrack

import (
	"bytes"
	"net/netip"

	"github.com/nfdrop/nfdrop_exporter/collector/packet"
)

// Tuple is a TCP connection's address/port pair as one packet carried it.
// It is a fixed-size value so that the hold queue holds no pointers.
type Tuple struct {
	Src, Dst         [16]byte // IPv4 in the first 4 bytes, rest zero (as packet.Packet)
	SrcPort, DstPort uint16
	Family           packet.Family
}

// flowKey identifies a flow regardless of direction: the lower (address,
// port) end comes first. A conntrack entry picked up mid-stream can have its
// ORIGINAL tuple server→client, and a late packet can come
// from either end, so both must map to the same key.
type flowKey struct {
	a, b   [16]byte
	pa, pb uint16
	family packet.Family
}

// key returns the unordered key of t.
func (t *Tuple) key() flowKey {
	c := bytes.Compare(t.Src[:], t.Dst[:])
	if c < 0 || (c == 0 && t.SrcPort <= t.DstPort) {
		return flowKey{a: t.Src, b: t.Dst, pa: t.SrcPort, pb: t.DstPort, family: t.Family}
	}
	return flowKey{a: t.Dst, b: t.Src, pa: t.DstPort, pb: t.SrcPort, family: t.Family}
}

// tupleFromAddrs builds a Tuple from conntrack's netip addresses. ok is false
// for anything that is not a pair of IPv4 or a pair of IPv6 addresses.
func tupleFromAddrs(src, dst netip.Addr, sport, dport uint16) (t Tuple, ok bool) {
	src, dst = src.Unmap(), dst.Unmap()
	switch {
	case src.Is4() && dst.Is4():
		t.Family = packet.FamilyIPv4
		s, d := src.As4(), dst.As4()
		copy(t.Src[:4], s[:])
		copy(t.Dst[:4], d[:])
	case src.Is6() && dst.Is6():
		t.Family = packet.FamilyIPv6
		t.Src, t.Dst = src.As16(), dst.As16()
	default:
		return t, false
	}
	t.SrcPort, t.DstPort = sport, dport
	return t, true
}

// addrs returns the tuple's addresses as netip values (for lookups).
func (t *Tuple) addrs() (src, dst netip.Addr) {
	if t.Family == packet.FamilyIPv4 {
		return netip.AddrFrom4([4]byte(t.Src[:4])), netip.AddrFrom4([4]byte(t.Dst[:4]))
	}
	return netip.AddrFrom16(t.Src), netip.AddrFrom16(t.Dst)
}
