package packet

import "testing"

// Inputs for the hot-path measurements: the common case, and IPv6 with the
// longest walk the lab produces (hop-by-hop, destination options, first
// fragment, AH, TCP with options).
var (
	benchV4TCP = ip4(6, nil, tcp(51000, 443, FlagFIN|FlagACK, tcpMSS))
	benchV6Ext = ip6(0, cat(optsHdr(60, 1), optsHdr(44, 2), frag6(51, 0, true), ah(6, 4),
		tcp(51000, 443, FlagRST|FlagACK, tcpOpts12)))
)

func BenchmarkDecode(b *testing.B) {
	for _, bc := range []struct {
		name string
		in   []byte
		hint Family
	}{
		{"ipv4_tcp", benchV4TCP, FamilyIPv4},
		{"ipv6_ext_tcp", benchV6Ext, FamilyIPv6},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(bc.in)))
			var p Packet
			for b.Loop() {
				Decode(bc.in, bc.hint, &p)
			}
			if p.Err != ErrNone || !p.HasFlags {
				b.Fatalf("benchmark input does not decode: %+v", p)
			}
		})
	}
}

// TestDecodeAllocs holds the zero-allocation promise for every table input,
// malformed ones included: the hot path must not allocate on any packet.
func TestDecodeAllocs(t *testing.T) {
	for _, tc := range decodeCases() {
		var p Packet
		if n := testing.AllocsPerRun(100, func() { Decode(tc.in, tc.hint, &p) }); n != 0 {
			t.Errorf("%s: %v allocations per Decode, want 0", tc.name, n)
		}
	}
	var p Packet
	for _, in := range [][]byte{benchV4TCP, benchV6Ext} {
		if n := testing.AllocsPerRun(100, func() {
			Decode(in, FamilyOther, &p)
			_, _, _ = p.Family.String(), p.Proto.String(), p.Err.String()
			_, _ = p.SrcAddr(), p.DstAddr()
		}); n != 0 {
			t.Errorf("%v allocations per Decode+String+Addr, want 0", n)
		}
	}
}
