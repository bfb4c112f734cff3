package packet

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// Expected-value constructors. Each sets every field it is about, so a table
// row reads as the whole expected Packet.

// ok returns a well-formed packet of family f with the lab addresses.
func ok(f Family, proto Proto, ipproto uint8, length uint32) Packet {
	p := Packet{Family: f, Proto: proto, IPProto: ipproto, Length: length}
	switch f {
	case FamilyIPv4:
		p.Src, p.Dst = wantSrc4, wantDst4
	case FamilyIPv6:
		p.Src, p.Dst = wantSrc6, wantDst6
	}
	return p
}

func withPorts(p Packet, sport, dport uint16) Packet {
	p.HasPorts, p.SrcPort, p.DstPort = true, sport, dport
	return p
}

func withTCP(p Packet, sport, dport uint16, flags uint8) Packet {
	p = withPorts(p, sport, dport)
	p.HasFlags, p.TCPFlags = true, flags
	return p
}

func fragment(p Packet) Packet {
	p.Fragment = true
	return p
}

// bad is a malformed packet whose fixed IP header was not usable: no
// addresses, no length.
func bad(f Family, e Error) Packet {
	return Packet{Family: f, Proto: ProtoUnknown, Err: e}
}

// badAfterHeader is a malformed packet whose fixed IP header was read.
func badAfterHeader(f Family, e Error, ipproto uint8, length uint32) Packet {
	p := ok(f, ProtoUnknown, ipproto, length)
	p.Err = e
	return p
}

type decodeCase struct {
	name string
	in   []byte
	hint Family
	want Packet
}

