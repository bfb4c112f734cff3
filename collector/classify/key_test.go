package classify

import (
	"strings"
	"testing"

	"github.com/nfdrop/nfdrop_exporter/collector/packet"
)

func TestSeriesKeyRoundTrip(t *testing.T) {
	ports := MustParsePorts(DefaultPorts)
	for _, l := range []Labels{
		{Family: packet.FamilyIPv6, Proto: packet.ProtoTCP, Side: SideServer, Class: ClassTeardown, PortIndex: 6, HasFlags: true, Flags: 0x3f},
		{Family: packet.FamilyOther, Proto: packet.ProtoUnknown, Class: ClassMalformed},
		{Family: packet.FamilyIPv4, Proto: packet.ProtoUDP, Side: SideClient, Class: ClassOther, PortIndex: 10},
	} {
		l.ports = &ports
		k := KeyOf(l.Family, l.Proto, l.PortIndex, l.Side, l.Class, l.HasFlags, l.Flags).WithPrefix(17)
		if got := k.Labels(&ports); got != l || k.Prefix() != 17 {
			t.Errorf("round trip of %+v gave %+v prefix %d", l, got, k.Prefix())
		}
	}
}

func TestPrefixTable(t *testing.T) {
	p := NewPrefixTable(2)
	for _, tc := range []struct {
		in   string
		want uint8
	}{{"a", 1}, {"b", 2}, {"a", 1}, {"c", 0}, {"b", 2}, {"", 0}} {
		if got := p.Index([]byte(tc.in)); got != tc.want {
			t.Errorf("index(%q) = %d, want %d", tc.in, got, tc.want)
		}
	}
	if got := strings.Join(p.Names(), "|"); got != "(other)|a|b" {
		t.Errorf("names %q", got)
	}
	if got := string(TrimPrefix([]byte("  iptables denied: \n"))); got != "iptables denied:" {
		t.Errorf("TrimPrefix = %q", got)
	}
}
