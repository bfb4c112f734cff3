package packet

// Packet builders for the tests. They write headers byte by byte from the
// RFCs, not with the decoder's own constants, so a wrong constant in decode.go
// cannot cancel out in a test. Every builder returns a fresh slice.

import (
	"encoding/binary"
	"net/netip"
)

var (
	src4 = [4]byte{10, 99, 0, 2}
	dst4 = [4]byte{10, 99, 0, 1}
	src6 = netip.MustParseAddr("fd99::2").As16()
	dst6 = netip.MustParseAddr("fd99::1").As16()

	// As they appear in Packet.Src / Packet.Dst.
	wantSrc4 = [16]byte{10, 99, 0, 2}
	wantDst4 = [16]byte{10, 99, 0, 1}
	wantSrc6 = src6
	wantDst6 = dst6
)

func cat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// ip4 builds an IPv4 datagram: 20-byte header, then opts (a multiple of 4),
// then payload, with IHL and total length computed. mods run last, on the
// finished bytes, to break or tweak fields.
func ip4(proto uint8, opts, payload []byte, mods ...func([]byte)) []byte {
	hl := 20 + len(opts)
	b := make([]byte, hl+len(payload))
	b[0] = 0x40 | byte(hl/4)
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
	binary.BigEndian.PutUint16(b[4:], 0x1234) // identification
	b[8] = 64                                 // TTL
	b[9] = proto
	copy(b[12:16], src4[:])
	copy(b[16:20], dst4[:])
	copy(b[20:], opts)
	copy(b[hl:], payload)
	for _, m := range mods {
		m(b)
	}
	return b
}

// ip6 builds an IPv6 packet with payload length computed.
func ip6(next uint8, payload []byte, mods ...func([]byte)) []byte {
	b := make([]byte, 40+len(payload))
	b[0] = 0x60
	binary.BigEndian.PutUint16(b[4:], uint16(len(payload)))
	b[6] = next
	b[7] = 64 // hop limit
	copy(b[8:24], src6[:])
	copy(b[24:40], dst6[:])
	copy(b[40:], payload)
	for _, m := range mods {
		m(b)
	}
	return b
}

// Modifiers for ip4/ip6.
func setU16(i int, v uint16) func([]byte) {
	return func(b []byte) { binary.BigEndian.PutUint16(b[i:], v) }
}
func setIHL(ihl uint8) func([]byte)  { return func(b []byte) { b[0] = b[0]&0xf0 | ihl&0x0f } }
func setTotal(n uint16) func([]byte) { return setU16(2, n) }
func setVersion(v uint8) func([]byte) {
	return func(b []byte) { b[0] = v<<4 | b[0]&0x0f }
}

// frag4 sets the IPv4 flags/fragment field: offset in 8-byte units, MF bit.
func frag4(off uint16, mf bool) func([]byte) {
	v := off & 0x1fff
	if mf {
		v |= 0x2000
	}
	return setU16(6, v)
}

func setPayloadLen6(n uint16) func([]byte) { return setU16(4, n) }

// tcp builds a TCP header with the given flags byte; opts (a multiple of 4)
// set the data offset.
func tcp(sport, dport uint16, flags uint8, opts []byte) []byte {
	b := make([]byte, 20+len(opts))
	binary.BigEndian.PutUint16(b[0:], sport)
	binary.BigEndian.PutUint16(b[2:], dport)
	binary.BigEndian.PutUint32(b[4:], 1000) // seq
	binary.BigEndian.PutUint32(b[8:], 2000) // ack
	b[12] = byte(len(b)/4) << 4
	b[13] = flags
	binary.BigEndian.PutUint16(b[14:], 64240) // window
	copy(b[20:], opts)
	return b
}

// tcpMSS is a valid 4-byte TCP options block (MSS 1460).
var tcpMSS = []byte{2, 4, 0x05, 0xb4}

// tcpOpts12 is MSS, SACK-permitted, NOP, NOP, window scale 7, NOP: 12 bytes.
var tcpOpts12 = []byte{2, 4, 0x05, 0xb4, 4, 2, 1, 1, 3, 3, 7, 1}

