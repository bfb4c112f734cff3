package packet

import "net/netip"

// NumFamilies is the number of Family values, for sizing tables indexed by Family.
const NumFamilies = int(FamilyIPv6) + 1

// The String methods return label values, so they are lookups into fixed
// arrays: no allocation, and nothing outside the closed label vocabulary
// (collector/README.md, Metrics). An out-of-range value (a programming
// error; Decode never produces one) reads as "other" rather than inventing
// a new label value.
var (
	familyNames = [NumFamilies]string{
		FamilyOther: "other",
		FamilyIPv4:  "ipv4",
		FamilyIPv6:  "ipv6",
	}
	protoNames = [NumProtos]string{
		ProtoOther:   "other",
		ProtoTCP:     "tcp",
		ProtoUDP:     "udp",
		ProtoICMP:    "icmp",
		ProtoICMPv6:  "icmpv6",
		ProtoSCTP:    "sctp",
		ProtoUDPLite: "udplite",
		ProtoGRE:     "gre",
		ProtoESP:     "esp",
		ProtoUnknown: "unknown",
	}
	// Values of the reason label of nfdrop_decode_errors_total.
	errorNames = [NumErrors]string{
		ErrNone:               "none",
		ErrNoPayload:          "no_payload",
		ErrTruncatedIPHeader:  "truncated_ip_header",
		ErrBadVersion:         "bad_version",
		ErrBadHeaderLength:    "bad_header_length",
		ErrBadTotalLength:     "bad_total_length",
		ErrTruncatedExtHeader: "truncated_ext_header",
		ErrTruncatedTCPHeader: "truncated_tcp_header",
	}
)

// String returns the family label value: "ipv4", "ipv6" or "other".
func (f Family) String() string {
	if int(f) < len(familyNames) {
		return familyNames[f]
	}
	return "other"
}

// String returns the proto label value; "unknown" for a malformed packet.
func (p Proto) String() string {
	if int(p) < len(protoNames) {
		return protoNames[p]
	}
	return "other"
}

// String returns the reason label value of nfdrop_decode_errors_total, or
// "none" for ErrNone.
func (e Error) String() string {
	if int(e) < len(errorNames) {
		return errorNames[e]
	}
	return "other"
}

// Malformed reports whether Decode found the packet malformed.
func (p *Packet) Malformed() bool { return p.Err != ErrNone }

// SrcAddr returns the source address as a netip.Addr (without allocating),
// the invalid Addr when the family is not IP.
func (p *Packet) SrcAddr() netip.Addr { return p.addr(&p.Src) }

// DstAddr returns the destination address as a netip.Addr (without allocating),
// the invalid Addr when the family is not IP.
func (p *Packet) DstAddr() netip.Addr { return p.addr(&p.Dst) }

func (p *Packet) addr(a *[16]byte) netip.Addr {
	switch p.Family {
	case FamilyIPv4:
		return netip.AddrFrom4([4]byte(a[:4]))
	case FamilyIPv6:
		return netip.AddrFrom16(*a)
	}
	return netip.Addr{}
}
