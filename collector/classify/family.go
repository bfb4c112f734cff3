package classify

import (
	"github.com/nfdrop/nfdrop_exporter/collector/packet"
	"github.com/nfdrop/nfdrop_exporter/collector/source"
)

// FamilyHint is the family the kernel says an NFLOG message's packet has: the
// hook's protocol family, or for bridge/netdev hooks the link-layer protocol.
// The decoder trusts the IP version nibble where the hint says nothing.
func FamilyHint(m *source.Message) packet.Family {
	switch m.Family {
	case 2: // AF_INET
		return packet.FamilyIPv4
	case 10: // AF_INET6
		return packet.FamilyIPv6
	}
	if m.HasHwProto {
		switch m.HwProtocol {
		case 0x0800: // ETH_P_IP
			return packet.FamilyIPv4
		case 0x86dd: // ETH_P_IPV6
			return packet.FamilyIPv6
		}
	}
	return packet.FamilyOther
}
