package collector

import (
	"testing"

	"github.com/nfdrop/nfdrop_exporter/collector/classify"
	"github.com/nfdrop/nfdrop_exporter/collector/ctlog"
	"github.com/nfdrop/nfdrop_exporter/collector/packet"
	"github.com/nfdrop/nfdrop_exporter/collector/source"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/promslog"
)

// FuzzCollectorPacket feeds arbitrary prefixes and packets through the
// per-packet path and then scrapes: whatever a rule logs, the scrape must
// succeed, still carry nfdrop_up of the group, so that the group-down alert
// keeps working, and count every message but conntrack's own as one drop.
func FuzzCollectorPacket(f *testing.F) {
	f.Add([]byte("denied "), ipv4TCP(packet.FlagFIN|packet.FlagACK, 51000, 443), []byte("caf\xe4"), ipv6UDP(40000, 53), uint8(2))
	f.Add([]byte("(other)"), ipv4TCP(0, 1, 2), []byte("((other))"), []byte{0x45}, uint8(10))
	f.Add([]byte("\xff\xfe\x00"), []byte{}, []byte(" \t"), []byte{0x60, 0, 0, 0, 0, 8, 17, 64}, uint8(7))
	f.Add([]byte("nf_ct_proto_6: invalid new "), ipv4TCP(packet.FlagFIN|packet.FlagACK, 51000, 443), []byte("denied"), []byte{}, uint8(2))
	f.Fuzz(func(t *testing.T, prefix1, payload1, prefix2, payload2 []byte, family uint8) {
		c, err := New(Config{Groups: []classify.Group{3, 4}, MaxPrefixes: 1}, promslog.NewNopLogger())
		if err != nil {
			t.Fatal(err)
		}
		c.Bound(3, true)
		drops := 0.0
		for _, m := range []source.Message{
			{Group: 3, Family: family, Prefix: prefix1, Payload: payload1},
			{Group: 3, Family: family, Prefix: prefix2, Payload: payload2},
			{Group: 3, Family: family, Prefix: prefix1, Payload: payload2},
			{Group: 4, Family: family, Prefix: prefix2, Payload: payload1},
		} {
			c.Packet(&m)
			if _, isCT := ctlog.Recognise(m.Prefix); !isCT {
				drops++
			}
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
		if packets != drops {
			t.Errorf("nfdrop_packets_total adds up to %v, want %v (every message but conntrack's)", packets, drops)
		}
	})
}
