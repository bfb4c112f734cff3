package collector

import (
	"testing"

	"github.com/nfdrop/nfdrop_exporter/collector/classify"
	"github.com/nfdrop/nfdrop_exporter/collector/packet"
	"github.com/nfdrop/nfdrop_exporter/collector/source"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/promslog"
)

// FuzzCollectorPacket feeds arbitrary prefixes and packets through the
// per-packet path and then scrapes: whatever a rule logs, the scrape must
// succeed and still carry nfdrop_up of the group, so that the group-down
// alert keeps working.
func FuzzCollectorPacket(f *testing.F) {
	f.Add([]byte("denied "), ipv4TCP(packet.FlagFIN|packet.FlagACK, 51000, 443), []byte("caf\xe4"), ipv6UDP(40000, 53), uint8(2))
	f.Add([]byte("(other)"), ipv4TCP(0, 1, 2), []byte("((other))"), []byte{0x45}, uint8(10))
	f.Add([]byte("\xff\xfe\x00"), []byte{}, []byte(" \t"), []byte{0x60, 0, 0, 0, 0, 8, 17, 64}, uint8(7))
	f.Fuzz(func(t *testing.T, prefix1, payload1, prefix2, payload2 []byte, family uint8) {
		c, err := New(Config{Groups: []uint16{3, 4}, MaxPrefixes: 1}, promslog.NewNopLogger())
		if err != nil {
			t.Fatal(err)
		}
		c.Bound(3, true)
		for _, m := range []source.Message{
			{Group: 3, Family: family, Prefix: prefix1, Payload: payload1},
			{Group: 3, Family: family, Prefix: prefix2, Payload: payload2},
			{Group: 3, Family: family, Prefix: prefix1, Payload: payload2},
			{Group: 4, Family: family, Prefix: prefix2, Payload: payload1},
		} {
			c.Packet(&m)
		}
		c.Flush(3)
		reg := prometheus.NewPedanticRegistry()
		reg.MustRegister(c)
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatalf("scrape failed: %v", err)
		}
		up, packets := map[string]bool{}, 0.0
		for _, mf := range mfs {
			for _, m := range mf.GetMetric() {
				switch mf.GetName() {
				case "nfdrop_up":
					for _, l := range m.GetLabel() {
						if l.GetName() == classify.LabelGroup {
							up[l.GetValue()] = true
						}
					}
				case "nfdrop_packets_total":
					packets += m.GetCounter().GetValue()
				}
			}
		}
		if !up["3"] || !up["4"] {
			t.Errorf("nfdrop_up present for groups %v, want 3 and 4", up)
		}
		if packets != 4 {
			t.Errorf("nfdrop_packets_total adds up to %v, want 4", packets)
		}
	})
}