// decodeCases is shared with the fuzz seed corpus and the benchmarks.
func decodeCases() []decodeCase {
	const (
		v4, v6, unk = FamilyIPv4, FamilyIPv6, FamilyOther
	)
	syn := tcp(40000, 443, FlagSYN, nil)
	finAck := tcp(443, 51000, FlagFIN|FlagACK, tcpMSS)
	udp53 := udp(5353, 53, []byte("query"))

	chainV6 := cat(
		optsHdr(43, 1),     // hop-by-hop -> routing
		routing(60, 0, 3),  // routing type 0 -> destination options
		optsHdr(44, 2),     // destination options -> fragment
		frag6(51, 0, true), // first fragment -> AH
		ah(6, 4),           // AH -> TCP
		tcp(443, 50000, FlagRST|FlagACK, nil),
	)
	chainV6Len := uint32(40 + len(chainV6))

	return []decodeCase{
		// --- IPv4, every transport ---
		{"v4 tcp syn", ip4(6, nil, syn), unk, withTCP(ok(v4, ProtoTCP, 6, 40), 40000, 443, FlagSYN)},
		{"v4 tcp syn hint v4", ip4(6, nil, syn), v4, withTCP(ok(v4, ProtoTCP, 6, 40), 40000, 443, FlagSYN)},
		{"v4 tcp ece cwr syn raw byte", ip4(6, nil, tcp(1, 2, FlagSYN|FlagECE|FlagCWR, nil)), unk,
			withTCP(ok(v4, ProtoTCP, 6, 40), 1, 2, 0xc2)},
		{"v4 tcp all flags", ip4(6, nil, tcp(1, 2, 0xff, nil)), unk, withTCP(ok(v4, ProtoTCP, 6, 40), 1, 2, 0xff)},
		{"v4 tcp null flags", ip4(6, nil, tcp(1, 2, 0, nil)), unk, withTCP(ok(v4, ProtoTCP, 6, 40), 1, 2, 0)},
		{"v4 tcp with tcp options", ip4(6, nil, finAck), unk, withTCP(ok(v4, ProtoTCP, 6, 44), 443, 51000, FlagFIN|FlagACK)},
		{"v4 options nops", ip4(6, opt4NOPs, syn), unk, withTCP(ok(v4, ProtoTCP, 6, 44), 40000, 443, FlagSYN)},
		{"v4 options router alert", ip4(17, opt4RouterAlert, udp53), unk, withPorts(ok(v4, ProtoUDP, 17, 24+13), 5353, 53)},
		{"v4 options ihl 15", ip4(6, opt4Max, syn), unk, withTCP(ok(v4, ProtoTCP, 6, 80), 40000, 443, FlagSYN)},
		{"v4 udp", ip4(17, nil, udp53), unk, withPorts(ok(v4, ProtoUDP, 17, 33), 5353, 53)},
		{"v4 udplite", ip4(136, nil, udp(7, 8, nil)), unk, withPorts(ok(v4, ProtoUDPLite, 136, 28), 7, 8)},
		{"v4 sctp", ip4(132, nil, sctp(36412, 38412)), unk, withPorts(ok(v4, ProtoSCTP, 132, 32), 36412, 38412)},
		{"v4 icmp", ip4(1, nil, icmp(8, 0)), unk, ok(v4, ProtoICMP, 1, 28)},
		{"v4 icmpv6 number", ip4(58, nil, icmp(128, 0)), unk, ok(v4, ProtoICMPv6, 58, 28)},
		{"v4 gre", ip4(47, nil, gre()), unk, ok(v4, ProtoGRE, 47, 24)},
		{"v4 esp", ip4(50, nil, esp(16)), unk, ok(v4, ProtoESP, 50, 44)},
		{"v4 ospf is other", ip4(89, nil, make([]byte, 24)), unk, ok(v4, ProtoOther, 89, 44)},
		{"v4 igmp is other", ip4(2, nil, make([]byte, 8)), unk, ok(v4, ProtoOther, 2, 28)},
		{"v4 proto 255 is other", ip4(255, nil, nil), unk, ok(v4, ProtoOther, 255, 20)},
		// IPv6 extension header numbers are not walked in IPv4.
		{"v4 routing number not walked", ip4(43, nil, routing(6, 0, 1)), unk, ok(v4, ProtoOther, 43, 28)},
		{"v4 hop-by-hop number not walked", ip4(0, nil, optsHdr(6, 1)), unk, ok(v4, ProtoOther, 0, 28)},
		{"v4 fragment number not walked", ip4(44, nil, frag6(6, 0, false)), unk, ok(v4, ProtoOther, 44, 28)},

		// --- IPv4 AH ---
		{"v4 ah tcp", ip4(51, nil, cat(ah(6, 4), syn)), unk, withTCP(ok(v4, ProtoTCP, 6, 64), 40000, 443, FlagSYN)},
		{"v4 ah minimal 8 bytes udp", ip4(51, nil, cat(ah(17, 0), udp53)), unk, withPorts(ok(v4, ProtoUDP, 17, 20+8+13), 5353, 53)},
		{"v4 ah ah icmp", ip4(51, nil, cat(ah(51, 1), ah(1, 3), icmp(0, 0))), unk, ok(v4, ProtoICMP, 1, 20+12+20+8)},
		{"v4 ah esp", ip4(51, nil, cat(ah(50, 1), esp(4))), unk, ok(v4, ProtoESP, 50, 20+12+12)},
		{"v4 ah no next header", ip4(51, nil, ah(59, 1)), unk, ok(v4, ProtoOther, 59, 32)},

		// --- IPv4 fragments ---
		{"v4 first fragment is parsed", ip4(6, nil, syn, frag4(0, true)), unk, withTCP(ok(v4, ProtoTCP, 6, 40), 40000, 443, FlagSYN)},
		{"v4 df set", ip4(6, nil, syn, setU16(6, 0x4000)), unk, withTCP(ok(v4, ProtoTCP, 6, 40), 40000, 443, FlagSYN)},
		{"v4 non-first fragment tcp", ip4(6, nil, syn, frag4(185, true)), unk, fragment(ok(v4, ProtoTCP, 6, 40))},
		{"v4 last fragment udp", ip4(17, nil, []byte{1, 2, 3}, frag4(1, false)), unk, fragment(ok(v4, ProtoUDP, 17, 23))},
		{"v4 non-first fragment max offset", ip4(6, nil, nil, frag4(0x1fff, false)), unk, fragment(ok(v4, ProtoTCP, 6, 20))},
		{"v4 non-first fragment of ah", ip4(51, nil, []byte{6, 1}, frag4(3, false)), unk, fragment(ok(v4, ProtoOther, 51, 22))},
		{"v4 non-first fragment with options", ip4(1, opt4NOPs, nil, frag4(2, false)), unk, fragment(ok(v4, ProtoICMP, 1, 24))},

		// --- IPv4 cut by the copy range but complete enough ---
		{"v4 tcp cut after flags", prefix(ip4(6, nil, cat(syn, make([]byte, 100))), 34), unk,
			withTCP(ok(v4, ProtoTCP, 6, 140), 40000, 443, FlagSYN)},
		{"v4 tcp options cut", prefix(ip4(6, nil, finAck), 40), unk, withTCP(ok(v4, ProtoTCP, 6, 44), 443, 51000, FlagFIN|FlagACK)},
		{"v4 udp cut after ports", prefix(ip4(17, nil, udp53), 24), unk, withPorts(ok(v4, ProtoUDP, 17, 33), 5353, 53)},
		{"v4 udp cut before ports", prefix(ip4(17, nil, udp53), 23), unk, ok(v4, ProtoUDP, 17, 33)},
		{"v4 udp no l4 bytes", prefix(ip4(17, nil, udp53), 20), unk, ok(v4, ProtoUDP, 17, 33)},
		{"v4 udplite cut before ports", prefix(ip4(136, nil, udp(1, 2, nil)), 22), unk, ok(v4, ProtoUDPLite, 136, 28)},
		{"v4 sctp cut before ports", prefix(ip4(132, nil, sctp(1, 2)), 23), unk, ok(v4, ProtoSCTP, 132, 32)},
		{"v4 sctp cut after ports", prefix(ip4(132, nil, sctp(1, 2)), 24), unk, withPorts(ok(v4, ProtoSCTP, 132, 32), 1, 2)},
		{"v4 icmp no l4 bytes", prefix(ip4(1, nil, icmp(3, 3)), 20), unk, ok(v4, ProtoICMP, 1, 28)},
		{"v4 esp no l4 bytes", prefix(ip4(50, nil, esp(0)), 20), unk, ok(v4, ProtoESP, 50, 28)},
		{"v4 options cut ip options present", prefix(ip4(6, opt4Max, syn), 60), unk, badAfterHeader(v4, ErrTruncatedTCPHeader, 6, 80)},

		// --- IPv4 padding after the datagram is not transport data ---
		{"v4 trailing padding ignored", cat(ip4(17, nil, udp53), make([]byte, 10)), unk, withPorts(ok(v4, ProtoUDP, 17, 33), 5353, 53)},
		{"v4 udp total length excludes ports", ip4(17, nil, udp53, setTotal(22)), unk, ok(v4, ProtoUDP, 17, 22)},
		{"v4 tcp total length excludes flags", ip4(6, nil, syn, setTotal(33)), unk, badAfterHeader(v4, ErrTruncatedTCPHeader, 6, 33)},
		{"v4 total length larger than copied", ip4(6, nil, syn, setTotal(1500)), unk, withTCP(ok(v4, ProtoTCP, 6, 1500), 40000, 443, FlagSYN)},
		{"v4 total length 65535", ip4(6, nil, syn, setTotal(65535)), unk, withTCP(ok(v4, ProtoTCP, 6, 65535), 40000, 443, FlagSYN)},

		// --- IPv4 malformed ---
		{"empty unknown family", []byte{}, unk, bad(unk, ErrNoPayload)},
		{"nil unknown family", nil, unk, bad(unk, ErrNoPayload)},
		{"empty v4", nil, v4, bad(v4, ErrNoPayload)},
		{"empty v6", []byte{}, v6, bad(v6, ErrNoPayload)},
		{"hint out of range treated as unknown", nil, Family(200), bad(unk, ErrNoPayload)},
		{"v4 one byte", []byte{0x45}, unk, bad(v4, ErrTruncatedIPHeader)},
		{"v4 19 bytes", prefix(ip4(6, nil, syn), 19), unk, bad(v4, ErrTruncatedIPHeader)},
		{"v4 19 bytes hint v4", prefix(ip4(6, nil, syn), 19), v4, bad(v4, ErrTruncatedIPHeader)},
		{"v4 ihl 4", ip4(6, nil, syn, setIHL(4)), unk, badAfterHeader(v4, ErrBadHeaderLength, 0, 40)},
		{"v4 ihl 0", ip4(6, nil, syn, setIHL(0)), unk, badAfterHeader(v4, ErrBadHeaderLength, 0, 40)},
		{"v4 total length 19", ip4(6, nil, syn, setTotal(19)), unk, badAfterHeader(v4, ErrBadTotalLength, 0, 19)},
		{"v4 total length 0", ip4(6, nil, syn, setTotal(0)), unk, badAfterHeader(v4, ErrBadTotalLength, 0, 0)},
		{"v4 total length below ihl", ip4(6, opt4NOPs, syn, setTotal(22)), unk, badAfterHeader(v4, ErrBadTotalLength, 0, 22)},
		{"v4 ihl past copied bytes", prefix(ip4(6, opt4Max, syn), 59), unk, badAfterHeader(v4, ErrTruncatedIPHeader, 0, 80)},
		{"v4 ihl past datagram bytes", ip4(6, nil, nil, setIHL(6)), unk, badAfterHeader(v4, ErrBadTotalLength, 0, 20)},
		{"v4 tcp 13 bytes", prefix(ip4(6, nil, syn), 33), unk, badAfterHeader(v4, ErrTruncatedTCPHeader, 6, 40)},
		{"v4 tcp 0 bytes", prefix(ip4(6, nil, syn), 20), unk, badAfterHeader(v4, ErrTruncatedTCPHeader, 6, 40)},
		{"v4 tcp after ah 13 bytes", prefix(ip4(51, nil, cat(ah(6, 1), syn)), 45), unk, badAfterHeader(v4, ErrTruncatedTCPHeader, 6, 52)},
		{"v4 ah 1 byte", prefix(ip4(51, nil, cat(ah(6, 4), syn)), 21), unk, badAfterHeader(v4, ErrTruncatedExtHeader, 51, 64)},
		{"v4 ah cut", prefix(ip4(51, nil, cat(ah(6, 4), syn)), 43), unk, badAfterHeader(v4, ErrTruncatedExtHeader, 51, 64)},
		{"v4 ah no bytes", prefix(ip4(51, nil, cat(ah(6, 4), syn)), 20), unk, badAfterHeader(v4, ErrTruncatedExtHeader, 51, 64)},
		{"v4 ah length past datagram", ip4(51, nil, ah(6, 1), setTotal(28)), unk, badAfterHeader(v4, ErrTruncatedExtHeader, 51, 28)},
		{"v4 second ah cut", prefix(ip4(51, nil, cat(ah(51, 1), ah(1, 3), icmp(0, 0))), 20+12+19), unk,
			badAfterHeader(v4, ErrTruncatedExtHeader, 51, 60)},

		// --- version and hint ---
		{"version 5", ip4(6, nil, syn, setVersion(5)), unk, bad(unk, ErrBadVersion)},
		{"version 0", []byte{0x00}, unk, bad(unk, ErrBadVersion)},
		{"version 15 hint v4", ip4(6, nil, syn, setVersion(15)), v4, bad(v4, ErrBadVersion)},
		{"v4 bytes hint v6", ip4(6, nil, syn), v6, bad(v6, ErrBadVersion)},
		{"v6 bytes hint v4", ip6(6, syn), v4, bad(v4, ErrBadVersion)},
		{"v4 one byte hint v6", []byte{0x45}, v6, bad(v6, ErrBadVersion)},

		// --- IPv6, every transport ---
		{"v6 tcp syn", ip6(6, syn), unk, withTCP(ok(v6, ProtoTCP, 6, 60), 40000, 443, FlagSYN)},
		{"v6 tcp syn hint v6", ip6(6, syn), v6, withTCP(ok(v6, ProtoTCP, 6, 60), 40000, 443, FlagSYN)},
		{"v6 tcp options", ip6(6, tcp(22, 60000, FlagACK|FlagPSH, tcpOpts12)), unk, withTCP(ok(v6, ProtoTCP, 6, 72), 22, 60000, FlagACK|FlagPSH)},
		{"v6 udp", ip6(17, udp53), unk, withPorts(ok(v6, ProtoUDP, 17, 53), 5353, 53)},
		{"v6 udplite", ip6(136, udp(9, 10, []byte{1})), unk, withPorts(ok(v6, ProtoUDPLite, 136, 49), 9, 10)},
		{"v6 sctp", ip6(132, sctp(5060, 5061)), unk, withPorts(ok(v6, ProtoSCTP, 132, 52), 5060, 5061)},
		{"v6 icmpv6", ip6(58, icmp(128, 0)), unk, ok(v6, ProtoICMPv6, 58, 48)},
		{"v6 icmp number", ip6(1, icmp(8, 0)), unk, ok(v6, ProtoICMP, 1, 48)},
		{"v6 gre", ip6(47, gre()), unk, ok(v6, ProtoGRE, 47, 44)},
		{"v6 esp", ip6(50, esp(8)), unk, ok(v6, ProtoESP, 50, 56)},
		{"v6 esp no bytes", ip6(50, nil), unk, ok(v6, ProtoESP, 50, 40)},
		{"v6 no next header", ip6(59, nil), unk, ok(v6, ProtoOther, 59, 40)},
		{"v6 no next header with bytes", ip6(59, []byte{1, 2, 3}), unk, ok(v6, ProtoOther, 59, 43)},
		{"v6 mobility header is other", ip6(135, make([]byte, 8)), unk, ok(v6, ProtoOther, 135, 48)},
		{"v6 ipv4 in ipv6 is other", ip6(4, ip4(6, nil, syn)), unk, ok(v6, ProtoOther, 4, 80)},

		// --- IPv6 extension headers, one at a time ---
		{"v6 hop-by-hop tcp", ip6(0, cat(optsHdr(6, 1), syn)), unk, withTCP(ok(v6, ProtoTCP, 6, 68), 40000, 443, FlagSYN)},
		{"v6 hop-by-hop long udp", ip6(0, cat(optsHdr(17, 4), udp53)), unk, withPorts(ok(v6, ProtoUDP, 17, 40+32+13), 5353, 53)},
		{"v6 routing type 0 udp", ip6(43, cat(routing(17, 0, 3), udp53)), unk, withPorts(ok(v6, ProtoUDP, 17, 40+24+13), 5353, 53)},
		{"v6 routing type 4 tcp", ip6(43, cat(routing(6, 4, 5), syn)), unk, withTCP(ok(v6, ProtoTCP, 6, 40+40+20), 40000, 443, FlagSYN)},
		{"v6 destination options icmpv6", ip6(60, cat(optsHdr(58, 1), icmp(1, 4))), unk, ok(v6, ProtoICMPv6, 58, 56)},
		{"v6 first fragment tcp", ip6(44, cat(frag6(6, 0, true), syn)), unk, withTCP(ok(v6, ProtoTCP, 6, 68), 40000, 443, FlagSYN)},
		{"v6 atomic fragment udp", ip6(44, cat(frag6(17, 0, false), udp53)), unk, withPorts(ok(v6, ProtoUDP, 17, 40+8+13), 5353, 53)},
		{"v6 non-first fragment tcp", ip6(44, cat(frag6(6, 181, true), syn)), unk, fragment(ok(v6, ProtoTCP, 6, 68))},
		{"v6 last fragment udp", ip6(44, cat(frag6(17, 1, false), []byte{1, 2})), unk, fragment(ok(v6, ProtoUDP, 17, 50))},
		{"v6 non-first fragment max offset", ip6(44, frag6(58, 0x1fff, false)), unk, fragment(ok(v6, ProtoICMPv6, 58, 48))},
		{"v6 non-first fragment of dest opts", ip6(44, cat(frag6(60, 2, false), optsHdr(6, 1))), unk, fragment(ok(v6, ProtoOther, 60, 56))},
		{"v6 ah tcp", ip6(51, cat(ah(6, 4), syn)), unk, withTCP(ok(v6, ProtoTCP, 6, 84), 40000, 443, FlagSYN)},
		{"v6 ah esp", ip6(51, cat(ah(50, 4), esp(8))), unk, ok(v6, ProtoESP, 50, 40+24+16)},
		{"v6 hop-by-hop no next header", ip6(0, optsHdr(59, 1)), unk, ok(v6, ProtoOther, 59, 48)},
		{"v6 hop-by-hop esp", ip6(0, cat(optsHdr(50, 1), esp(4))), unk, ok(v6, ProtoESP, 50, 60)},

		// --- IPv6 chains ---
		{"v6 chain hbh routing dest frag ah tcp", ip6(0, chainV6), unk, withTCP(ok(v6, ProtoTCP, 6, chainV6Len), 443, 50000, FlagRST|FlagACK)},
		{"v6 chain hbh dest non-first fragment", ip6(0, cat(optsHdr(60, 1), optsHdr(44, 1), frag6(17, 100, false), make([]byte, 16))), unk,
			fragment(ok(v6, ProtoUDP, 17, 40+8+8+8+16))},
		{"v6 chain dest routing dest udp", ip6(60, cat(optsHdr(43, 1), routing(60, 4, 1), optsHdr(17, 1), udp53)), unk,
			withPorts(ok(v6, ProtoUDP, 17, 40+24+13), 5353, 53)},
		{"v6 chain frag ah ah sctp", ip6(44, cat(frag6(51, 0, true), ah(51, 2), ah(132, 4), sctp(1, 2))), unk,
			withPorts(ok(v6, ProtoSCTP, 132, 40+8+16+24+12), 1, 2)},

		// --- IPv6 cut by the copy range but complete enough ---
		{"v6 tcp cut after flags", prefix(ip6(6, cat(syn, make([]byte, 1000))), 54), unk, withTCP(ok(v6, ProtoTCP, 6, 1060), 40000, 443, FlagSYN)},
		{"v6 chain cut after tcp flags", prefix(ip6(0, chainV6), 40+len(chainV6)-6), unk,
			withTCP(ok(v6, ProtoTCP, 6, chainV6Len), 443, 50000, FlagRST|FlagACK)},
		{"v6 udp cut before ports", prefix(ip6(17, udp53), 43), unk, ok(v6, ProtoUDP, 17, 53)},
		{"v6 icmpv6 no bytes", prefix(ip6(58, icmp(1, 0)), 40), unk, ok(v6, ProtoICMPv6, 58, 48)},
		{"v6 non-first fragment cut after frag header", prefix(ip6(44, cat(frag6(6, 9, true), syn)), 48), unk, fragment(ok(v6, ProtoTCP, 6, 68))},

		// --- IPv6 payload length ---
		{"v6 trailing padding ignored", cat(ip6(6, syn), make([]byte, 7)), unk, withTCP(ok(v6, ProtoTCP, 6, 60), 40000, 443, FlagSYN)},
		{"v6 payload length excludes tcp flags", ip6(6, syn, setPayloadLen6(13)), unk, badAfterHeader(v6, ErrTruncatedTCPHeader, 6, 53)},
		{"v6 payload length excludes ext header", ip6(0, cat(optsHdr(6, 2), syn), setPayloadLen6(15)), unk, badAfterHeader(v6, ErrTruncatedExtHeader, 0, 55)},
		{"v6 payload length 0 walks copied bytes", ip6(6, syn, setPayloadLen6(0)), unk, withTCP(ok(v6, ProtoTCP, 6, 40), 40000, 443, FlagSYN)},
		{"v6 payload length max", ip6(6, syn, setPayloadLen6(65535)), unk, withTCP(ok(v6, ProtoTCP, 6, 65575), 40000, 443, FlagSYN)},

		// --- IPv6 malformed ---
		{"v6 one byte", []byte{0x60}, unk, bad(v6, ErrTruncatedIPHeader)},
		{"v6 39 bytes", prefix(ip6(6, syn), 39), unk, bad(v6, ErrTruncatedIPHeader)},
		{"v6 39 bytes hint v6", prefix(ip6(6, syn), 39), v6, bad(v6, ErrTruncatedIPHeader)},
		{"v6 tcp 13 bytes", prefix(ip6(6, syn), 53), unk, badAfterHeader(v6, ErrTruncatedTCPHeader, 6, 60)},
		{"v6 tcp 0 bytes", prefix(ip6(6, syn), 40), unk, badAfterHeader(v6, ErrTruncatedTCPHeader, 6, 60)},
		{"v6 hop-by-hop no bytes", prefix(ip6(0, cat(optsHdr(6, 1), syn)), 40), unk, badAfterHeader(v6, ErrTruncatedExtHeader, 0, 68)},
		{"v6 hop-by-hop 1 byte", prefix(ip6(0, cat(optsHdr(6, 1), syn)), 41), unk, badAfterHeader(v6, ErrTruncatedExtHeader, 0, 68)},
		{"v6 hop-by-hop 7 of 8 bytes", prefix(ip6(0, cat(optsHdr(6, 1), syn)), 47), unk, badAfterHeader(v6, ErrTruncatedExtHeader, 0, 68)},
		{"v6 hop-by-hop 8 of 16 bytes", prefix(ip6(0, cat(optsHdr(6, 2), syn)), 48), unk, badAfterHeader(v6, ErrTruncatedExtHeader, 0, 76)},
		{"v6 hop-by-hop whole, tcp 0 bytes", prefix(ip6(0, cat(optsHdr(6, 1), syn)), 48), unk, badAfterHeader(v6, ErrTruncatedTCPHeader, 6, 68)},
		{"v6 routing cut", prefix(ip6(43, cat(routing(17, 0, 3), udp53)), 63), unk, badAfterHeader(v6, ErrTruncatedExtHeader, 43, 77)},
		{"v6 destination options cut", prefix(ip6(60, cat(optsHdr(58, 1), icmp(1, 4))), 41), unk, badAfterHeader(v6, ErrTruncatedExtHeader, 60, 56)},
		{"v6 fragment 7 bytes", prefix(ip6(44, cat(frag6(6, 0, true), syn)), 47), unk, badAfterHeader(v6, ErrTruncatedExtHeader, 44, 68)},
		{"v6 fragment 3 bytes non-first", prefix(ip6(44, cat(frag6(6, 5, true), syn)), 43), unk, badAfterHeader(v6, ErrTruncatedExtHeader, 44, 68)},
		{"v6 ah 1 byte", prefix(ip6(51, cat(ah(6, 4), syn)), 41), unk, badAfterHeader(v6, ErrTruncatedExtHeader, 51, 84)},
		{"v6 ah cut", prefix(ip6(51, cat(ah(6, 4), syn)), 63), unk, badAfterHeader(v6, ErrTruncatedExtHeader, 51, 84)},
		{"v6 chain cut in routing", prefix(ip6(0, chainV6), 40+8+23), unk, badAfterHeader(v6, ErrTruncatedExtHeader, 43, chainV6Len)},
		{"v6 chain cut in dest", prefix(ip6(0, chainV6), 40+8+24+15), unk, badAfterHeader(v6, ErrTruncatedExtHeader, 60, chainV6Len)},
		{"v6 chain cut in fragment", prefix(ip6(0, chainV6), 40+8+24+16+7), unk, badAfterHeader(v6, ErrTruncatedExtHeader, 44, chainV6Len)},
		{"v6 chain cut in ah", prefix(ip6(0, chainV6), 40+8+24+16+8+23), unk, badAfterHeader(v6, ErrTruncatedExtHeader, 51, chainV6Len)},
		{"v6 chain cut before tcp flags", prefix(ip6(0, chainV6), 40+8+24+16+8+24+13), unk, badAfterHeader(v6, ErrTruncatedTCPHeader, 6, chainV6Len)},
	}
}

