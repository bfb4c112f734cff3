package conntrack

import (
	"encoding/binary"
	"net/netip"

	"github.com/mdlayher/netlink"
)

// A DESTROY event is decoded here rather than with conntrack.Event.Unmarshal:
// the tracker needs three attributes of it, and the library decodes all of
// them (37 allocations per event) and rejects the whole event on any
// attribute it does not know (ProtoInfoTCP.unmarshal, reference §4.2), so one
// new kernel attribute would turn every event into a loss. This walker reads
// only CTA_TUPLE_ORIG and CTA_TIMESTAMP, skips everything else, and does not
// allocate.

// ctnetlink numbers (linux/netfilter/nfnetlink.h, nfnetlink_conntrack.h).
const (
	nfnlSubsysCTNetlink = 1
	ipctnlMsgCTNew      = 0
	ipctnlMsgCTDelete   = 2

	ctaTupleOrig = 1
	ctaTimestamp = 20

	ctaTupleIP    = 1
	ctaTupleProto = 2
	ctaIPv4Src    = 1
	ctaIPv4Dst    = 2
	ctaIPv6Src    = 3
	ctaIPv6Dst    = 4
	ctaProtoNum   = 1
	ctaProtoSrc   = 2
	ctaProtoDst   = 3

	ctaTimestampStop = 2

	nlaTypeMask = 0x3fff // without NLA_F_NESTED, NLA_F_NET_BYTEORDER
)

// attrs iterates the netlink attributes of a byte slice.
type attrs struct {
	b    []byte
	typ  uint16
	data []byte
	bad  bool // a malformed attribute ended the walk
}

func (a *attrs) next() bool {
	if len(a.b) < 4 {
		a.bad = a.bad || len(a.b) != 0
		return false
	}
	l := int(binary.NativeEndian.Uint16(a.b[0:2]))
	if l < 4 || l > len(a.b) {
		a.bad = true
		return false
	}
	a.typ = binary.NativeEndian.Uint16(a.b[2:4]) & nlaTypeMask
	a.data = a.b[4:l]
	if pad := (l + 3) &^ 3; pad < len(a.b) {
		a.b = a.b[pad:]
	} else {
		a.b = nil
	}
	return true
}

// destroyEvent is what the tracker takes from a conntrack event.
type destroyEvent struct {
	destroy bool // IPCTNL_MSG_CT_DELETE; false for NEW/UPDATE
	proto   uint8
	tuple   Tuple // ORIGINAL direction
	stop    int64 // CTA_TIMESTAMP_STOP, unix nanoseconds; 0 without nf_conntrack_timestamp
}

// decodeEvent decodes a ctnetlink event message. ok is false for a message
// that is not a conntrack event or lacks a complete original tuple.
func decodeEvent(m *netlink.Message, ev *destroyEvent) (ok bool) {
	*ev = destroyEvent{}
	t := uint16(m.Header.Type)
	if t>>8 != nfnlSubsysCTNetlink || len(m.Data) < 4 {
		return false
	}
	switch t & 0xff {
	case ipctnlMsgCTDelete:
		ev.destroy = true
	case ipctnlMsgCTNew:
	default:
		return false
	}
	top := attrs{b: m.Data[4:]} // after struct nfgenmsg
	var haveTuple bool
	for top.next() {
		switch top.typ {
		case ctaTupleOrig:
			haveTuple = decodeTuple(top.data, ev)
		case ctaTimestamp:
			ts := attrs{b: top.data}
			for ts.next() {
				if ts.typ == ctaTimestampStop && len(ts.data) == 8 {
					ev.stop = int64(binary.BigEndian.Uint64(ts.data))
				}
			}
		}
	}
	return haveTuple && !top.bad
}

func decodeTuple(b []byte, ev *destroyEvent) bool {
	var src, dst netip.Addr
	var haveProto bool
	tu := attrs{b: b}
	for tu.next() {
		switch tu.typ {
		case ctaTupleIP:
			ip := attrs{b: tu.data}
			for ip.next() {
				switch {
				case (ip.typ == ctaIPv4Src || ip.typ == ctaIPv4Dst) && len(ip.data) == 4:
					a := netip.AddrFrom4([4]byte(ip.data))
					if ip.typ == ctaIPv4Src {
						src = a
					} else {
						dst = a
					}
				case (ip.typ == ctaIPv6Src || ip.typ == ctaIPv6Dst) && len(ip.data) == 16:
					a := netip.AddrFrom16([16]byte(ip.data))
					if ip.typ == ctaIPv6Src {
						src = a
					} else {
						dst = a
					}
				}
			}
		case ctaTupleProto:
			var sport, dport uint16
			p := attrs{b: tu.data}
			for p.next() {
				switch {
				case p.typ == ctaProtoNum && len(p.data) == 1:
					ev.proto = p.data[0]
					haveProto = true
				case p.typ == ctaProtoSrc && len(p.data) == 2:
					sport = binary.BigEndian.Uint16(p.data)
				case p.typ == ctaProtoDst && len(p.data) == 2:
					dport = binary.BigEndian.Uint16(p.data)
				}
			}
			ev.tuple.SrcPort, ev.tuple.DstPort = sport, dport
		}
	}
	if !haveProto {
		return false
	}
	tp, ok := tupleFromAddrs(src, dst, ev.tuple.SrcPort, ev.tuple.DstPort)
	ev.tuple = tp
	return ok
}
