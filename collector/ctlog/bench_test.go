package ctlog

import (
	"testing"

	"github.com/nfdrop/nfdrop_exporter/collector/classify"
	"github.com/nfdrop/nfdrop_exporter/collector/packet"
)

// BenchmarkJoin is the per-packet cost with both streams on group 0: one
// conntrack message recognised, keyed and kept, one drop keyed and joined.
func BenchmarkJoin(b *testing.B) {
	l := New(Config{Groups: []classify.Group{0}, Join: true})
	prefix := []byte("nf_ct_proto_6: invalid new ")
	payloads := make([][]byte, 256)
	for i := range payloads {
		payloads[i] = pkt(byte(i))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p := payloads[i&255]
		r, _ := Recognise(prefix)
		k := Key(packet.FamilyIPv4, p)
		l.Group(0).Message(packet.FamilyIPv4, packet.ProtoTCP, r, k, uint32(2*i), true)
		l.Group(0).Drop(teardown, Key(packet.FamilyIPv4, p), uint32(2*i+1), true)
	}
}
