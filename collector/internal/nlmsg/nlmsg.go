// Package nlmsg walks netlink messages and attributes in place: the one
// walker that the NFLOG reader, the conntrack event decoder and the conntrack
// lookup's reply parser share.
//
// It is hand-written rather than netlink.Message.UnmarshalBinary plus
// netlink.NewAttributeDecoder because the readers call it per packet and per
// event, and those allocate on every call (BenchmarkAttrs and
// BenchmarkAttributeDecoder compare the two).
package nlmsg

import (
	"encoding/binary"
	"math/bits"

	"golang.org/x/sys/unix"
)

// HeaderLen is the length of struct nlmsghdr.
const HeaderLen = unix.NLMSG_HDRLEN

// TypeMask strips NLA_F_NESTED and NLA_F_NET_BYTEORDER from an attribute type.
const TypeMask = 0x3fff

// Messages iterates the netlink messages of one datagram. Data aliases the
// datagram. A message whose length field is impossible ends the walk with Bad set.
type Messages struct {
	b     []byte
	Type  uint16
	Flags uint16
	Seq   uint32
	Data  []byte // the payload after the header
	Bad   bool   // a malformed header ended the walk
}

// NewMessages starts a walk over datagram b.
func NewMessages(b []byte) Messages { return Messages{b: b} }

// Next advances to the next message; it reports false at the end of the
// datagram or at a malformed header (Bad). Trailing bytes shorter than a
// header are ignored, as the kernel's own parser (nlmsg_ok) ignores them.
func (m *Messages) Next() bool {
	if len(m.b) < HeaderLen {
		return false
	}
	ne := binary.NativeEndian
	l := int(ne.Uint32(m.b))
	if l < HeaderLen || l > len(m.b) {
		m.Bad = true
		m.b = nil
		return false
	}
	m.Type, m.Flags, m.Seq = ne.Uint16(m.b[4:]), ne.Uint16(m.b[6:]), ne.Uint32(m.b[8:])
	m.Data = m.b[HeaderLen:l]
	if al := (l + unix.NLMSG_ALIGNTO - 1) &^ (unix.NLMSG_ALIGNTO - 1); al < len(m.b) {
		m.b = m.b[al:]
	} else {
		m.b = nil
	}
	return true
}

// Attrs iterates the attributes (struct nlattr TLVs) of b. Data aliases b;
// Off is the offset of the current attribute's header in b. Swapped says that
// the length and type fields are not in the host's byte order (an NFLOG pcap
// written on another host); values are whatever their producer wrote.
type Attrs struct {
	b       []byte
	next    int
	Swapped bool
	Type    uint16 // without the flag bits
	Data    []byte
	Off     int
	Bad     bool // an attribute's length was impossible: the walk ended there
	// Trailing: 1 to 3 bytes were left after the last attribute, too few
	// for a header. The kernel never leaves them; NFLOG's parser ignores
	// them, ctnetlink's treats them as a malformed message.
	Trailing bool
}

// NewAttrs starts a walk over b in host byte order.
func NewAttrs(b []byte) Attrs { return Attrs{b: b} }

// Next advances to the next attribute; it reports false at the end or at a
// malformed attribute (Bad).
func (a *Attrs) Next() bool {
	rest := len(a.b) - a.next
	if rest < 4 {
		a.Trailing = rest > 0
		return false
	}
	off := a.next
	l16, typ := binary.NativeEndian.Uint16(a.b[off:]), binary.NativeEndian.Uint16(a.b[off+2:])
	if a.Swapped {
		l16, typ = bits.ReverseBytes16(l16), bits.ReverseBytes16(typ)
	}
	l := int(l16)
	if l < 4 || l > rest {
		a.Bad = true
		a.next = len(a.b)
		return false
	}
	a.Type, a.Data, a.Off = typ&TypeMask, a.b[off+4:off+l], off
	a.next = min(off+(l+3)&^3, len(a.b))
	return true
}

// Prefix is the longest run of whole messages at the start of b that fits in
// max bytes: a shorter datagram the same readers accept (the tests cut their
// fuzz seeds with it).
func Prefix(b []byte, max int) []byte {
	m, end := NewMessages(b), 0
	for m.Next() {
		n := len(b) - len(m.b)
		if n > max {
			break
		}
		end = n
	}
	return b[:end]
}
