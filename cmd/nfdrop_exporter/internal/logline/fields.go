package logline

import (
	"bytes"

	"github.com/nfdrop/nfdrop_exporter/collector/packet"
)

// findIN locates the start of the kernel's "IN=<dev> OUT=" head. The LOG
// prefix has no automatic separator ("DROPIN=eth0" is a real line), so "IN="
// may follow any byte; it counts only when the interface name (no spaces) is
// followed by " OUT=", which also skips "IN=" inside a prefix or PHYSIN=.
func findIN(b []byte) (int, bool) {
	k, ok, _ := scanIN(b)
	return k, ok
}

// scanIN is findIN that also returns how many bytes it examined, so that a
// test can hold it to linear work. Every candidate "IN=" that follows the
// last one before the same space shares that space: remembering it keeps a
// line of repeated "IN=" linear (re-scanning to the space per candidate made
// a 1 MiB line take minutes).
func scanIN(b []byte) (k int, ok bool, examined int) {
	off, space := 0, -1 // space: index of the first ' ' at or after the last scan's start, or len(b)
	for {
		i := bytes.Index(b[off:], inKey)
		if i < 0 {
			return 0, false, examined + len(b) - off
		}
		examined += i + len(inKey)
		k = off + i
		j := k + len(inKey)
		if space < j {
			if s := bytes.IndexByte(b[j:], ' '); s >= 0 {
				space = j + s
				examined += s
			} else {
				space = len(b)
				examined += len(b) - j
			}
		}
		if bytes.HasPrefix(b[space:], outKey) {
			return k, true, examined
		}
		off = j // "IN=" cannot overlap itself
	}
}

var (
	inKey    = []byte("IN=")
	outKey   = []byte(" OUT=")
	srcKey   = []byte(" SRC=")
	lenKey   = []byte(" LEN=")
	protoKey = []byte("PROTO=")
	fragKey  = []byte("FRAG:")
)

// IP protocol numbers that LOG writes by name.
const (
	protoICMP    = 1
	protoTCP     = 6
	protoUDP     = 17
	protoGRE     = 47
	protoESP     = 50
	protoAH      = 51
	protoICMPv6  = 58
	protoSCTP    = 132
	protoUDPLite = 136
)

// protoOf is the label vocabulary of the IP protocol number, the same mapping
// packet.Decode applies.
func protoOf(n uint8) packet.Proto {
	switch n {
	case protoTCP:
		return packet.ProtoTCP
	case protoUDP:
		return packet.ProtoUDP
	case protoICMP:
		return packet.ProtoICMP
	case protoICMPv6:
		return packet.ProtoICMPv6
	case protoSCTP:
		return packet.ProtoSCTP
	case protoUDPLite:
		return packet.ProtoUDPLite
	case protoGRE:
		return packet.ProtoGRE
	case protoESP:
		return packet.ProtoESP
	}
	return packet.ProtoOther
}

// protoNumber maps the PROTO= value (nf_log_syslog.c writes TCP, UDP,
// UDPLITE, ICMP, ICMPv6, AH, ESP by name and anything else as a number).
func protoNumber(v []byte) (uint8, bool) {
	switch string(v) {
	case "TCP":
		return protoTCP, true
	case "UDP":
		return protoUDP, true
	case "UDPLITE":
		return protoUDPLite, true
	case "ICMP":
		return protoICMP, true
	case "ICMPv6":
		return protoICMPv6, true
	case "AH":
		return protoAH, true
	case "ESP":
		return protoESP, true
	case "SCTP":
		return protoSCTP, true
	}
	n, ok := atou(v, 255)
	return uint8(n), ok
}

