package packet

import "encoding/binary"

// IP protocol numbers the decoder cares about (IANA "Assigned Internet Protocol Numbers").
const (
	ipprotoHopByHop = 0
	ipprotoICMP     = 1
	ipprotoTCP      = 6
	ipprotoUDP      = 17
	ipprotoRouting  = 43
	ipprotoFragment = 44
	ipprotoGRE      = 47
	ipprotoESP      = 50
	ipprotoAH       = 51
	ipprotoICMPv6   = 58
	ipprotoNoNext   = 59
	ipprotoDstOpts  = 60
	ipprotoSCTP     = 132
	ipprotoUDPLite  = 136
)

const (
	ipv4HeaderLen = 20
	ipv6HeaderLen = 40
	// The flags byte is at offset 13, so 14 bytes of TCP header are enough to
	// classify; a copy range that cuts the options or the rest is harmless.
	tcpFlagsEnd = 14
	// Source and destination port lead the TCP, UDP, UDP-Lite and SCTP headers.
	portsEnd = 4
)

// protoByNumber maps an IP protocol number to the label vocabulary. An array
// indexed by the byte keeps the lookup branch-free and allocation-free.
var protoByNumber = [256]Proto{
	ipprotoTCP:     ProtoTCP,
	ipprotoUDP:     ProtoUDP,
	ipprotoICMP:    ProtoICMP,
	ipprotoICMPv6:  ProtoICMPv6,
	ipprotoSCTP:    ProtoSCTP,
	ipprotoUDPLite: ProtoUDPLite,
	ipprotoGRE:     ProtoGRE,
	ipprotoESP:     ProtoESP,
	// every other entry is the zero value, ProtoOther
}

// Decode fills p from b, the bytes the kernel copied starting at the IP header
// (possibly cut short by the copy range). hint is the family the kernel
// reported; FamilyOther means unknown, in which case the version nibble
// decides.
//
// Decode overwrites every field of p, never allocates, never panics and never
// reads past len(b). A malformed packet has p.Err set and p.Proto ==
// ProtoUnknown; its Family is the hint when known, else the version nibble's
// when that is 4 or 6, else FamilyOther. Length, Src and Dst come from the
// fixed IP header and are filled whenever that header was copied whole and its
// version is right, even if a later check finds the packet malformed; IPProto
// is the last protocol number the walk reached (e.g. 6 for a truncated TCP
// header, 43 for a truncated routing header), 0 if the walk never started.
//
// Bytes beyond the datagram length in the header (IPv4 total length, IPv6 40 +
// payload length) are padding and are ignored, except that an IPv6 payload
// length of 0 (jumbogram, or a GSO super-packet seen on output) does not limit
// the walk.
func Decode(b []byte, hint Family, p *Packet) {
	*p = Packet{}
	if hint > FamilyIPv6 {
		hint = FamilyOther
	}
	p.Family = hint
	if len(b) == 0 {
		p.fail(ErrNoPayload)
		return
	}
	fam := FamilyOther
	switch b[0] >> 4 {
	case 4:
		fam = FamilyIPv4
	case 6:
		fam = FamilyIPv6
	}
	if hint == FamilyOther {
		p.Family = fam
	}
	if fam == FamilyOther || (hint != FamilyOther && hint != fam) {
		p.fail(ErrBadVersion)
		return
	}
	if fam == FamilyIPv4 {
		decodeIPv4(b, p)
	} else {
		decodeIPv6(b, p)
	}
}

// fail marks p malformed for reason e.
func (p *Packet) fail(e Error) {
	p.Err = e
	p.Proto = ProtoUnknown
}

