package explain

import (
	"encoding/binary"

	"github.com/nfdrop/nfdrop_exporter/collector/capture"
	"github.com/nfdrop/nfdrop_exporter/collector/packet"
)

const (
	etherTypeIPv4  = 0x0800
	etherTypeIPv6  = 0x86dd
	etherTypeVLAN  = 0x8100
	etherTypeQinQ  = 0x88a8
	etherTypeQinQ2 = 0x9100
)

// frame finds the IP packet in a captured frame of a plain (non-NFLOG)
// capture. ok is false for a frame that does not carry IPv4/IPv6 (ARP, LLDP
// ...) or is too short to tell: such frames are no drops and are counted as
// ignored. The returned family is the link layer's word, used as decode hint.
func frame(linkType capture.LinkType, b []byte) (ip []byte, fam packet.Family, ok bool) {
	var et uint16
	switch linkType {
	case capture.LinkTypeEthernet: // dst, src, [802.1Q/802.1ad tags], ethertype
		if len(b) < 14 {
			return nil, 0, false
		}
		et, b = binary.BigEndian.Uint16(b[12:14]), b[14:]
		for i := 0; i < 4 && (et == etherTypeVLAN || et == etherTypeQinQ || et == etherTypeQinQ2); i++ {
			if len(b) < 4 {
				return nil, 0, false
			}
			et, b = binary.BigEndian.Uint16(b[2:4]), b[4:]
		}
	case capture.LinkTypeLinuxSLL:
		if len(b) < 16 {
			return nil, 0, false
		}
		et, b = binary.BigEndian.Uint16(b[14:16]), b[16:]
	case capture.LinkTypeLinuxSLL2:
		if len(b) < 20 {
			return nil, 0, false
		}
		et, b = binary.BigEndian.Uint16(b[0:2]), b[20:]
	case capture.LinkTypeRaw: // the version nibble decides
		if len(b) == 0 {
			return nil, 0, false
		}
		switch b[0] >> 4 {
		case 4:
			return b, packet.FamilyIPv4, true
		case 6:
			return b, packet.FamilyIPv6, true
		}
		return nil, 0, false
	case capture.LinkTypeIPv4:
		return b, packet.FamilyIPv4, true
	case capture.LinkTypeIPv6:
		return b, packet.FamilyIPv6, true
	default:
		return nil, 0, false
	}
	switch et {
	case etherTypeIPv4:
		return b, packet.FamilyIPv4, true
	case etherTypeIPv6:
		return b, packet.FamilyIPv6, true
	}
	return nil, 0, false
}

// supportedLinkType reports whether frame (or the NFLOG path) can read a capture.
func supportedLinkType(lt capture.LinkType) bool {
	switch lt {
	case capture.LinkTypeEthernet, capture.LinkTypeRaw, capture.LinkTypeIPv4, capture.LinkTypeIPv6,
		capture.LinkTypeNFLOG, capture.LinkTypeLinuxSLL, capture.LinkTypeLinuxSLL2:
		return true
	}
	return false
}
