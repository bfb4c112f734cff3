package logline

import (
	"bytes"
	"net/netip"
	"unsafe"

	"github.com/nfdrop/nfdrop_exporter/collector/packet"
)

// setSrc stores the SRC= address in p.Src and reports its shape (the family
// fallback for lines without the header fields). An address that does not
// parse leaves Src zero: it only costs the line its place in the top
// sources, never its classification.
func setSrc(p *packet.Packet, val []byte) (v4, v6 bool) {
	if bytes.IndexByte(val, ':') >= 0 {
		// netip does not keep the string (a zone is copied), so a view of
		// the line's bytes is enough and allocates nothing.
		if a, err := netip.ParseAddr(unsafe.String(unsafe.SliceData(val), len(val))); err == nil && a.Is6() && a.Zone() == "" {
			p.Src = a.As16()
		}
		return false, true
	}
	if bytes.IndexByte(val, '.') < 0 {
		return false, false
	}
	if a, ok := parse4(val); ok {
		copy(p.Src[:4], a[:])
	}
	return true, false
}

// parse4 parses dotted-quad IPv4 (no leading zeros beyond "0"), the only form
// the kernel and ulogd2 write.
func parse4(b []byte) (a [4]byte, ok bool) {
	part, n, digits := 0, 0, 0
	for i := 0; i <= len(b); i++ {
		if i == len(b) || b[i] == '.' {
			if digits == 0 || part == 4 || digits > 1 && b[i-digits] == '0' {
				return a, false
			}
			a[part] = byte(n)
			part++
			n, digits = 0, 0
			continue
		}
		c := b[i]
		if !isDigit(c) {
			return a, false
		}
		n = n*10 + int(c-'0')
		digits++
		if n > 255 {
			return a, false
		}
	}
	return a, part == 4
}