// udp builds a UDP (or UDP-Lite: the same first 8 bytes) header plus data.
func udp(sport, dport uint16, data []byte) []byte {
	b := make([]byte, 8+len(data))
	binary.BigEndian.PutUint16(b[0:], sport)
	binary.BigEndian.PutUint16(b[2:], dport)
	binary.BigEndian.PutUint16(b[4:], uint16(len(b)))
	copy(b[8:], data)
	return b
}

// sctp builds the 12-byte SCTP common header.
func sctp(sport, dport uint16) []byte {
	b := make([]byte, 12)
	binary.BigEndian.PutUint16(b[0:], sport)
	binary.BigEndian.PutUint16(b[2:], dport)
	binary.BigEndian.PutUint32(b[4:], 0xdeadbeef) // verification tag
	return b
}

// icmp builds an 8-byte ICMP/ICMPv6 echo-like header.
func icmp(typ, code uint8) []byte { return []byte{typ, code, 0, 0, 0, 1, 0, 1} }

// gre builds a basic 4-byte GRE header carrying protocol 0x6558 (transparent
// Ethernet bridging; the content does not matter here).
func gre() []byte { return []byte{0, 0, 0x65, 0x58} }

// esp builds an ESP header (SPI, sequence) plus opaque bytes.
func esp(n int) []byte {
	b := make([]byte, 8+n)
	binary.BigEndian.PutUint32(b[0:], 0x100)
	binary.BigEndian.PutUint32(b[4:], 1)
	for i := 8; i < len(b); i++ {
		b[i] = byte(i * 37)
	}
	return b
}

// optsHdr builds a hop-by-hop or destination options header of n8*8 bytes,
// filled with one PadN option so that strict decoders accept it.
func optsHdr(next uint8, n8 int) []byte {
	b := make([]byte, n8*8)
	b[0] = next
	b[1] = byte(n8 - 1)
	b[2] = 1 // PadN
	b[3] = byte(len(b) - 4)
	return b
}

// routing builds a routing header of n8*8 bytes with the given routing type
// and segments left 0. Type 0 needs n8 odd to carry whole addresses.
func routing(next, typ uint8, n8 int) []byte {
	b := make([]byte, n8*8)
	b[0] = next
	b[1] = byte(n8 - 1)
	b[2] = typ
	for i := 8; i < len(b); i++ {
		b[i] = byte(i)
	}
	return b
}

// frag6 builds an IPv6 fragment header; off in 8-byte units.
func frag6(next uint8, off uint16, mf bool) []byte {
	b := make([]byte, 8)
	b[0] = next
	v := off << 3
	if mf {
		v |= 1
	}
	binary.BigEndian.PutUint16(b[2:], v)
	binary.BigEndian.PutUint32(b[4:], 0xcafe)
	return b
}

// ah builds an authentication header with payload-length field plen, i.e.
// (plen+2)*4 bytes: 12 fixed bytes then (plen-1)*4 bytes of ICV.
func ah(next, plen uint8) []byte {
	b := make([]byte, (int(plen)+2)*4)
	b[0] = next
	b[1] = plen
	binary.BigEndian.PutUint32(b[4:], 0x200) // SPI
	if len(b) >= 12 {                        // plen 0 is too short for the sequence number
		binary.BigEndian.PutUint32(b[8:], 7)
	}
	for i := 12; i < len(b); i++ {
		b[i] = 0xa5
	}
	return b
}

// ipv4 options: NOP x4 (IHL 6), and Router Alert (RFC 2113).
var (
	opt4NOPs        = []byte{1, 1, 1, 1}
	opt4RouterAlert = []byte{148, 4, 0, 0}
	opt4Max         = func() []byte { // 40 bytes: IHL 15
		b := make([]byte, 40)
		for i := range b {
			b[i] = 1
		}
		b[39] = 0 // end of options
		return b
	}()
)

func prefix(b []byte, n int) []byte { return b[:n:n] }
