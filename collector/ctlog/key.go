package ctlog

import (
	"hash/maphash"

	"github.com/nfdrop/nfdrop_exporter/collector/packet"
)

// KeyBytes is how much of a packet identifies it for the join: enough for the
// IP and TCP headers with options, so that two packets of one flow differ
// (sequence numbers, IPv4 ID, TCP timestamps). A drop rule must copy at least
// this much (iptables --nflog-size, nft snaplen) or the whole packet, as
// conntrack's message does.
const KeyBytes = 80

var seed = maphash.MakeSeed()

// Key identifies a packet across conntrack's message and the drop rule's. It
// hashes the first KeyBytes of the payload with the fields that change
// between conntrack's hook and the filter's masked: the IPv4 TTL and header
// checksum and the IPv6 hop limit (a forwarded packet is logged by conntrack
// before its TTL is decremented, by a FORWARD rule after). 0 means no key.
func Key(f packet.Family, payload []byte) uint64 {
	var buf [KeyBytes]byte
	n := copy(buf[:], payload)
	switch f {
	case packet.FamilyIPv4:
		if n >= 12 {
			buf[8], buf[10], buf[11] = 0, 0, 0
		}
	case packet.FamilyIPv6:
		if n >= 8 {
			buf[7] = 0
		}
	}
	if n == 0 {
		return 0
	}
	k := maphash.Bytes(seed, buf[:n]) ^ uint64(f)<<56 ^ uint64(n)
	if k == 0 {
		k = 1
	}
	return k
}
