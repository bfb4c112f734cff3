package collector

import (
	"fmt"
	"strings"
	"testing"

	"github.com/nfdrop/nfdrop_exporter/collector/classify"
	"github.com/nfdrop/nfdrop_exporter/collector/ctlog"
	"github.com/nfdrop/nfdrop_exporter/collector/packet"
	"github.com/nfdrop/nfdrop_exporter/collector/source"
	"github.com/nfdrop/nfdrop_exporter/collector/topsources"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/promslog"
)

func newReasonsCollector(t testing.TB, groups ...classify.Group) *Collector {
	t.Helper()
	c, err := New(Config{Groups: groups, Ports: classify.MustParsePorts(classify.DefaultPorts), MaxPrefixes: 4, Reasons: &ctlog.Config{ReasonsGroup: 0, Join: true}}, promslog.NewNopLogger())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Conntrack's message and the drop rule's message for the same packet on
// one group: one drop, joined to conntrack's reason.
func TestConntrackMessagesAreNotDrops(t *testing.T) {
	c := newReasonsCollector(t, 0)
	fin := buildIP(false, 6, 40000, 443, packet.FlagFIN|packet.FlagACK, 0)
	null := buildIP(false, 6, 40001, 443, 0, 0)
	syn := buildIP(false, 6, 40002, 22, packet.FlagSYN, 0)
	for i, m := range []struct {
		prefix  string
		payload []byte
	}{
		{"nf_ct_proto_6: invalid new ", fin},
		{"nf_ct_proto_6: invalid new ", fin}, // a retransmission: the same prefix again, read from the prefix cache
		{"denied ", fin},
		{"denied ", fin},
		{"nf_ct_proto_6: invalid tcp flag combination ", null},
		{"denied ", null},
		{"denied ", syn}, // NEW to a closed port: conntrack says nothing
	} {
		msg := msg(0, 2, m.prefix, m.payload)
		msg.SeqGlobal, msg.HasSeqGlobal = uint32(i+1), true
		c.Packet(msg)
	}
	if got := sumOf(t, c, "nfdrop_packets_total"); got != 4 {
		t.Errorf("nfdrop_packets_total = %v, want 4 (conntrack's messages are not drops)", got)
	}
	for _, name := range c.prefixes.Names() {
		if strings.HasPrefix(name, "nf_ct_") {
			t.Errorf("conntrack's prefix %q took a prefix label value", name)
		}
	}
	want := `
# HELP nfdrop_drop_reasons_total Drops by class and conntrack's reason for the same packet; none when conntrack wrote nothing about it. Counted once the reason is known, at most --conntrack.reasons.window after the drop.
# TYPE nfdrop_drop_reasons_total counter
nfdrop_drop_reasons_total{class="handshake",group="0",reason="none"} 1
nfdrop_drop_reasons_total{class="probe",group="0",reason="invalid_flags"} 1
nfdrop_drop_reasons_total{class="teardown",group="0",reason="invalid_new"} 2
# HELP nfdrop_conntrack_log_messages_total Conntrack's own log messages (nf_conntrack_log_invalid) read from a group, by the packet's family and protocol and conntrack's reason. They are not drops and are not in nfdrop_packets_total.
# TYPE nfdrop_conntrack_log_messages_total counter
nfdrop_conntrack_log_messages_total{family="ipv4",group="0",proto="tcp",reason="invalid_flags"} 1
nfdrop_conntrack_log_messages_total{family="ipv4",group="0",proto="tcp",reason="invalid_new"} 2
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), "nfdrop_drop_reasons_total", "nfdrop_conntrack_log_messages_total"); err != nil {
		t.Error(err)
	}
}

// sumOf sums a counter or gauge family of the collector.
func sumOf(t *testing.T, c *Collector, name string) float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var s float64
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				s += m.GetCounter().GetValue() + m.GetGauge().GetValue()
			}
		}
	}
	return s
}

// BenchmarkPacketWithReasons is BenchmarkPacket's teardown mix with
// conntrack's message before every drop on the same group, as the kernel
// sends them with nf_conntrack_log_invalid set: per op, one conntrack message
// recognised and kept plus one drop counted and joined.
func BenchmarkPacketWithReasons(b *testing.B) {
	drops := benchMessages("teardown", 4096)
	msgs := make([]source.Message, 0, 2*len(drops))
	for i, d := range drops {
		ct := d
		ct.Prefix, ct.Hook = []byte("nf_ct_proto_6: invalid new "), 0
		ct.SeqGlobal, ct.HasSeqGlobal = uint32(2*i), true
		d.SeqGlobal, d.HasSeqGlobal = uint32(2*i+1), true
		msgs = append(msgs, ct, d)
	}
	c := newReasonsCollector(b, 0)
	for i := range msgs {
		c.Packet(&msgs[i])
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		c.Packet(&msgs[i&8191])
		c.Packet(&msgs[(i+1)&8191])
		i += 2
	}
}

// BenchmarkPacketFeatures is the flood's per-packet path (drops on group 0,
// conntrack silent, as with nf_conntrack_log_invalid=0) with each of this
// exporter's optional per-packet features on and off: the reasons join and
// the sources view are both on by default.
func BenchmarkPacketFeatures(b *testing.B) {
	for _, mix := range []string{"teardown", "random"} {
		for _, reasons := range []bool{false, true} {
			for _, capacity := range []int{0, topsources.DefaultCapacity} {
				name := fmt.Sprintf("%s/reasons=%v/sources=%v", mix, onOff(reasons), onOff(capacity > 0))
				b.Run(name, func(b *testing.B) {
					msgs := sourceMessages(mix, 8192)
					cfg := Config{Groups: []classify.Group{0}, Ports: classify.MustParsePorts(classify.DefaultPorts), MaxPrefixes: 2, SourcesCapacity: capacity}
					if reasons {
						cfg.Reasons = &ctlog.Config{ReasonsGroup: 0, Join: true}
					}
					c, err := New(cfg, promslog.NewNopLogger())
					if err != nil {
						b.Fatal(err)
					}
					for i := range msgs {
						msgs[i].SeqGlobal, msgs[i].HasSeqGlobal = uint32(i), true
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
}

func onOff(on bool) string {
	if on {
		return "on"
	}
	return "off"
}

// TestReasonsWithoutJoin: without the reasons group read, conntrack's
// messages are counted and no drop is joined.
func TestReasonsWithoutJoin(t *testing.T) {
	c, err := New(Config{Groups: []classify.Group{5}, MaxPrefixes: 2, Reasons: &ctlog.Config{ReasonsGroup: 0, Join: true}}, promslog.NewNopLogger())
	if err != nil {
		t.Fatal(err)
	}
	m := msg(5, 10, "nf_ct_proto_6: invalid new ", buildIP(true, 6, 40000, 443, packet.FlagFIN|packet.FlagACK, 0))
	c.Packet(m)
	want := `
# HELP nfdrop_conntrack_log_messages_total Conntrack's own log messages (nf_conntrack_log_invalid) read from a group, by the packet's family and protocol and conntrack's reason. They are not drops and are not in nfdrop_packets_total.
# TYPE nfdrop_conntrack_log_messages_total counter
nfdrop_conntrack_log_messages_total{family="ipv6",group="5",proto="tcp",reason="invalid_new"} 1
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), "nfdrop_conntrack_log_messages_total", "nfdrop_drop_reasons_total"); err != nil {
		t.Error(err)
	}
}

