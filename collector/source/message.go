package source

import (
	"encoding/binary"
	"errors"
	"math/bits"
	"time"
)

// NFULA_* attribute types (include/uapi/linux/netfilter/nfnetlink_log.h).
const (
	attrPacketHdr = 1
	attrTimestamp = 3
	attrPayload   = 9
	attrPrefix    = 10
	attrSeq       = 12
)

var errBadAttribute = errors.New("nflog attribute runs past the message")

// parseAttrs decodes the NFULA_* attributes of one NFLOG message into m without
// allocating. The type and length of each attribute are in the host's byte
// order in netlink and in the writer's in a pcap file: swapped says that is
// not the host's. Values are always network order.
func parseAttrs(b []byte, swapped bool, m *Message) error {
	for len(b) >= 4 {
		l16, typ := binary.NativeEndian.Uint16(b), binary.NativeEndian.Uint16(b[2:])
		if swapped {
			l16, typ = bits.ReverseBytes16(l16), bits.ReverseBytes16(typ)
		}
		l := int(l16)
		typ &= 0x3fff // strip NLA_F_NESTED / NLA_F_NET_BYTEORDER
		if l < 4 || l > len(b) {
			return errBadAttribute
		}
		v := b[4:l]
		switch typ {
		case attrPacketHdr:
			if len(v) >= 3 {
				m.HwProtocol, m.HasHwProto, m.Hook = binary.BigEndian.Uint16(v), true, v[2]
			}
		case attrTimestamp:
			if len(v) >= 16 {
				sec := int64(binary.BigEndian.Uint64(v))
				usec := int64(binary.BigEndian.Uint64(v[8:]))
				m.Timestamp, m.HasTimestamp = time.Unix(sec, usec*1000), true
			}
		case attrPayload:
			m.Payload = v
		case attrPrefix:
			for len(v) > 0 && v[len(v)-1] == 0 {
				v = v[:len(v)-1]
			}
			m.Prefix = v
		case attrSeq:
			if len(v) >= 4 {
				m.Seq, m.HasSeq = binary.BigEndian.Uint32(v), true
			}
		}
		al := (l + 3) &^ 3
		if al > len(b) {
			break
		}
		b = b[al:]
	}
	return nil
}

// resetMessage clears m for the next message of group g.
func resetMessage(m *Message, g uint16, family uint8) {
	*m = Message{Group: g, Family: family}
}