func decodeIPv4(b []byte, p *Packet) {
	if len(b) < ipv4HeaderLen {
		p.fail(ErrTruncatedIPHeader)
		return
	}
	total := int(binary.BigEndian.Uint16(b[2:4]))
	p.Length = uint32(total)
	copy(p.Src[:4], b[12:16])
	copy(p.Dst[:4], b[16:20])

	ihl := int(b[0]&0x0f) * 4
	switch {
	case ihl < ipv4HeaderLen:
		p.fail(ErrBadHeaderLength)
		return
	case total < ihl:
		p.fail(ErrBadTotalLength)
		return
	case len(b) < ihl:
		p.fail(ErrTruncatedIPHeader)
		return
	}

	proto := b[9]
	if fragOff := binary.BigEndian.Uint16(b[6:8]) & 0x1fff; fragOff > 0 {
		p.Fragment = true
		p.IPProto = proto
		p.Proto = protoByNumber[proto]
		return
	}
	if len(b) > total {
		b = b[:total]
	}
	walk(b[ihl:], proto, false, p)
}

func decodeIPv6(b []byte, p *Packet) {
	if len(b) < ipv6HeaderLen {
		p.fail(ErrTruncatedIPHeader)
		return
	}
	payload := int(binary.BigEndian.Uint16(b[4:6]))
	p.Length = ipv6HeaderLen + uint32(payload)
	copy(p.Src[:], b[8:24])
	copy(p.Dst[:], b[24:40])
	if payload > 0 && len(b) > ipv6HeaderLen+payload {
		b = b[:ipv6HeaderLen+payload]
	}
	walk(b[ipv6HeaderLen:], b[6], true, p)
}

// walk follows the header chain starting with protocol number next at b[0]
// until it reaches a transport header, and decodes that. IPv6 extension
// headers are only followed when v6 is set; AH is followed in both families.
// Every header consumed is at least 8 bytes long, so the loop ends within
// len(b)/8 iterations.
func walk(b []byte, next uint8, v6 bool, p *Packet) {
	for {
		p.IPProto = next
		var hdrLen int
		switch {
		case v6 && (next == ipprotoHopByHop || next == ipprotoRouting || next == ipprotoDstOpts):
			// RFC 8200 4.3-4.6: Hdr Ext Len in 8-octet units, not counting the first 8.
			if len(b) < 2 {
				p.fail(ErrTruncatedExtHeader)
				return
			}
			hdrLen = (int(b[1]) + 1) * 8
		case v6 && next == ipprotoFragment:
			// RFC 8200 4.5: fixed 8 bytes; offset in the top 13 bits of bytes 2-3.
			if len(b) < 8 {
				p.fail(ErrTruncatedExtHeader)
				return
			}
			if binary.BigEndian.Uint16(b[2:4])>>3 > 0 {
				p.Fragment = true
				p.IPProto = b[0]
				p.Proto = protoByNumber[b[0]]
				return
			}
			hdrLen = 8
		case next == ipprotoAH:
			// RFC 4302 2.2: Payload Len in 4-octet units, minus 2.
			if len(b) < 2 {
				p.fail(ErrTruncatedExtHeader)
				return
			}
			hdrLen = (int(b[1]) + 2) * 4
		default:
			transport(b, next, p)
			return
		}
		if len(b) < hdrLen {
			p.fail(ErrTruncatedExtHeader)
			return
		}
		next = b[0]
		b = b[hdrLen:]
	}
}

// transport decodes the transport header of protocol proto at b[0]. ESP,
// No Next Header and unknown protocols end here without looking at b.
func transport(b []byte, proto uint8, p *Packet) {
	p.Proto = protoByNumber[proto]
	switch proto {
	case ipprotoTCP:
		if len(b) < tcpFlagsEnd {
			p.fail(ErrTruncatedTCPHeader)
			return
		}
		p.HasFlags = true
		p.TCPFlags = b[13]
	case ipprotoUDP, ipprotoUDPLite, ipprotoSCTP:
		if len(b) < portsEnd {
			// The copy range, not the packet, is short; ports are simply unknown.
			return
		}
	default:
		return
	}
	p.HasPorts = true
	p.SrcPort = binary.BigEndian.Uint16(b[0:2])
	p.DstPort = binary.BigEndian.Uint16(b[2:4])
}
