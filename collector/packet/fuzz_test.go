package packet

import (
	"bytes"
	"testing"
)

var (
	familyVocab = map[string]bool{"ipv4": true, "ipv6": true, "other": true}
	protoVocab  = map[string]bool{"tcp": true, "udp": true, "icmp": true, "icmpv6": true, "sctp": true,
		"udplite": true, "gre": true, "esp": true, "other": true, "unknown": true}
	errorVocab = map[string]bool{"none": true, "no_payload": true, "truncated_ip_header": true, "bad_version": true,
		"bad_header_length": true, "bad_total_length": true, "truncated_ext_header": true, "truncated_tcp_header": true}
	portProtos = map[Proto]bool{ProtoTCP: true, ProtoUDP: true, ProtoUDPLite: true, ProtoSCTP: true}
)

// FuzzDecode checks the invariants the classifier and the metrics rely on,
// for any bytes and any hint, and that Decode agrees with the gopacket
// reference of diff_test.go whenever the hint does not decide the outcome.
func FuzzDecode(f *testing.F) {
	for _, tc := range decodeCases() {
		f.Add(tc.in, uint8(tc.hint))
	}
	f.Fuzz(func(t *testing.T, b []byte, hint uint8) {
		in := bytes.Clone(b)
		var p Packet
		Decode(b[:len(b):len(b)], Family(hint), &p)
		if !bytes.Equal(in, b) {
			t.Fatalf("Decode modified its input")
		}

		if (p.Err != ErrNone) != (p.Proto == ProtoUnknown) {
			t.Errorf("Err %v but Proto %v", p.Err, p.Proto)
		}
		if p.HasFlags && p.Proto != ProtoTCP {
			t.Errorf("HasFlags with Proto %v", p.Proto)
		}
		if p.HasPorts && !portProtos[p.Proto] {
			t.Errorf("HasPorts with Proto %v", p.Proto)
		}
		if p.Proto == ProtoTCP && !(p.HasFlags && p.HasPorts) && !p.Fragment {
			t.Errorf("well-formed, non-fragment TCP without flags or ports: %+v", p)
		}
		if p.Fragment && (p.HasPorts || p.HasFlags || p.Err != ErrNone) {
			t.Errorf("fragment with transport fields or an error: %+v", p)
		}
		if !p.HasPorts && (p.SrcPort != 0 || p.DstPort != 0) || !p.HasFlags && p.TCPFlags != 0 {
			t.Errorf("fields set without their Has flag: %+v", p)
		}
		if !familyVocab[p.Family.String()] || !protoVocab[p.Proto.String()] || !errorVocab[p.Err.String()] {
			t.Errorf("label outside the vocabulary: %q %q %q", p.Family, p.Proto, p.Err)
		}
		if p.Family >= Family(NumFamilies) || p.Proto >= NumProtos || p.Err >= NumErrors {
			t.Errorf("value out of range: %+v", p)
		}
		if p.Length > 65535+40 {
			t.Errorf("Length %d", p.Length)
		}
		if h := Family(hint); h == FamilyIPv4 || h == FamilyIPv6 {
			if p.Family != h {
				t.Errorf("hint %v but Family %v", h, p.Family)
			}
		}
		if p.Family == FamilyIPv4 && ([12]byte(p.Src[4:]) != [12]byte{} || [12]byte(p.Dst[4:]) != [12]byte{}) {
			t.Errorf("IPv4 address spills past 4 bytes: %x %x", p.Src, p.Dst)
		}

		// Overwrites everything: the same input into a dirty Packet.
		q := Packet{Family: 2, Proto: 3, IPProto: 4, Length: 5, Fragment: true, HasPorts: true, SrcPort: 6,
			DstPort: 7, HasFlags: true, TCPFlags: 8, Src: [16]byte{9}, Dst: [16]byte{10}, Err: 11}
		Decode(b, Family(hint), &q)
		if q != p {
			t.Errorf("result depends on the previous contents of *p:\n%s", diffPackets(q, p))
		}

		// Differential: without a usable hint (FamilyOther or out of range,
		// which Decode treats alike), the gopacket reference decides.
		if h := Family(hint); h != FamilyIPv4 && h != FamilyIPv6 {
			ref := reference(b)
			if ref.unclassified != "" {
				t.Errorf("gopacket error not classified by the reference: %s", ref.unclassified)
			} else if p != ref.want {
				t.Errorf("differs from the gopacket reference (notes %v):\n%s", ref.notes, diffPackets(p, ref.want))
			}
		}
	})
}
