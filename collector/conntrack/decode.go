package conntrack

import (
	"encoding/binary"
	"net/netip"

	"github.com/nfdrop/nfdrop_exporter/collector/internal/nlmsg"
)

// A DESTROY event is decoded here rather than with conntrack.Event.Unmarshal:
// the tracker needs three attributes of it, and the library decodes all of
// them (37 allocations per event) and rejects the whole event on any
// attribute it does not know (ProtoInfoTCP.unmarshal), so one
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
)

// destroyEvent is what the tracker takes from a conntrack event.
type destroyEvent struct {
	destroy bool // IPCTNL_MSG_CT_DELETE; false for NEW/UPDATE
	proto   uint8
	tuple   Tuple // ORIGINAL direction
	stop    int64 // CTA_TIMESTAMP_STOP, unix nanoseconds; 0 without nf_conntrack_timestamp
}

// decodeEvent decodes a ctnetlink event message of netlink type t and
// payload data. ok is false for a message that is not a conntrack event or
// lacks a complete original tuple.
func decodeEvent(t uint16, data []byte, ev *destroyEvent) (ok bool) {
	*ev = destroyEvent{}
	if t>>8 != nfnlSubsysCTNetlink || len(data) < 4 {
		return false
	}
	switch t & 0xff {
	case ipctnlMsgCTDelete:
		ev.destroy = true
	case ipctnlMsgCTNew:
	default:
		return false
	}
	top := nlmsg.NewAttrs(data[4:]) // after struct nfgenmsg
	var haveTuple bool
	for top.Next() {
		switch top.Type {
		case ctaTupleOrig:
			haveTuple = decodeTuple(top.Data, ev)
		case ctaTimestamp:
			ts := nlmsg.NewAttrs(top.Data)
			for ts.Next() {
				if ts.Type == ctaTimestampStop && len(ts.Data) == 8 {
					ev.stop = int64(binary.BigEndian.Uint64(ts.Data))
				}
			}
		}
	}
	return haveTuple && !top.Bad && !top.Trailing
}

func decodeTuple(b []byte, ev *destroyEvent) bool {
	var src, dst netip.Addr
	var haveProto bool
	tu := nlmsg.NewAttrs(b)
	for tu.Next() {
		switch tu.Type {
		case ctaTupleIP:
			ip := nlmsg.NewAttrs(tu.Data)
			for ip.Next() {
				switch {
				case (ip.Type == ctaIPv4Src || ip.Type == ctaIPv4Dst) && len(ip.Data) == 4:
					a := netip.AddrFrom4([4]byte(ip.Data))
					if ip.Type == ctaIPv4Src {
						src = a
					} else {
						dst = a
					}
				case (ip.Type == ctaIPv6Src || ip.Type == ctaIPv6Dst) && len(ip.Data) == 16:
					a := netip.AddrFrom16([16]byte(ip.Data))
					if ip.Type == ctaIPv6Src {
						src = a
					} else {
						dst = a
					}
				}
			}
		case ctaTupleProto:
			var sport, dport uint16
			p := nlmsg.NewAttrs(tu.Data)
			for p.Next() {
				switch {
				case p.Type == ctaProtoNum && len(p.Data) == 1:
					ev.proto = p.Data[0]
					haveProto = true
				case p.Type == ctaProtoSrc && len(p.Data) == 2:
					sport = binary.BigEndian.Uint16(p.Data)
				case p.Type == ctaProtoDst && len(p.Data) == 2:
					dport = binary.BigEndian.Uint16(p.Data)
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
