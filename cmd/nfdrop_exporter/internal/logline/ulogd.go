package logline

import (
	"time"

	"github.com/nfdrop/nfdrop_exporter/collector/packet"
)

// ulogdJSON reads one object of ulogd2's JSON output plugin (a stack such as
// NFLOG → BASE → IFINDEX → IP2STR → JSON): the packet's fields as keys,
// "oob.family", "ip.protocol", "ip.totlen" / "ip6.payloadlen",
// "ip.fragoff" / "ip6.fragoff", "src_port", "dest_port", "tcp.syn" ...,
// "src_ip", "oob.prefix", "oob.in", "oob.out", "oob.time.sec". isUlogd is
// false when the object has none of ulogd2's keys. Strings are decoded into
// p.buf.
func (p *Parser) ulogdJSON(b []byte, r *Record) (st Status, reason Reason, isUlogd bool) {
	type span struct{ s, e int }
	var (
		family, proto        uint64
		sawFamily, sawProto  bool
		totlen, payload      uint64
		sawTotlen, sawPayld  bool
		frag4, frag6         uint64
		sport, dport         uint64
		sawSport, sawDport   bool
		flags                uint8
		sec, usec            uint64
		sawSec               bool
		prefix, in, out, src span
		sawPrefix            bool
	)
	p.buf = p.buf[:0]
	str := func(i int) (span, bool) {
		if b[i] != '"' {
			return span{}, false
		}
		s, e, _, ok := rawString(b, i)
		if !ok {
			return span{}, false
		}
		start := len(p.buf)
		if !p.unescape(b[s:e]) {
			return span{}, false
		}
		return span{start, len(p.buf)}, true
	}
	i := skipWS(b, 0) + 1 // the caller saw '{'
	for {
		i = skipWS(b, i)
		if i >= len(b) {
			return Unparsed, ReasonBadJSON, isUlogd
		}
		if b[i] == '}' {
			break
		}
		if b[i] == ',' {
			i++
			continue
		}
		if b[i] != '"' {
			return Unparsed, ReasonBadJSON, isUlogd
		}
		ks, ke, next, good := rawString(b, i)
		if !good {
			return Unparsed, ReasonBadJSON, isUlogd
		}
		key := b[ks:ke]
		i = skipWS(b, next)
		if i >= len(b) || b[i] != ':' {
			return Unparsed, ReasonBadJSON, isUlogd
		}
		i = skipWS(b, i+1)
		if i >= len(b) {
			return Unparsed, ReasonBadJSON, isUlogd
		}
		var (
			n     uint64
			isNum bool
		)
		if isDigit(b[i]) {
			j := i
			for j < len(b) && isDigit(b[j]) {
				j++
			}
			n, isNum = atou64(b[i:j])
		}
		ok := true
		switch string(key) {
		case "oob.family":
			family, sawFamily, isUlogd = n, isNum, true
		case "ip.protocol":
			proto, sawProto, isUlogd = n, isNum, true
		case "ip6.nexthdr":
			if !sawProto {
				proto, sawProto = n, isNum
			}
		case "ip.totlen":
			totlen, sawTotlen = n, isNum
		case "ip6.payloadlen", "ip6.payload_len":
			payload, sawPayld = n, isNum
		case "ip.fragoff":
			frag4 = n & 0x1fff // the field keeps the DF/MF bits
		case "ip6.fragoff":
			frag6 = n &^ 7 // offset in bytes; the low bits are the M flag
		case "src_port", "tcp.sport", "udp.sport", "sctp.sport":
			sport, sawSport = n, isNum
		case "dest_port", "tcp.dport", "udp.dport", "sctp.dport":
			dport, sawDport = n, isNum
		case "tcp.fin":
			flags |= flagIf(n, packet.FlagFIN)
		case "tcp.syn":
			flags |= flagIf(n, packet.FlagSYN)
		case "tcp.rst":
			flags |= flagIf(n, packet.FlagRST)
		case "tcp.psh":
			flags |= flagIf(n, packet.FlagPSH)
		case "tcp.ack":
			flags |= flagIf(n, packet.FlagACK)
		case "tcp.urg":
			flags |= flagIf(n, packet.FlagURG)
		case "oob.time.sec":
			sec, sawSec = n, isNum
		case "oob.time.usec":
			usec = n
		case "oob.prefix":
			prefix, ok = str(i)
			sawPrefix, isUlogd = ok, true
		case "oob.in":
			in, ok = str(i)
		case "oob.out":
			out, ok = str(i)
		case "src_ip", "ip.saddr.str", "ip.saddr":
			src, ok = str(i)
		}
		if !ok {
			return Unparsed, ReasonBadJSON, isUlogd
		}
		if i, ok = skipValue(b, i, 0); !ok {
			return Unparsed, ReasonBadJSON, isUlogd
		}
	}
	if !isUlogd {
		return NotFirewall, ReasonNone, false
	}
	if sawPrefix {
		r.Prefix = p.buf[prefix.s:prefix.e]
	}
	r.In, r.Out = p.buf[in.s:in.e], p.buf[out.s:out.e]
	if sawSec {
		r.TimeKind, r.Time = TimeWall, time.Unix(int64(sec), int64(usec%1e6)*1000)
	}
	pk := &r.Packet
	*pk = packet.Packet{}
	setSrc(pk, p.buf[src.s:src.e])
	switch {
	case !sawFamily:
		return Unparsed, ReasonNoProto, true
	case family == 2: // AF_INET
		pk.Family = packet.FamilyIPv4
		pk.Length = uint32(min(totlen, 65535))
	case family == 10: // AF_INET6
		pk.Family = packet.FamilyIPv6
		if sawPayld {
			pk.Length = uint32(min(payload, 65535)) + 40
		}
	default: // ARP, bridge without IP: no transport
		pk.Proto = packet.ProtoOther
		return OK, ReasonNone, true
	}
	if !sawProto || pk.Family == packet.FamilyIPv4 && !sawTotlen {
		// BASE stops before the addresses when the IP header is cut
		pk.Err = packet.ErrTruncatedIPHeader
		pk.Proto = packet.ProtoUnknown
		return OK, ReasonNone, true
	}
	if proto > 255 {
		return Unparsed, ReasonBadProto, true
	}
	pk.IPProto = uint8(proto)
	pk.Proto = protoOf(pk.IPProto)
	if frag4 > 0 || frag6 > 0 {
		pk.Fragment = true
		return OK, ReasonNone, true
	}
	if sport > 65535 || dport > 65535 {
		return Unparsed, ReasonBadNumber, true
	}
	ports := sawSport && sawDport
	switch pk.IPProto {
	case protoTCP:
		if !ports {
			// BASE found fewer than 20 bytes of TCP header
			pk.Err = packet.ErrTruncatedTCPHeader
			pk.Proto = packet.ProtoUnknown
			return OK, ReasonNone, true
		}
		pk.HasFlags, pk.TCPFlags = true, flags
	case protoUDP, protoUDPLite, protoSCTP:
	default:
		ports = false
	}
	if ports {
		pk.HasPorts, pk.SrcPort, pk.DstPort = true, uint16(sport), uint16(dport)
	}
	return OK, ReasonNone, true
}

func flagIf(n uint64, f uint8) uint8 {
	if n != 0 {
		return f
	}
	return 0
}
