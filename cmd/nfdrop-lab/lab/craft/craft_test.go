package craft

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// TestBytesAgainstGopacket decodes every crafted packet with gopacket (an
// independent implementation), checks the fields, and re-serializes the
// decoded layers with gopacket's own checksum computation: the bytes must be
// identical, which proves every checksum and length field.
func TestBytesAgainstGopacket(t *testing.T) {
	v4s, v4d := netip.MustParseAddr("10.99.0.2"), netip.MustParseAddr("10.99.0.1")
	v6s, v6d := netip.MustParseAddr("fd99::2"), netip.MustParseAddr("fd99::1")
	tests := []struct {
		name string
		p    Packet
	}{
		{"v4 tcp fin ack", Packet{Src: v4s, Dst: v4d, Proto: ProtoTCP, SrcPort: 40001, DstPort: 443, Flags: ACK | FIN, Window: 502, Seq: 1, Ack: 2, ID: 7}},
		{"v4 tcp xmas ece cwr odd payload", Packet{Src: v4s, Dst: v4d, Proto: ProtoTCP, SrcPort: 1, DstPort: 65535, Flags: 0xff, Payload: []byte("abc")}},
		{"v4 tcp null", Packet{Src: v4s, Dst: v4d, Proto: ProtoTCP, SrcPort: 40000, DstPort: 22}},
		{"v4 udp", Packet{Src: v4s, Dst: v4d, Proto: ProtoUDP, SrcPort: 40030, DstPort: 9999, Payload: []byte("query")}},
		{"v4 icmp echo", Packet{Src: v4s, Dst: v4d, Proto: ProtoICMP, SrcPort: 77, Seq: 3, Payload: []byte("ping!")}},
		{"v6 tcp rst", Packet{Src: v6s, Dst: v6d, Proto: ProtoTCP, SrcPort: 40002, DstPort: 443, Flags: RST}},
		{"v6 tcp ack psh payload", Packet{Src: v6s, Dst: v6d, Proto: ProtoTCP, SrcPort: 40004, DstPort: 8080, Flags: ACK | PSH, Window: 1024, Payload: []byte("GET / HTTP/1.1\r\n\r\n")}},
		{"v6 udp odd", Packet{Src: v6s, Dst: v6d, Proto: ProtoUDP, SrcPort: 9998, DstPort: 40031, Payload: []byte("x")}},
		{"v6 icmpv6 echo", Packet{Src: v6s, Dst: v6d, Proto: ProtoICMPv6, SrcPort: 9, Seq: 1, Payload: []byte("ping")}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := tc.p.Bytes()
			if err != nil {
				t.Fatal(err)
			}
			first := layers.LayerTypeIPv4
			if tc.p.Src.Is6() {
				first = layers.LayerTypeIPv6
			}
			pkt := gopacket.NewPacket(b, first, gopacket.Default)
			if el := pkt.ErrorLayer(); el != nil {
				t.Fatalf("gopacket: %v", el.Error())
			}
			var ser []gopacket.SerializableLayer
			var netl gopacket.NetworkLayer
			for _, l := range pkt.Layers() {
				switch l := l.(type) {
				case *layers.IPv4:
					netl = l
					ser = append(ser, l)
				case *layers.IPv6:
					netl = l
					ser = append(ser, l)
				case *layers.TCP:
					if l.SrcPort != layers.TCPPort(tc.p.SrcPort) || l.DstPort != layers.TCPPort(tc.p.DstPort) {
						t.Errorf("ports %d>%d", l.SrcPort, l.DstPort)
					}
					if got := b[len(b)-len(tc.p.Payload)-20+13]; got != tc.p.Flags {
						t.Errorf("flags %#x, want %#x", got, tc.p.Flags)
					}
					if l.Window != tc.p.Window {
						t.Errorf("window %d, want %d", l.Window, tc.p.Window)
					}
					_ = l.SetNetworkLayerForChecksum(netl)
					ser = append(ser, l)
				case *layers.UDP:
					_ = l.SetNetworkLayerForChecksum(netl)
					ser = append(ser, l)
				case *layers.ICMPv4:
					if l.TypeCode.Type() != layers.ICMPv4TypeEchoRequest {
						t.Errorf("icmp type %v", l.TypeCode)
					}
					ser = append(ser, l)
				case *layers.ICMPv6:
					if l.TypeCode.Type() != layers.ICMPv6TypeEchoRequest {
						t.Errorf("icmpv6 type %v", l.TypeCode)
					}
					_ = l.SetNetworkLayerForChecksum(netl)
					// gopacket's echo layer drops the echo data on
					// re-serialization: serialize the ICMPv6 body raw.
					ser = append(ser, l, gopacket.Payload(l.Payload))
				case *layers.ICMPv6Echo:
					if l.Identifier != tc.p.SrcPort || l.SeqNumber != uint16(tc.p.Seq) {
						t.Errorf("echo id/seq %d/%d", l.Identifier, l.SeqNumber)
					}
				case *gopacket.Payload:
					if !bytes.Equal(*l, tc.p.Payload) {
						t.Errorf("payload %q, want %q", *l, tc.p.Payload)
					}
					ser = append(ser, l)
				}
			}
			buf := gopacket.NewSerializeBuffer()
			if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{ComputeChecksums: true, FixLengths: true}, ser...); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(buf.Bytes(), b) {
				t.Errorf("crafted and gopacket-recomputed bytes differ:\n got  %x\n want %x", b, buf.Bytes())
			}
		})
	}
}

func TestBytesRejectsMixedFamilies(t *testing.T) {
	for _, p := range []Packet{
		{Src: netip.MustParseAddr("10.0.0.1"), Dst: netip.MustParseAddr("fd99::1"), Proto: ProtoTCP},
		{Src: netip.MustParseAddr("10.0.0.1"), Dst: netip.MustParseAddr("10.0.0.2"), Proto: ProtoICMPv6},
		{Src: netip.MustParseAddr("fd99::2"), Dst: netip.MustParseAddr("fd99::1"), Proto: 99},
	} {
		if _, err := p.Bytes(); err == nil {
			t.Errorf("%+v: no error", p)
		}
	}
}