// digits parses a run of decimal digits; callers bound its length so that it
// cannot overflow.
func digits(v []byte) (uint64, bool) {
	var n uint64
	for _, c := range v {
		if !isDigit(c) {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	return n, true
}

// atou parses a decimal number no larger than max.
func atou(v []byte, max uint32) (uint32, bool) {
	if len(v) == 0 || len(v) > 10 {
		return 0, false
	}
	n, ok := digits(v)
	if !ok || n > uint64(max) {
		return 0, false
	}
	return uint32(n), true
}

// tcpFlag maps the flag words LOG writes between RES= and URGP=.
func tcpFlag(w []byte) (uint8, bool) {
	switch string(w) {
	case "FIN":
		return packet.FlagFIN, true
	case "SYN":
		return packet.FlagSYN, true
	case "RST":
		return packet.FlagRST, true
	case "PSH":
		return packet.FlagPSH, true
	case "ACK":
		return packet.FlagACK, true
	case "URG":
		return packet.FlagURG, true
	case "ECE":
		return packet.FlagECE, true
	case "CWR":
		return packet.FlagCWR, true
	}
	return 0, false
}

// parseMessage parses the kernel message (header already removed).
func parseMessage(msg []byte, r *Record) (Status, Reason) {
	k, ok := findIN(msg)
	if !ok {
		return NotFirewall, ReasonNone
	}
	r.Prefix = msg[:k]
	// findIN guarantees "IN=<name> OUT=" here
	in := msg[k+len(inKey):]
	in = in[:bytes.IndexByte(in, ' ')]
	out := msg[k+len(inKey)+len(in)+len(outKey):]
	if e := bytes.IndexByte(out, ' '); e >= 0 {
		out = out[:e]
	}
	r.In, r.Out = in, out
	pk := &r.Packet
	*pk = packet.Packet{}

	var (
		v4, v6          bool // fields only one of the two formatters writes
		addrV4, addrV6  bool // address shapes, for lines with neither field set
		sawSrc          bool
		sawLen          bool
		sawProto        bool
		proto           uint8
		fragOff         uint32
		fragNext        bool // ulogd2 writes IPv6 "FRAG: <offset> ID: <id>"
		truncated       bool // "TRUNCATED": the IP header itself was not there
		incomplete      bool // "INCOMPLETE [n bytes]" after PROTO=: L4 header cut
		sawSPT, sawDPT  bool
		inFlags, sawEnd bool // between RES= and URGP=, URGP= seen
		sawRES          bool
		flags           uint8
		esp, unknownExt bool // IPv6 walk stopped at ESP / an unknown header
		arp             bool
		endsAtFlowLabel bool // nothing after FLOWLBL=: the IPv6 walk stopped silently
	)
	b := msg[k:]
	// Interface and MAC fields carry nothing the classifier needs, and of
	// the addresses only their shape (a fallback for the family): jump over
	// them to LEN= when SRC= is there (ARP and TRUNCATED lines have none).
	if j := bytes.Index(b, srcKey); j >= 0 {
		b = b[j+1:]
		val := b[len(srcKey)-1:]
		if e := bytes.IndexByte(val, ' '); e >= 0 {
			val = val[:e]
		}
		sawSrc = true
		addrV4, addrV6 = setSrc(pk, val)
		if k := bytes.Index(b, lenKey); k >= 0 {
			b = b[k+1:]
		}
	}
	jumped := false
tokens:
	for len(b) > 0 {
		if !jumped && sawLen && (v4 || v6) {
			// Family and length known: the rest up to PROTO= matters only
			// for fragments and the IPv6 header walk, so skip it unless it
			// has a FRAG: word.
			jumped = true
			if j := bytes.Index(b, protoKey); j >= 0 && (j == 0 || b[j-1] == ' ') && bytes.Index(b[:j], fragKey) < 0 {
				b = b[j:]
			}
		}
		i := bytes.IndexByte(b, ' ')
		if i < 0 {
			i = len(b)
		}
		tok := b[:i]
		for i < len(b) && b[i] == ' ' {
			i++
		}
		b = b[i:]
		if len(tok) == 0 {
			continue
		}
		endsAtFlowLabel = false
		if fragNext {
			fragNext = false
			n, ok := atou(tok, 65535)
			if !ok {
				return Unparsed, ReasonBadNumber
			}
			fragOff = n
			continue
		}
		eq := bytes.IndexByte(tok, '=')
		if eq < 0 {
			// bare word
			if inFlags {
				f, ok := tcpFlag(tok)
				if !ok && !sawRES {
					// no RES=: a word that is no flag means a cut line
					return Unparsed, ReasonNoFlags
				}
				if !ok {
					return Unparsed, ReasonBadFlag
				}
				flags |= f
				continue
			}
			switch {
			case len(tok) > 5 && string(tok[:5]) == "FRAG:" && !sawProto:
				n, ok := atou(tok[5:], 65535)
				if !ok {
					return Unparsed, ReasonBadNumber
				}
				fragOff = n
			case string(tok) == "FRAG:" && !sawProto:
				fragNext = true
			case string(tok) == "TRUNCATED" && !sawProto:
				truncated = true
			case string(tok) == "INCOMPLETE" && sawProto:
				incomplete = true
			case string(tok) == "ESP" && !sawProto:
				esp = true
			case string(tok) == "Unknown" && !sawProto:
				unknownExt = true
			case string(tok) == "ARP" && !sawSrc:
				arp = true
			}
			// Everything else is decoration the classifier does not need:
			// CE/DF/MF, "OPT (..)", "[16 bytes]", the halves of a redacted
			// address such as "SRC=(redacted IP)".
			continue
		}
		key, val := tok[:eq], tok[eq+1:]
		if !sawProto {
			switch string(key) {
			case "SRC":
				sawSrc = true
				addrV4, addrV6 = setSrc(pk, val)
			case "LEN":
				if !sawLen {
					n, ok := atou(val, 65535+40)
					if !ok {
						return Unparsed, ReasonBadNumber
					}
					pk.Length = n
					sawLen = true
				}
			case "TOS", "PREC", "TTL", "ID":
				v4 = true
			case "TC", "HOPLIMIT":
				v6 = true
			case "FLOWLBL":
				v6, endsAtFlowLabel = true, true
			case "PROTO":
				n, ok := protoNumber(val)
				if !ok {
					return Unparsed, ReasonBadProto
				}
				proto, sawProto = n, true
				if proto != protoTCP && proto != protoUDP && proto != protoUDPLite {
					// nothing after PROTO= changes the classification
					break tokens
				}
			}
			continue
		}
		switch string(key) {
		case "SPT":
			if !sawSPT {
				n, ok := atou(val, 65535)
				if !ok {
					return Unparsed, ReasonBadNumber
				}
				pk.SrcPort, sawSPT = uint16(n), true
			}
		case "DPT":
			if !sawDPT {
				n, ok := atou(val, 65535)
				if !ok {
					return Unparsed, ReasonBadNumber
				}
				pk.DstPort, sawDPT = uint16(n), true
				if sawSPT && proto != protoTCP {
					break tokens
				}
				// ulogd2's PRINTPKT writes the flag words after WINDOW=
				// with no RES= in front; the kernel writes none before RES=.
				if proto == protoTCP && !sawEnd {
					inFlags = true
				}
			}
		case "RES":
			if proto == protoTCP && !sawEnd {
				inFlags, sawRES = true, true
			}
		case "URGP":
			if inFlags {
				inFlags, sawEnd = false, true
				break tokens // OPT, UID, GID, MARK follow: not needed
			}
		}
	}

	switch {
	case v4 && !v6:
		pk.Family = packet.FamilyIPv4
	case v6 && !v4:
		pk.Family = packet.FamilyIPv6
	case addrV4 && !addrV6:
		pk.Family = packet.FamilyIPv4
	case addrV6 && !addrV4:
		pk.Family = packet.FamilyIPv6
	}
	if pk.Family == packet.FamilyIPv4 && addrV6 || pk.Family == packet.FamilyIPv6 && addrV4 {
		pk.Src = [16]byte{} // an address of the other family: no source
	}

	if truncated && !sawProto {
		pk.Err = packet.ErrTruncatedIPHeader
		pk.Proto = packet.ProtoUnknown
		return OK, ReasonNone
	}
	if !sawProto {
		switch {
		case arp && !sawSrc:
			pk.Family = packet.FamilyOther
			pk.Proto = packet.ProtoOther
			return OK, ReasonNone
		case pk.Family == packet.FamilyIPv6 && fragOff > 0:
			// a non-first fragment whose walk stopped at an extension header
			pk.Fragment = true
			pk.Proto = packet.ProtoOther
			return OK, ReasonNone
		case pk.Family == packet.FamilyIPv6 && unknownExt:
			pk.Proto = packet.ProtoOther
			return OK, ReasonNone
		case pk.Family == packet.FamilyIPv6 && (esp || endsAtFlowLabel):
			// dump_ipv6_packet stops silently at an ESP header
			// (it prints "ESP SPI=" only with --log-ip-options).
			pk.IPProto = protoESP
			pk.Proto = packet.ProtoESP
			return OK, ReasonNone
		}
		return Unparsed, ReasonNoProto
	}

	pk.IPProto = proto
	pk.Proto = protoOf(proto)
	if fragOff > 0 {
		// LOG writes only "PROTO=X" for a non-first fragment.
		pk.Fragment = true
		return OK, ReasonNone
	}
	switch proto {
	case protoTCP:
		if incomplete {
			// fewer than 20 bytes of TCP header: the flags are unknown
			pk.Err = packet.ErrTruncatedTCPHeader
			pk.Proto = packet.ProtoUnknown
			return OK, ReasonNone
		}
		if !sawSPT || !sawDPT {
			return Unparsed, ReasonNoPorts
		}
		if !sawEnd {
			return Unparsed, ReasonNoFlags
		}
		pk.HasPorts = true
		pk.HasFlags = true
		pk.TCPFlags = flags
	case protoUDP, protoUDPLite:
		if incomplete {
			pk.SrcPort, pk.DstPort = 0, 0
			return OK, ReasonNone
		}
		if !sawSPT || !sawDPT {
			return Unparsed, ReasonNoPorts
		}
		pk.HasPorts = true
	default:
		if sawSPT && sawDPT {
			pk.HasPorts = proto == protoSCTP
		}
	}
	if !pk.HasPorts {
		pk.SrcPort, pk.DstPort = 0, 0
	}
	return OK, ReasonNone
}
