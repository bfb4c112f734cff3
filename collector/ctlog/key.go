package ctlog

import (
	"encoding/binary"
	"math/bits"
	"math/rand/v2"

	"github.com/nfdrop/nfdrop_exporter/collector/packet"
)

// KeyBytes is how much of a packet identifies it for the join: enough for the
// IP and TCP headers with options, so that two packets of one flow differ
// (sequence numbers, IPv4 ID, TCP timestamps). A drop rule must copy at least
// this much (iptables --nflog-size, nft snaplen) or the whole packet, as
// conntrack's message does.
const KeyBytes = 80

// secret keys the hash per process, so that no sender can aim packets at one
// slot of the reasons table.
var secret = [6]uint64{rand.Uint64(), rand.Uint64(), rand.Uint64(), rand.Uint64(), rand.Uint64(), rand.Uint64() | 1}

// Hop fields masked out of the key, as little-endian 8-byte words: the IPv4
// TTL and header checksum (bytes 8, 10, 11: word 1) and the IPv6 hop limit
// (byte 7: word 0).
const (
	ipv4Word1Mask = ^uint64(0xffff00ff)
	ipv6Word0Mask = ^uint64(0xff << 56)
)

// Key identifies a packet across conntrack's message and the drop rule's. It
// hashes the first KeyBytes of the payload with the fields that change
// between conntrack's hook and the filter's masked: the IPv4 TTL and header
// checksum and the IPv6 hop limit (a forwarded packet is logged by conntrack
// before its TTL is decremented, by a FORWARD rule after). 0 means no key.
//
// It reads the bytes as ten words mixed pairwise by 64x64->128-bit
// multiplies with a per-process secret rather than hashing a masked copy
// with maphash, which would cost a copy and a call: a key is computed for
// each conntrack message and each drop.
func Key(f packet.Family, payload []byte) uint64 {
	n := len(payload)
	if n == 0 {
		return 0
	}
	var buf [KeyBytes]byte
	var p *[KeyBytes]byte
	if n >= KeyBytes {
		n, p = KeyBytes, (*[KeyBytes]byte)(payload)
	} else {
		copy(buf[:], payload)
		p = &buf
	}
	var w [KeyBytes / 8]uint64
	for i := range w {
		w[i] = binary.LittleEndian.Uint64(p[8*i:])
	}
	switch f {
	case packet.FamilyIPv4:
		if n >= 12 {
			w[1] &= ipv4Word1Mask
		}
	case packet.FamilyIPv6:
		if n >= 8 {
			w[0] &= ipv6Word0Mask
		}
	}
	h := mix(w[0]^secret[0], w[1]^secret[1]) ^ mix(w[2]^secret[2], w[3]^secret[3]) ^ uint64(f)<<56 ^ uint64(n)
	h = mix(h^w[4]^secret[4], w[5]^secret[1]) ^ mix(w[6]^secret[2], w[7]^secret[3])
	h = mix(h^w[8]^secret[0], w[9]^secret[4])
	k := mix(h, secret[5])
	if k == 0 {
		k = 1
	}
	return k
}

// mix folds the 128-bit product of a and b into 64 bits.
func mix(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	return hi ^ lo
}
