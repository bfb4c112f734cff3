package ebpf

import (
	"encoding/binary"

	"github.com/nfdrop/nfdrop_exporter/collector/packet"
	"golang.org/x/sys/unix"
)

// PayloadMax is how many bytes of each dropped packet, from its network
// header, a record carries at most.
const PayloadMax = 128

// Record is one packet netfilter dropped. Payload aliases the reader's
// buffer: the Record and its Payload are valid only during the call of the
// function given to Read.
type Record struct {
	// Payload is the packet from its network header: the IP header, its
	// extension headers and the transport header, up to PayloadMax bytes,
	// and never more than the kernel had in the packet's linear data.
	Payload []byte
	// Length is skb->len, the packet's length from skb->data; at the
	// netfilter hooks that is the IP datagram. Larger than len(Payload)
	// when the copy was cut.
	Length uint32
	// Family is packet.FamilyIPv4 or packet.FamilyIPv6.
	Family packet.Family
	// Ifindex is the packet's device (skb->dev) when it was dropped: the
	// input device at PREROUTING, INPUT and FORWARD, the output device at
	// POSTROUTING; 0 for a locally generated packet dropped at OUTPUT,
	// which has none yet. The index is of the watched namespace.
	Ifindex uint32
	// HasConntrack is true when conntrack had attached an entry.
	HasConntrack bool
	// CtInfo is conntrack's info about the packet (skb->_nfct & 7). With an
	// entry: CtEstablished, CtRelated, CtNew, CtEstablishedReply or
	// CtRelatedReply. Without one: CtUntracked for a packet a notrack rule
	// exempted, 0 when conntrack found it invalid or does not run.
	CtInfo CtInfo
	// Mark is the packet's firewall mark (skb->mark).
	Mark uint32
	// KernelTimeNs is when the packet was dropped, on the kernel's
	// CLOCK_BOOTTIME (bpf_ktime_get_boot_ns).
	KernelTimeNs uint64
	// TimestampNs is KernelTimeNs as Unix time in nanoseconds.
	TimestampNs int64
}

// AddressFamily is the record's family as an address family number, AF_INET
// (2) or AF_INET6 (10): the family an NFLOG message carries.
func (r *Record) AddressFamily() uint8 {
	if r.Family == packet.FamilyIPv6 {
		return unix.AF_INET6
	}
	return unix.AF_INET
}

// CtInfo is the kernel's enum ip_conntrack_info.
type CtInfo uint8

// The values of enum ip_conntrack_info (include/uapi/linux/netfilter/nf_conntrack_common.h).
const (
	CtEstablished      CtInfo = 0
	CtRelated          CtInfo = 1
	CtNew              CtInfo = 2
	CtEstablishedReply CtInfo = 3
	CtRelatedReply     CtInfo = 4
	CtUntracked        CtInfo = 7
)

var ctInfoNames = [8]string{"established", "related", "new", "established_reply", "related_reply", "ctinfo_5", "ctinfo_6", "untracked"}

func (c CtInfo) String() string { return ctInfoNames[c&7] }

// The layout of struct drop_record in kfree_skb.bpf.c (TestRecordLayout holds
// the two together).
const (
	recordSize    = 24 + PayloadMax
	offBootNs     = 0
	offIfindex    = 8
	offSkbLen     = 12
	offMark       = 16
	offCopied     = 20
	offFamily     = 22
	offCt         = 23
	offPayload    = 24
	ctHasEntry    = 0x80
	ctInfoMask    = 0x07
	familyIPv4Raw = 4
	familyIPv6Raw = 6
)

// decodeRecord fills r (all but TimestampNs) from one ring buffer sample. It
// reports false, leaving r in an undefined state, for a sample that is not a
// record this program writes.
func decodeRecord(b []byte, r *Record) bool {
	if len(b) != recordSize {
		return false
	}
	n := binary.NativeEndian.Uint16(b[offCopied:])
	if n > PayloadMax {
		return false
	}
	switch b[offFamily] {
	case familyIPv4Raw:
		r.Family = packet.FamilyIPv4
	case familyIPv6Raw:
		r.Family = packet.FamilyIPv6
	default:
		return false
	}
	ct := b[offCt]
	r.HasConntrack = ct&ctHasEntry != 0
	r.CtInfo = CtInfo(ct & ctInfoMask)
	r.KernelTimeNs = binary.NativeEndian.Uint64(b[offBootNs:])
	r.Ifindex = binary.NativeEndian.Uint32(b[offIfindex:])
	r.Length = binary.NativeEndian.Uint32(b[offSkbLen:])
	r.Mark = binary.NativeEndian.Uint32(b[offMark:])
	r.Payload = b[offPayload : offPayload+int(n) : offPayload+int(n)]
	return true
}
