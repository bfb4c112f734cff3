package collector

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/nfdrop/nfdrop_exporter/collector/classify"
	"github.com/nfdrop/nfdrop_exporter/collector/packet"
	"github.com/nfdrop/nfdrop_exporter/collector/source"
)

// benchMessages returns n NFLOG messages as the live reader delivers them
// (prefix, timestamp, sequence, payload cut to a 256-byte copy range).
// "teardown" is the lab bench's reference mix (late FIN/RST/ACK/PSH to :443,
// SYNs to closed ports, NULL and XMAS scans); "random" has random TCP flag
// bytes, random ports and some UDP/ICMP, the worst case for the counter table.
func benchMessages(mix string, n int) []source.Message {
	r := rand.New(rand.NewPCG(1, 2))
	out := make([]source.Message, n)
	for i := range out {
		v6 := r.IntN(2) == 1
		proto := uint8(6)
		sport, dport := uint16(1024+r.IntN(64512)), uint16(443)
		var flags uint8
		payload := 0
		switch mix {
		case "teardown":
			switch x := r.IntN(100); {
			case x < 15:
				flags = packet.FlagFIN | packet.FlagACK
			case x < 25:
				flags = packet.FlagRST
			case x < 35:
				flags = packet.FlagRST | packet.FlagACK
			case x < 50:
				flags = packet.FlagACK
			case x < 70:
				flags, payload = packet.FlagPSH|packet.FlagACK, 64+r.IntN(337)
			case x < 90:
				flags, dport = packet.FlagSYN, uint16(1024+r.IntN(64000))
			case x < 95:
				flags = 0
			default:
				flags = packet.FlagFIN | packet.FlagPSH | packet.FlagURG
			}
		case "random":
			sport, dport = uint16(r.IntN(65536)), uint16(r.IntN(65536))
			switch x := r.IntN(100); {
			case x < 85:
				flags = uint8(r.Uint32())
			case x < 95:
				proto, payload = 17, r.IntN(64)
			default:
				proto = 1
				if v6 {
					proto = 58
				}
			}
		default:
			panic("unknown mix " + mix)
		}
		b := buildIP(v6, proto, sport, dport, flags, payload)
		fam := uint8(2)
		if v6 {
			fam = 10
		}
		out[i] = source.Message{Group: 0, Family: fam, HwProtocol: 0x0800, HasHwProto: true, Hook: 1,
			Prefix: []byte("denied"), Payload: b[:min(len(b), 256)], Seq: uint32(i), HasSeq: true,
			TimestampNs: time.Unix(1700000000, int64(i)).UnixNano(), HasTimestamp: true}
		if v6 {
			out[i].HwProtocol = 0x86dd
		}
	}
	return out
}

// buildIP returns an IPv4 or IPv6 datagram with a TCP (20 B), UDP (8 B) or
// ICMP (8 B) header and payload zero bytes; checksums are not filled in
// (the decoder does not check them).
func buildIP(v6 bool, proto uint8, sport, dport uint16, flags uint8, payload int) []byte {
	l4 := 8
	if proto == 6 {
		l4 = 20
	}
	hl := 20
	if v6 {
		hl = 40
	}
	b := make([]byte, hl+l4+payload)
	if v6 {
		b[0], b[6], b[7] = 0x60, proto, 64
		binary.BigEndian.PutUint16(b[4:], uint16(l4+payload))
		b[8], b[9], b[23] = 0xfd, 0x99, 2
		b[24], b[25], b[39] = 0xfd, 0x99, 1
	} else {
		b[0], b[8], b[9] = 0x45, 64, proto
		binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
		copy(b[12:], []byte{10, 99, 0, 2, 10, 99, 0, 1})
	}
	t := b[hl:]
	switch proto {
	case 6:
		binary.BigEndian.PutUint16(t, sport)
		binary.BigEndian.PutUint16(t[2:], dport)
		t[12], t[13] = 0x50, flags
	case 17:
		binary.BigEndian.PutUint16(t, sport)
		binary.BigEndian.PutUint16(t[2:], dport)
		binary.BigEndian.PutUint16(t[4:], uint16(l4+payload))
	default:
		t[0] = 8
	}
	return b
}

// BenchmarkPacket measures the whole per-packet path the live reader calls:
// decode + classify + count + histogram observe (Collector.Packet), per
// message. Target: 0 allocs/op; ns/op bounds the exporter's CPU per million
// packets apart from the receive syscalls (1 µs/op = 1 CPU s per million).
func BenchmarkPacket(b *testing.B) {
	for _, mix := range []string{"teardown", "random"} {
		b.Run(mix, func(b *testing.B) {
			msgs := benchMessages(mix, 8192)
			c := newTestCollector(b, 0)
			for i := range msgs { // first sight of a series or native bucket may allocate
				c.Packet(&msgs[i])
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				c.Packet(&msgs[i&8191])
				i++
			}
		})
	}
}

// BenchmarkPacketParts splits BenchmarkPacket into its stages, to show where
// the per-packet time goes.
func BenchmarkPacketParts(b *testing.B) {
	msgs := benchMessages("teardown", 8192)
	c := newTestCollector(b, 0)
	for i := range msgs {
		c.Packet(&msgs[i])
	}
	gs := c.groups[0]
	var p packet.Packet
	b.Run("decode", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			m := &msgs[i&8191]
			packet.Decode(m.Payload, m.FamilyHint(), &p)
			i++
		}
	})
	b.Run("classify", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			m := &msgs[i&8191]
			packet.Decode(m.Payload, m.FamilyHint(), &p)
			c.classifier.Key(&p)
			i++
		}
	})
	b.Run("count", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			m := &msgs[i&8191]
			packet.Decode(m.Payload, m.FamilyHint(), &p)
			k := c.classifier.Key(&p)
			idx, _, _ := c.prefixOf(gs, m.Prefix)
			gs.counters.inc(k.WithPrefix(idx), k.Class())
			i++
		}
	})
	b.Run("histogram_observe", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			gs.sizes[classify.ClassTeardown].observe(uint32(40 + i&511))
			i++
		}
	})
}

// TestPacketAllocatesNothingOnFloodMixes holds the 0 allocs/packet target on
// the bench's two packet mixes (8192 distinct packets each), once every
// series and histogram bucket has been seen.
func TestPacketAllocatesNothingOnFloodMixes(t *testing.T) {
	for _, mix := range []string{"teardown", "random"} {
		t.Run(mix, func(t *testing.T) {
			msgs := benchMessages(mix, 8192)
			c := newTestCollector(t, 0)
			for i := range msgs {
				c.Packet(&msgs[i])
			}
			got := testing.AllocsPerRun(5, func() {
				for i := range msgs {
					c.Packet(&msgs[i])
				}
			})
			if got != 0 {
				t.Errorf("%v allocations per %d packets, want 0", got, len(msgs))
			}
			// The mix must really reach the counter table with many series,
			// or the test would prove nothing about the table. teardown: 7 flag
			// sets to :443 plus SYNs to user/dynamic ports, in both families.
			series := 0
			c.groups[0].counters.each(func(classify.Key, uint64, int64) { series++ })
			switch {
			case mix == "teardown" && series != 18:
				t.Errorf("%d series from the teardown mix, want (7 flag sets to 443 + 2 SYN port ranges) x 2 families = 18", series)
			case mix == "random" && series < 300:
				t.Errorf("%d series from the random mix, want at least 300", series)
			}
		})
	}
}