func TestDecode(t *testing.T) {
	for _, tc := range decodeCases() {
		t.Run(tc.name, func(t *testing.T) {
			in := append([]byte(nil), tc.in...)
			var got Packet
			// Pre-fill with garbage: Decode must overwrite every field.
			got = Packet{Family: 9, Proto: 77, IPProto: 99, Length: 1, Fragment: true, HasPorts: true,
				SrcPort: 1, DstPort: 1, HasFlags: true, TCPFlags: 1, Src: [16]byte{1}, Dst: [16]byte{1}, Err: 99}
			Decode(in, tc.hint, &got)
			if got != tc.want {
				t.Errorf("Decode(%x, %v):\n%s", tc.in, tc.hint, diffPackets(got, tc.want))
			}
			if string(in) != string(tc.in) {
				t.Errorf("Decode modified its input")
			}
		})
	}
}

// diffPackets lists the fields that differ, as got/want pairs.
func diffPackets(got, want Packet) string {
	var sb strings.Builder
	gv, wv := reflect.ValueOf(got), reflect.ValueOf(want)
	for i := 0; i < gv.NumField(); i++ {
		g, w := gv.Field(i).Interface(), wv.Field(i).Interface()
		if !reflect.DeepEqual(g, w) {
			fmt.Fprintf(&sb, "  %s: got %v, want %v\n", gv.Type().Field(i).Name, g, w)
		}
	}
	return sb.String()
}

