package classify

import (
	"strconv"
	"testing"

	"github.com/nfdrop/nfdrop_exporter/collector/packet"
)

// allFlags lists every combination of the six classic TCP flags with the flags
// label and class the package documentation gives it.
var allFlags = []struct {
	f     uint8
	label string
	class Class
}{
	{0x00, "NONE", ClassProbe},
	{0x01, "FIN", ClassProbe},
	{0x02, "SYN", ClassHandshake},
	{0x03, "SYN,FIN", ClassProbe},
	{0x04, "RST", ClassTeardown},
	{0x05, "RST,FIN", ClassProbe},
	{0x06, "RST,SYN", ClassProbe},
	{0x07, "RST,SYN,FIN", ClassProbe},
	{0x08, "PSH", ClassProbe},
	{0x09, "PSH,FIN", ClassProbe},
	{0x0a, "PSH,SYN", ClassHandshake},
	{0x0b, "PSH,SYN,FIN", ClassProbe},
	{0x0c, "PSH,RST", ClassTeardown},
	{0x0d, "PSH,RST,FIN", ClassProbe},
	{0x0e, "PSH,RST,SYN", ClassProbe},
	{0x0f, "PSH,RST,SYN,FIN", ClassProbe},
	{0x10, "ACK", ClassTeardown},
	{0x11, "ACK,FIN", ClassTeardown},
	{0x12, "ACK,SYN", ClassHandshake},
	{0x13, "ACK,SYN,FIN", ClassProbe},
	{0x14, "ACK,RST", ClassTeardown},
	{0x15, "ACK,RST,FIN", ClassProbe},
	{0x16, "ACK,RST,SYN", ClassProbe},
	{0x17, "ACK,RST,SYN,FIN", ClassProbe},
	{0x18, "ACK,PSH", ClassTeardown},
	{0x19, "ACK,PSH,FIN", ClassTeardown},
	{0x1a, "ACK,PSH,SYN", ClassHandshake},
	{0x1b, "ACK,PSH,SYN,FIN", ClassProbe},
	{0x1c, "ACK,PSH,RST", ClassTeardown},
	{0x1d, "ACK,PSH,RST,FIN", ClassProbe},
	{0x1e, "ACK,PSH,RST,SYN", ClassProbe},
	{0x1f, "ACK,PSH,RST,SYN,FIN", ClassProbe},
	{0x20, "URG", ClassProbe},
	{0x21, "URG,FIN", ClassProbe},
	{0x22, "URG,SYN", ClassHandshake},
	{0x23, "URG,SYN,FIN", ClassProbe},
	{0x24, "URG,RST", ClassTeardown},
	{0x25, "URG,RST,FIN", ClassProbe},
	{0x26, "URG,RST,SYN", ClassProbe},
	{0x27, "URG,RST,SYN,FIN", ClassProbe},
	{0x28, "URG,PSH", ClassProbe},
	{0x29, "URG,PSH,FIN", ClassProbe},
	{0x2a, "URG,PSH,SYN", ClassHandshake},
	{0x2b, "URG,PSH,SYN,FIN", ClassProbe},
	{0x2c, "URG,PSH,RST", ClassTeardown},
	{0x2d, "URG,PSH,RST,FIN", ClassProbe},
	{0x2e, "URG,PSH,RST,SYN", ClassProbe},
	{0x2f, "URG,PSH,RST,SYN,FIN", ClassProbe},
	{0x30, "URG,ACK", ClassTeardown},
	{0x31, "URG,ACK,FIN", ClassTeardown},
	{0x32, "URG,ACK,SYN", ClassHandshake},
	{0x33, "URG,ACK,SYN,FIN", ClassProbe},
	{0x34, "URG,ACK,RST", ClassTeardown},
	{0x35, "URG,ACK,RST,FIN", ClassProbe},
	{0x36, "URG,ACK,RST,SYN", ClassProbe},
	{0x37, "URG,ACK,RST,SYN,FIN", ClassProbe},
	{0x38, "URG,ACK,PSH", ClassTeardown},
	{0x39, "URG,ACK,PSH,FIN", ClassTeardown},
	{0x3a, "URG,ACK,PSH,SYN", ClassHandshake},
	{0x3b, "URG,ACK,PSH,SYN,FIN", ClassProbe},
	{0x3c, "URG,ACK,PSH,RST", ClassTeardown},
	{0x3d, "URG,ACK,PSH,RST,FIN", ClassProbe},
	{0x3e, "URG,ACK,PSH,RST,SYN", ClassProbe},
	{0x3f, "URG,ACK,PSH,RST,SYN,FIN", ClassProbe},
}

