// Package packet decodes the network and transport headers of a logged packet
// without allocating. It knows nothing about NFLOG or Prometheus: it turns the
// bytes the kernel copied (starting at the IP header) into the few fields the
// classifier needs, and says precisely why when it cannot.
package packet

// Family is the network-layer family of a packet.
type Family uint8

const (
	FamilyOther Family = iota // unknown or not IP
	FamilyIPv4
	FamilyIPv6
)

// Proto is the transport protocol, as a closed vocabulary for labels.
type Proto uint8

const (
	ProtoOther Proto = iota
	ProtoTCP
	ProtoUDP
	ProtoICMP
	ProtoICMPv6
	ProtoSCTP
	ProtoUDPLite
	ProtoGRE
	ProtoESP
	ProtoUnknown // the packet is malformed: the transport could not be reached
	NumProtos
)

// Error says why a packet is malformed; ErrNone for a well-formed one.
type Error uint8

const (
	ErrNone               Error = iota
	ErrNoPayload                // nothing was copied (copy mode none/meta, or a zero copy range)
	ErrTruncatedIPHeader        // shorter than the fixed IPv4 (20) or IPv6 (40) header, or than IHL*4
	ErrBadVersion               // version nibble is not 4/6, or disagrees with the family the kernel reported
	ErrBadHeaderLength          // IPv4 IHL < 5
	ErrBadTotalLength           // IPv4 total length < IHL*4
	ErrTruncatedExtHeader       // an IPv6 extension header or AH runs past the copied bytes
	ErrTruncatedTCPHeader       // TCP header cut before the flags byte
	NumErrors
)

// TCP flag bits of the flags byte (offset 13 of the TCP header).
const (
	FlagFIN uint8 = 0x01
	FlagSYN uint8 = 0x02
	FlagRST uint8 = 0x04
	FlagPSH uint8 = 0x08
	FlagACK uint8 = 0x10
	FlagURG uint8 = 0x20
	FlagECE uint8 = 0x40
	FlagCWR uint8 = 0x80
)

// Packet holds the decoded fields. Decode overwrites every field.
type Packet struct {
	Family   Family
	Proto    Proto
	IPProto  uint8  // raw protocol number of the transport header (after extension headers / AH)
	Length   uint32 // IP datagram length from the header: IPv4 total length, IPv6 40 + payload length
	Fragment bool   // non-first fragment: there is no transport header
	HasPorts bool   // SrcPort and DstPort are valid (TCP, UDP, UDP-Lite, SCTP with >= 4 bytes present)
	SrcPort  uint16
	DstPort  uint16
	HasFlags bool     // TCPFlags is valid (TCP with the flags byte present)
	TCPFlags uint8    // raw TCP flags byte, ECE and CWR included
	Src, Dst [16]byte // addresses; IPv4 in the first 4 bytes, rest zero
	Err      Error    // non-zero: malformed, and why
}