// TestDecodeEveryPrefix decodes every prefix of every table input: truncation
// must only ever produce the reasons a cut can cause, and a prefix that still
// holds the fields must decode exactly like the whole packet.
func TestDecodeEveryPrefix(t *testing.T) {
	cutReasons := map[Error]bool{
		ErrNone: true, ErrNoPayload: true, ErrTruncatedIPHeader: true,
		ErrTruncatedExtHeader: true, ErrTruncatedTCPHeader: true,
	}
	for _, tc := range decodeCases() {
		var whole Packet
		Decode(tc.in, tc.hint, &whole)
		if whole.Err != ErrNone {
			continue
		}
		for n := 0; n <= len(tc.in); n++ {
			var p Packet
			Decode(tc.in[:n:n], tc.hint, &p)
			if !cutReasons[p.Err] {
				t.Errorf("%s: prefix %d: reason %v cannot come from a cut", tc.name, n, p.Err)
			}
			if p.Err == ErrNone {
				// A cut may lose ports of a non-TCP transport, nothing else.
				q := p
				if !q.HasPorts && whole.HasPorts && q.Proto != ProtoTCP {
					q.HasPorts, q.SrcPort, q.DstPort = true, whole.SrcPort, whole.DstPort
				}
				if q != whole {
					t.Errorf("%s: prefix %d decodes differently from the whole packet:\n%s", tc.name, n, diffPackets(p, whole))
				}
			}
		}
	}
}