func tcp4(flags uint8, sport, dport uint16) *packet.Packet {
	return &packet.Packet{Family: packet.FamilyIPv4, Proto: packet.ProtoTCP, IPProto: 6, Length: 40,
		HasPorts: true, SrcPort: sport, DstPort: dport, HasFlags: true, TCPFlags: flags}
}

func TestClassifyAllFlagCombinations(t *testing.T) {
	c := NewClassifier(MustParsePorts(DefaultPorts))
	if len(allFlags) != 64 {
		t.Fatalf("table has %d rows, want 64", len(allFlags))
	}
	for _, tc := range allFlags {
		// ECE and CWR must not change anything.
		for _, extra := range []uint8{0, packet.FlagECE, packet.FlagCWR, packet.FlagECE | packet.FlagCWR} {
			l := c.Classify(tcp4(tc.f|extra, 50000, 443))
			if l.Class != tc.class || l.FlagsLabel() != tc.label || l.ProtoLabel() != "tcp" || l.FamilyLabel() != "ipv4" {
				t.Errorf("flags %#02x: got class %s flags %q proto %s family %s, want %s %q tcp ipv4",
					tc.f|extra, l.ClassLabel(), l.FlagsLabel(), l.ProtoLabel(), l.FamilyLabel(), tc.class, tc.label)
			}
		}
	}
}

func TestClassifyPortAndSide(t *testing.T) {
	const (
		syn    = packet.FlagSYN
		synack = packet.FlagSYN | packet.FlagACK
		finack = packet.FlagFIN | packet.FlagACK
		rst    = packet.FlagRST
	)
	for _, tc := range []struct {
		name         string
		ports        string
		flags        uint8
		sport, dport uint16
		port, side   string
	}{
		{"visitor FIN/ACK to 443", DefaultPorts, finack, 51234, 443, "443", "client"},
		{"late RST of a remote HTTPS server", DefaultPorts, rst, 443, 51234, "443", "server"},
		{"both listed: destination wins", DefaultPorts, finack, 22, 443, "443", "client"},
		{"SYN to an unlisted high port", DefaultPorts, syn, 40000, 8080, "user", "client"},
		{"SYN to an unlisted port lower than the source", DefaultPorts, syn, 1000, 60000, "dynamic", "client"},
		{"SYN/ACK from an unlisted port", DefaultPorts, synack, 8443, 22, "user", "server"},
		{"SYN/ACK from a listed port", DefaultPorts, synack, 443, 50000, "443", "server"},
		{"SYN with listed source still uses destination", DefaultPorts, syn, 443, 50000, "dynamic", "client"},
		{"unlisted both: lower is source", DefaultPorts, finack, 8080, 50000, "user", "server"},
		{"unlisted both: lower is destination", DefaultPorts, finack, 50000, 8080, "user", "client"},
		{"unlisted tie: destination", DefaultPorts, finack, 7000, 7000, "user", "client"},
		{"system range", DefaultPorts, rst, 40000, 1023, "system", "client"},
		{"user range lower bound", DefaultPorts, rst, 50000, 1024, "user", "client"},
		{"user range upper bound", DefaultPorts, rst, 50000, 49151, "user", "client"},
		{"dynamic range lower bound", DefaultPorts, rst, 65535, 49152, "dynamic", "client"},
		{"port 0", DefaultPorts, rst, 40000, 0, "system", "client"},
		{"custom list", "8080", finack, 40000, 8080, "8080", "client"},
		{"custom list makes 443 a range", "8080", finack, 50000, 443, "system", "client"},
		{"listed source only", DefaultPorts, finack, 53, 40000, "53", "server"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := NewClassifier(MustParsePorts(tc.ports))
			l := c.Classify(tcp4(tc.flags, tc.sport, tc.dport))
			if l.PortLabel() != tc.port || l.SideLabel() != tc.side {
				t.Errorf("got port %q side %q, want %q %q", l.PortLabel(), l.SideLabel(), tc.port, tc.side)
			}
		})
	}
}