// TestReasonsSettings: conntrack's logging settings of the namespace, shown
// only when the packets come from this kernel.
func TestReasonsSettings(t *testing.T) {
	dir := fakeSysctls(t, map[string]string{"nf_conntrack_log_invalid": "6", "nf_log/2": "nfnetlink_log", "nf_log/10": "NONE"})
	for _, kernel := range []bool{true, false} {
		c, err := New(Config{Groups: []classify.Group{0}, MaxPrefixes: 2, Reasons: &ctlog.Config{}, KernelSettings: kernel, SysctlDir: dir}, promslog.NewNopLogger())
		if err != nil {
			t.Fatal(err)
		}
		want := `
# HELP nfdrop_conntrack_log_invalid net.netfilter.nf_conntrack_log_invalid of the exporter's network namespace: the protocol number whose INVALID packets conntrack logs (6 TCP, 255 all, 0 none).
# TYPE nfdrop_conntrack_log_invalid gauge
nfdrop_conntrack_log_invalid 6
# HELP nfdrop_conntrack_logger_info The default logger of a family in the exporter's network namespace (net.netfilter.nf_log.2 for ipv4, nf_log.10 for ipv6); conntrack's messages reach NFLOG group 0 only when it is nfnetlink_log.
# TYPE nfdrop_conntrack_logger_info gauge
nfdrop_conntrack_logger_info{family="ipv4",logger="nfnetlink_log"} 1
nfdrop_conntrack_logger_info{family="ipv6",logger="NONE"} 1
`
		if !kernel {
			want = ""
		}
		if err := testutil.CollectAndCompare(c, strings.NewReader(want), "nfdrop_conntrack_log_invalid", "nfdrop_conntrack_logger_info", "nfdrop_conntrack_nflog_attributes_supported"); err != nil {
			t.Errorf("kernel settings %v: %v", kernel, err)
		}
		c.SetConntrackAttrs(false)
		if n := testutil.CollectAndCount(c, "nfdrop_conntrack_nflog_attributes_supported"); n != boolCount(kernel) {
			t.Errorf("kernel settings %v: %d attribute series once probed", kernel, n)
		}
	}
}

func boolCount(b bool) int {
	if b {
		return 1
	}
	return 0
}
