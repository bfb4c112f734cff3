package source

import (
	"encoding/binary"
	"errors"
	"unsafe"

	"github.com/nfdrop/nfdrop_exporter/collector/classify"
	"github.com/nfdrop/nfdrop_exporter/collector/internal/nlmsg"
	"github.com/nfdrop/nfdrop_exporter/collector/packet"
)

// NFULA_* attribute types (include/uapi/linux/netfilter/nfnetlink_log.h).
const (
	attrPacketHdr = 1
	attrTimestamp = 3
	attrPayload   = 9
	attrPrefix    = 10
	attrSeq       = 12
	attrSeqGlobal = 13 // conntrack reasons (ctlog): orders messages across groups
)

var errBadAttribute = errors.New("nflog attribute runs past the message")

// parseAttrs decodes the NFULA_* attributes of one NFLOG message into m without
// allocating. The type and length of each attribute are in the host's byte
// order in netlink and in the writer's in a pcap file: swapped says that is
// not the host's. Values are always network order. If lay is not nil, the
// walk is recorded in it (host order only), for attrLayout.parse.
func parseAttrs(b []byte, swapped bool, m *Message, lay *attrLayout) error {
	if lay != nil {
		lay.n = 0
	}
	a := nlmsg.NewAttrs(b)
	a.Swapped = swapped
	for a.Next() {
		if lay != nil {
			lay.record(a.Off, a.Type)
		}
		m.setAttr(a.Type, a.Data)
	}
	if a.Bad {
		if lay != nil {
			lay.n = 0
		}
		return errBadAttribute
	}
	if lay != nil {
		lay.finish(b)
	}
	return nil
}

// setAttr stores the value of one attribute the exporter uses.
func (m *Message) setAttr(typ uint16, v []byte) {
	switch typ {
	case attrPacketHdr:
		m.setPacketHdr(v)
	case attrTimestamp:
		m.setTimestamp(v)
	case attrPayload:
		m.Payload = v
	case attrPrefix:
		m.setPrefix(v)
	case attrSeq:
		m.setSeq(v)
	case attrSeqGlobal:
		m.setSeqGlobal(v)
	}
}

func (m *Message) setSeqGlobal(v []byte) {
	if len(v) >= 4 {
		m.SeqGlobal, m.HasSeqGlobal = binary.BigEndian.Uint32(v), true
	}
}

func (m *Message) setPacketHdr(v []byte) {
	if len(v) >= 3 {
		m.HwProtocol, m.HasHwProto, m.Hook = binary.BigEndian.Uint16(v), true, v[2]
	}
}

func (m *Message) setTimestamp(v []byte) {
	if len(v) >= 16 {
		sec := int64(binary.BigEndian.Uint64(v))
		usec := int64(binary.BigEndian.Uint64(v[8:]))
		m.TimestampNs, m.HasTimestamp = sec*1e9+usec*1e3, true
	}
}

func (m *Message) setPrefix(v []byte) {
	for len(v) > 0 && v[len(v)-1] == 0 {
		v = v[:len(v)-1]
	}
	m.Prefix = v
}

func (m *Message) setSeq(v []byte) {
	if len(v) >= 4 {
		m.Seq, m.HasSeq = binary.BigEndian.Uint32(v), true
	}
}

// resetMessage clears m for the next message of group g.
func resetMessage(m *Message, g classify.Group, family uint8) {
	*m = Message{Group: g, Family: family}
}

// maxLayoutAttrs bounds the attributes of a learned layout; the kernel puts
// at most ~20 in a message, an iptables NFLOG rule on INPUT 11.
const maxLayoutAttrs = 24

// attrLayout is the attribute layout of one kind of NFLOG message. Walking a
// message's attributes is a chain of dependent loads (each header's length
// gives the next header's offset): ~4 ns per attribute, most of the parse.
// But the kernel builds every message of one rule alike: the same attributes
// in the same order with the same lengths, except the last one, the payload,
// whose length varies. So once a message has been walked, the next one is
// checked against its layout with independent loads (every header at its
// recorded offset must be bit for bit the same, the last one only by type)
// and read at the recorded offsets. A message that does not match is walked,
// and its layout remembered instead. The result is the same either way: when
// the headers at those offsets match, they are exactly what the walk visits.
type attrLayout struct {
	n        int                    // attributes; 0 = nothing learned, -1 = recording gave up
	off      [maxLayoutAttrs]uint16 // offset of each attribute's header
	typ      [maxLayoutAttrs]uint16 // each attribute's type, flags stripped
	hdr      [maxLayoutAttrs]uint32 // each header as a native uint32 (length and raw type)
	lastType uint16                 // the last attribute's raw type
	// Where the values setAttr keeps are, but the last attribute's (offset 0:
	// absent; a value never starts at 0).
	packetHdr, timestamp, prefix, seq, payload valueSpan
	seqGlobal                                  valueSpan
}