func TestClassifyNonTCP(t *testing.T) {
	c := NewClassifier(MustParsePorts(DefaultPorts))
	for _, tc := range []struct {
		name                                  string
		p                                     packet.Packet
		family, proto, port, side, flags, cls string
	}{
		{"udp to 53", packet.Packet{Family: packet.FamilyIPv6, Proto: packet.ProtoUDP, HasPorts: true, SrcPort: 40000, DstPort: 53},
			"ipv6", "udp", "53", "client", "", "other"},
		{"udp between unlisted ports", packet.Packet{Family: packet.FamilyIPv4, Proto: packet.ProtoUDP, HasPorts: true, SrcPort: 5353, DstPort: 5353},
			"ipv4", "udp", "user", "client", "", "other"},
		{"udp cut before its ports", packet.Packet{Family: packet.FamilyIPv4, Proto: packet.ProtoUDP},
			"ipv4", "udp", "", "", "", "other"},
		{"sctp", packet.Packet{Family: packet.FamilyIPv4, Proto: packet.ProtoSCTP, HasPorts: true, SrcPort: 3868, DstPort: 2905},
			"ipv4", "sctp", "user", "client", "", "other"},
		{"icmp", packet.Packet{Family: packet.FamilyIPv4, Proto: packet.ProtoICMP},
			"ipv4", "icmp", "", "", "", "other"},
		{"icmpv6", packet.Packet{Family: packet.FamilyIPv6, Proto: packet.ProtoICMPv6},
			"ipv6", "icmpv6", "", "", "", "other"},
		{"esp", packet.Packet{Family: packet.FamilyIPv6, Proto: packet.ProtoESP},
			"ipv6", "esp", "", "", "", "other"},
		{"gre", packet.Packet{Family: packet.FamilyIPv4, Proto: packet.ProtoGRE},
			"ipv4", "gre", "", "", "", "other"},
		{"tcp fragment", packet.Packet{Family: packet.FamilyIPv4, Proto: packet.ProtoTCP, Fragment: true},
			"ipv4", "tcp", "", "", "", "fragment"},
		{"malformed", packet.Packet{Family: packet.FamilyIPv6, Proto: packet.ProtoTCP, Err: packet.ErrTruncatedTCPHeader, HasPorts: true, SrcPort: 1, DstPort: 443},
			"ipv6", "unknown", "", "", "", "malformed"},
		{"malformed of unknown family", packet.Packet{Family: packet.FamilyOther, Proto: packet.ProtoUnknown, Err: packet.ErrBadVersion},
			"other", "unknown", "", "", "", "malformed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := c.Classify(&tc.p)
			got := []string{l.FamilyLabel(), l.ProtoLabel(), l.PortLabel(), l.SideLabel(), l.FlagsLabel(), l.ClassLabel()}
			want := []string{tc.family, tc.proto, tc.port, tc.side, tc.flags, tc.cls}
			for i := range got {
				if got[i] != want[i] {
					t.Fatalf("got %q, want %q", got, want)
				}
			}
		})
	}
}

func TestParsePorts(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    []uint16
		wantErr bool
	}{
		{DefaultPorts, []uint16{22, 25, 53, 80, 123, 443, 3389}, false},
		{" 443 , 80,443,", []uint16{80, 443}, false},
		{"", nil, false},
		{"65535,0", []uint16{0, 65535}, false},
		{"65536", nil, true},
		{"-1", nil, true},
		{"http", nil, true},
	} {
		p, err := ParsePorts(tc.in)
		if (err != nil) != tc.wantErr {
			t.Errorf("ParsePorts(%q) error %v, want error %v", tc.in, err, tc.wantErr)
			continue
		}
		if err == nil && fmtPorts(p.List()) != fmtPorts(tc.want) {
			t.Errorf("ParsePorts(%q) = %v, want %v", tc.in, p.List(), tc.want)
		}
	}
	many := "1"
	for i := 2; i <= maxListedPorts+1; i++ {
		many += "," + strconv.Itoa(i)
	}
	if _, err := ParsePorts(many); err == nil {
		t.Errorf("ParsePorts accepted %d ports", maxListedPorts+1)
	}
}

func TestClassifyAllocatesNothing(t *testing.T) {
	c := NewClassifier(MustParsePorts(DefaultPorts))
	p := tcp4(packet.FlagACK|packet.FlagFIN, 50000, 443)
	var sink string
	if n := testing.AllocsPerRun(1000, func() {
		l := c.Classify(p)
		sink = l.FlagsLabel() + l.PortLabel()[:0]
	}); n != 0 {
		t.Errorf("Classify allocates %v times per call", n)
	}
	_ = sink
}
