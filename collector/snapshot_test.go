package collector

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"

	"github.com/nfdrop/nfdrop_exporter/collector/classify"
	"github.com/nfdrop/nfdrop_exporter/collector/packet"
	"github.com/nfdrop/nfdrop_exporter/collector/source"
	"github.com/nfdrop/nfdrop_exporter/collector/topsources"
	"github.com/prometheus/common/promslog"
)

func newSourcesCollector(t testing.TB, capacity int, groups ...classify.Group) *Collector {
	t.Helper()
	c, err := New(Config{Groups: groups, Ports: classify.MustParsePorts(classify.DefaultPorts), MaxPrefixes: 2, SourcesCapacity: capacity}, promslog.NewNopLogger())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// withSrc returns a copy of an IPv4 datagram with another source address.
func withSrc(b []byte, src [4]byte) []byte {
	b = append([]byte(nil), b...)
	copy(b[12:16], src[:])
	return b
}

func TestSnapshot(t *testing.T) {
	c := newSourcesCollector(t, 8, 3, 4)
	c.Bound(3, true)
	c.Lost(3, 7)
	a, b := [4]byte{198, 51, 100, 7}, [4]byte{198, 51, 100, 9}
	for _, m := range []*source.Message{
		msg(3, 2, "drop", withSrc(ipv4TCP(packet.FlagSYN, 40000, 22), a)),                 // handshake to 22
		msg(3, 2, "drop", withSrc(ipv4TCP(packet.FlagSYN, 40001, 22), a)),                 // handshake to 22
		msg(3, 2, "drop", withSrc(ipv4TCP(0, 40002, 80), b)),                              // probe (NULL) to 80
		msg(3, 2, "drop", withSrc(ipv4TCP(packet.FlagFIN|packet.FlagACK, 443, 50000), b)), // teardown: not a source
		msg(3, 10, "drop", ipv6UDP(5353, 53)),                                             // other, from ::
		msg(3, 2, "drop", []byte{0x45, 0, 0}),                                             // malformed before the addresses: not a source
	} {
		c.Packet(m)
	}
	c.Flush(3)

	snap := c.Snapshot(topsources.ShowMax)
	if len(snap) != 2 || snap[0].Group != 3 || snap[1].Group != 4 {
		t.Fatalf("groups %+v, want 3 then 4 (configuration order)", snap)
	}
	g := snap[0]
	if !g.Up || g.Lost != 7 || g.LastPacket != msg(0, 0, "", nil).TimestampNs {
		t.Errorf("up %v lost %d last %d", g.Up, g.Lost, g.LastPacket)
	}
	byClass := map[string]uint64{}
	var total uint64
	for _, s := range g.Series {
		byClass[s.ClassLabel()+"/"+s.PortLabel()+"/"+s.FlagsLabel()+"/"+s.Prefix] += s.Packets
		total += s.Packets
	}
	want := map[string]uint64{
		"handshake/22/SYN/drop": 2, "probe/80/NONE/drop": 1, "teardown/443/ACK,FIN/drop": 1,
		"other/53//drop": 1, "malformed///drop": 1,
	}
	if total != 6 || len(byClass) != len(want) {
		t.Errorf("series %v, want %v", byClass, want)
	}
	for k, n := range want {
		if byClass[k] != n {
			t.Errorf("series %s = %d, want %d", k, byClass[k], n)
		}
	}
	src := g.Sources
	if src == nil {
		t.Fatal("no sources with a sketch configured")
	}
	// Four non-teardown drops with a readable source: a twice, b and :: once.
	if src.Addresses.Total != 4 || len(src.Addresses.Entries) != 3 || !src.Addresses.Exact {
		t.Fatalf("addresses %+v", src.Addresses)
	}
	top := src.Addresses.Entries[0]
	if top.Prefix.String() != "198.51.100.7/32" || top.Count != 2 || top.Classes[classify.ClassHandshake] != 2 {
		t.Errorf("top address %+v", top)
	}
	if n := src.Networks.Entries[0]; n.Prefix.String() != "198.51.100.0/24" || n.Count != 3 || n.Classes[classify.ClassProbe] != 1 {
		t.Errorf("top network %+v", n)
	}
	if snap[1].Up || snap[1].Series != nil || snap[1].Sources.Addresses.Total != 0 {
		t.Errorf("idle group 4: %+v", snap[1])
	}

	off := newTestCollector(t, 3)
	off.Packet(msg(3, 2, "drop", ipv4TCP(packet.FlagSYN, 1, 22)))
	if s := off.Snapshot(topsources.ShowMax); s[0].Sources != nil {
		t.Errorf("sources with the view off: %+v", s[0].Sources)
	}
}

// sourceMessages is benchMessages with random IPv4 source addresses (a
// quarter from 8 heavy hitters), the worst case for the sketch.
func sourceMessages(mix string, n int) []source.Message {
	msgs := benchMessages(mix, n)
	r := rand.New(rand.NewPCG(3, 4))
	for i := range msgs {
		p := append([]byte(nil), msgs[i].Payload...)
		src := p[12:16]
		if msgs[i].Family == 10 {
			src = p[8+12 : 8+16]
		}
		v := r.Uint32()
		if v%4 == 0 {
			v = 0xcb007100 | v>>8&7
		}
		binary.BigEndian.PutUint32(src, v)
		msgs[i].Payload = p
	}
	return msgs
}

// teardownOnly is msgs cut to the packets classified teardown, repeated to
// the same length: the sketch must cost them nothing.
func teardownOnly(t testing.TB, msgs []source.Message) []source.Message {
	c := newSourcesCollector(t, 0, 0)
	var p packet.Packet
	out := make([]source.Message, 0, len(msgs))
	for len(out) < len(msgs) {
		for i := range msgs {
			packet.Decode(msgs[i].Payload, msgs[i].FamilyHint(), &p)
			if c.classifier.Key(&p).Class() == classify.ClassTeardown && len(out) < len(msgs) {
				out = append(out, msgs[i])
			}
		}
	}
	return out
}

// BenchmarkPacketSources is BenchmarkPacket with the sources view on and
// off, on packets from many source addresses. The teardown mix has 30%
// handshakes and probes, which the sketch counts; teardown-only has none.
func BenchmarkPacketSources(b *testing.B) {
	for _, mix := range []string{"teardown", "teardown-only", "random"} {
		for _, capacity := range []int{0, topsources.DefaultCapacity} {
			name := mix + "/sources=off"
			if capacity > 0 {
				name = mix + "/sources=on"
			}
			b.Run(name, func(b *testing.B) {
				var msgs []source.Message
				if mix == "teardown-only" {
					msgs = teardownOnly(b, sourceMessages("teardown", 8192))
				} else {
					msgs = sourceMessages(mix, 8192)
				}
				c := newSourcesCollector(b, capacity, 0)
				for i := range msgs {
					c.Packet(&msgs[i])
				}
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					c.Packet(&msgs[i&8191])
					if i&15 == 15 { // the live reader flushes after each kernel batch
						c.Flush(0)
					}
					i++
				}
			})
		}
	}
}

func TestPacketWithSourcesAllocatesNothing(t *testing.T) {
	msgs := sourceMessages("random", 8192)
	c := newSourcesCollector(t, topsources.DefaultCapacity, 0)
	for i := range msgs {
		c.Packet(&msgs[i])
	}
	got := testing.AllocsPerRun(5, func() {
		for i := range msgs {
			c.Packet(&msgs[i])
			if i&15 == 15 {
				c.Flush(0)
			}
		}
	})
	if got != 0 {
		t.Errorf("%v allocations per %d packets with the sources view on, want 0", got, len(msgs))
	}
	if s := c.Snapshot(1)[0].Sources; s.Addresses.Total == 0 || s.Addresses.Exact {
		t.Errorf("the mix must overflow the sketch to test its worst case: %+v", s.Addresses)
	}
}