// valueSpan is where an attribute's value is in a message.
type valueSpan struct{ off, end uint16 }

func (a *attrLayout) record(off int, typ uint16) {
	if a.n < 0 || a.n == maxLayoutAttrs || off > 0xffff-4 {
		a.n = -1 // too long to be worth learning
		return
	}
	a.off[a.n], a.typ[a.n] = uint16(off), typ
	a.n++
}

// finish completes a recorded walk over b, or forgets it.
func (a *attrLayout) finish(b []byte) {
	if a.n <= 0 {
		a.n = 0
		return
	}
	a.packetHdr, a.timestamp, a.prefix, a.seq, a.payload, a.seqGlobal = valueSpan{}, valueSpan{}, valueSpan{}, valueSpan{}, valueSpan{}, valueSpan{}
	var seen uint32
	for i := 0; i < a.n; i++ {
		o := a.off[i]
		a.hdr[i] = binary.NativeEndian.Uint32(b[o:])
		// The kernel puts each attribute in once. With a wanted one twice,
		// which value the walk keeps depends on both values (a later one
		// too short for its type does not replace an earlier one): such
		// messages are always walked.
		if t := a.typ[i]; t < 32 && wantedAttrs&(1<<t) != 0 {
			if seen&(1<<t) != 0 {
				a.n = 0
				return
			}
			seen |= 1 << t
		}
		if i == a.n-1 {
			a.lastType = binary.NativeEndian.Uint16(b[o+2:])
			break
		}
		v := valueSpan{o + 4, o + binary.NativeEndian.Uint16(b[o:])}
		switch a.typ[i] {
		case attrPacketHdr:
			a.packetHdr = v
		case attrTimestamp:
			a.timestamp = v
		case attrPrefix:
			a.prefix = v
		case attrSeq:
			a.seq = v
		case attrPayload:
			a.payload = v
		case attrSeqGlobal:
			a.seqGlobal = v
		}
	}
}

// parse decodes b into m as parseAttrs(b, false, m, nil) would. It reports
// false, leaving m untouched, when b does not have this layout.
func (a *attrLayout) parse(b []byte, m *Message) bool {
	n := a.n
	if n <= 0 || n > maxLayoutAttrs {
		return false
	}
	last := int(a.off[n-1])
	if len(b) < last+4 {
		return false
	}
	// The last header: the same raw type; any length that fits and leaves
	// no room for another attribute after it.
	l := int(binary.NativeEndian.Uint16(b[last:]))
	if binary.NativeEndian.Uint16(b[last+2:]) != a.lastType || l < 4 || l > len(b)-last || len(b)-last-((l+3)&^3) >= 4 {
		return false
	}
	// Every earlier header lies below last, inside b: no bounds checks.
	base := unsafePointer(b)
	var diff uint32
	for i, o := range a.off[:n-1] {
		diff |= *(*uint32)(unsafe.Add(base, o)) ^ a.hdr[i]
	}
	if diff != 0 {
		return false
	}
	if v := a.packetHdr; v.off != 0 {
		m.setPacketHdr(b[v.off:v.end])
	}
	if v := a.timestamp; v.off != 0 {
		m.setTimestamp(b[v.off:v.end])
	}
	if v := a.prefix; v.off != 0 {
		m.setPrefix(b[v.off:v.end])
	}
	if v := a.seq; v.off != 0 {
		m.setSeq(b[v.off:v.end])
	}
	if v := a.payload; v.off != 0 {
		m.Payload = b[v.off:v.end]
	}
	if v := a.seqGlobal; v.off != 0 {
		m.setSeqGlobal(b[v.off:v.end])
	}
	m.setAttr(a.typ[n-1], b[last+4:last+l])
	return true
}

// wantedAttrs is the set of attribute types setAttr keeps.
const wantedAttrs = 1<<attrPacketHdr | 1<<attrTimestamp | 1<<attrPayload | 1<<attrPrefix | 1<<attrSeq | 1<<attrSeqGlobal

// Linux's protocol family and EtherType numbers, which NFLOG messages carry
// on every platform that reads them.
const (
	afInet   = 2
	afInet6  = 10
	ethPIP   = 0x0800
	ethPIPv6 = 0x86dd
)

// FamilyHint is the family the kernel says the message's packet has: the
// hook's protocol family, or for bridge/netdev hooks the link-layer protocol.
// The decoder trusts the IP version nibble where the hint says nothing.
func (m *Message) FamilyHint() packet.Family {
	switch m.Family {
	case afInet:
		return packet.FamilyIPv4
	case afInet6:
		return packet.FamilyIPv6
	}
	if m.HasHwProto {
		switch m.HwProtocol {
		case ethPIP:
			return packet.FamilyIPv4
		case ethPIPv6:
			return packet.FamilyIPv6
		}
	}
	return packet.FamilyOther
}