func TestStrings(t *testing.T) {
	for _, tc := range []struct {
		got, want string
	}{
		{FamilyOther.String(), "other"},
		{FamilyIPv4.String(), "ipv4"},
		{FamilyIPv6.String(), "ipv6"},
		{Family(3).String(), "other"},
		{ProtoOther.String(), "other"},
		{ProtoTCP.String(), "tcp"},
		{ProtoUDP.String(), "udp"},
		{ProtoICMP.String(), "icmp"},
		{ProtoICMPv6.String(), "icmpv6"},
		{ProtoSCTP.String(), "sctp"},
		{ProtoUDPLite.String(), "udplite"},
		{ProtoGRE.String(), "gre"},
		{ProtoESP.String(), "esp"},
		{ProtoUnknown.String(), "unknown"},
		{NumProtos.String(), "other"},
		{ErrNone.String(), "none"},
		{ErrNoPayload.String(), "no_payload"},
		{ErrTruncatedIPHeader.String(), "truncated_ip_header"},
		{ErrBadVersion.String(), "bad_version"},
		{ErrBadHeaderLength.String(), "bad_header_length"},
		{ErrBadTotalLength.String(), "bad_total_length"},
		{ErrTruncatedExtHeader.String(), "truncated_ext_header"},
		{ErrTruncatedTCPHeader.String(), "truncated_tcp_header"},
		{NumErrors.String(), "other"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
	// Every in-range value has its own name: a constant added to packet.go
	// without a name here would read as "".
	for f := range Family(NumFamilies) {
		if f.String() == "" {
			t.Errorf("Family %d has no name", f)
		}
	}
	for p := range NumProtos {
		if p.String() == "" {
			t.Errorf("Proto %d has no name", p)
		}
	}
	for e := range NumErrors {
		if e.String() == "" {
			t.Errorf("Error %d has no name", e)
		}
	}
}

func TestAddrs(t *testing.T) {
	var p Packet
	Decode(ip4(6, nil, tcp(1, 2, FlagSYN, nil)), FamilyOther, &p)
	if got, want := p.SrcAddr().String()+" "+p.DstAddr().String(), "10.99.0.2 10.99.0.1"; got != want {
		t.Errorf("IPv4 addresses: got %s, want %s", got, want)
	}
	Decode(ip6(6, tcp(1, 2, FlagSYN, nil)), FamilyOther, &p)
	if got, want := p.SrcAddr().String()+" "+p.DstAddr().String(), "fd99::2 fd99::1"; got != want {
		t.Errorf("IPv6 addresses: got %s, want %s", got, want)
	}
	Decode([]byte{0x50}, FamilyOther, &p)
	if p.SrcAddr().IsValid() || p.DstAddr().IsValid() {
		t.Errorf("non-IP packet has valid addresses: %v %v", p.SrcAddr(), p.DstAddr())
	}
	if !p.Malformed() {
		t.Errorf("bad version packet not Malformed()")
	}
}
