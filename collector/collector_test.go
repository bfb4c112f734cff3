package collector

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nfdrop/nfdrop_exporter/collector/classify"
	"github.com/nfdrop/nfdrop_exporter/collector/packet"
	"github.com/nfdrop/nfdrop_exporter/collector/source"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/promslog"
)

// ipv4TCP builds a 40-byte IPv4+TCP header (checksums are not checked by the decoder).
func ipv4TCP(flags uint8, sport, dport uint16) []byte {
	b := make([]byte, 40)
	b[0], b[8], b[9] = 0x45, 64, 6
	binary.BigEndian.PutUint16(b[2:], 40)
	copy(b[12:], []byte{10, 99, 0, 2, 10, 99, 0, 1})
	binary.BigEndian.PutUint16(b[20:], sport)
	binary.BigEndian.PutUint16(b[22:], dport)
	b[32], b[33] = 0x50, flags
	return b
}

func ipv6UDP(sport, dport uint16) []byte {
	b := make([]byte, 48)
	b[0], b[6], b[7] = 0x60, 17, 64
	binary.BigEndian.PutUint16(b[4:], 8)
	binary.BigEndian.PutUint16(b[40:], sport)
	binary.BigEndian.PutUint16(b[42:], dport)
	return b
}

func newTestCollector(t testing.TB, groups ...classify.Group) *Collector {
	t.Helper()
	c, err := New(Config{Groups: groups, Ports: classify.MustParsePorts(classify.DefaultPorts), MaxPrefixes: 2}, promslog.NewNopLogger())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func msg(group classify.Group, family uint8, prefix string, payload []byte) *source.Message {
	return &source.Message{Group: group, Family: family, Prefix: []byte(prefix), Payload: payload,
		TimestampNs: time.Unix(1700000000, 500000000).UnixNano(), HasTimestamp: true}
}

func TestCollectorCountsAndExposes(t *testing.T) {
	c := newTestCollector(t, 5)
	c.Bound(5, true)
	for i := 0; i < 3; i++ {
		c.Packet(msg(5, 2, "denied ", ipv4TCP(packet.FlagFIN|packet.FlagACK, 51000, 443)))
	}
	c.Packet(msg(5, 2, "denied", ipv4TCP(packet.FlagSYN, 40000, 22)))
	c.Packet(msg(5, 10, "", ipv6UDP(40000, 53)))
	c.Packet(msg(5, 2, "third", ipv4TCP(0, 1, 2)))                          // over max-prefixes=2: (other)
	c.Packet(msg(5, 2, "denied", ipv4TCP(packet.FlagACK, 40000, 443)[:30])) // cut before the flags
	c.Packet(msg(7, 2, "denied", ipv4TCP(packet.FlagACK, 40000, 443)))      // not our group: ignored
	if n := c.order[0].lastPacket.Load(); n != 0 {
		t.Fatalf("last packet time %d published before the datagram ended", n)
	}
	c.Flush(5) // the end of the datagram publishes the last packet's time
	c.Flush(7)
	c.Lost(5, 4)
	c.ReceiveError(5, source.ReasonENOBUFS)

	want := `
# HELP nfdrop_packets_total Packets logged by the NFLOG rule(s) of a group, or for group "ebpf" the netfilter drops seen at the kernel's drop tracepoint, by class, TCP flags, service port and side.
# TYPE nfdrop_packets_total counter
nfdrop_packets_total{class="handshake",family="ipv4",flags="SYN",group="5",port="22",prefix="denied",proto="tcp",side="client"} 1
nfdrop_packets_total{class="malformed",family="ipv4",flags="",group="5",port="",prefix="denied",proto="unknown",side=""} 1
nfdrop_packets_total{class="other",family="ipv6",flags="",group="5",port="53",prefix="",proto="udp",side="client"} 1
nfdrop_packets_total{class="probe",family="ipv4",flags="NONE",group="5",port="system",prefix="(other)",proto="tcp",side="server"} 1
nfdrop_packets_total{class="teardown",family="ipv4",flags="ACK,FIN",group="5",port="443",prefix="denied",proto="tcp",side="client"} 3
# HELP nfdrop_messages_lost_total Packets the kernel logged that never reached the exporter, from NFLOG sequence-number gaps, or for group "ebpf" the drops the full ring buffer had no room for.
# TYPE nfdrop_messages_lost_total counter
nfdrop_messages_lost_total{group="5"} 4
# HELP nfdrop_up 1 while the NFLOG group is bound and being read, or for group "ebpf" while the drop program is attached and its ring buffer read.
# TYPE nfdrop_up gauge
nfdrop_up{group="5"} 1
# HELP nfdrop_receive_errors_total Failed receives on the NFLOG socket, by reason.
# TYPE nfdrop_receive_errors_total counter
nfdrop_receive_errors_total{group="5",reason="bad_message"} 0
nfdrop_receive_errors_total{group="5",reason="enobufs"} 1
nfdrop_receive_errors_total{group="5",reason="other"} 0
nfdrop_receive_errors_total{group="5",reason="truncated"} 0
# HELP nfdrop_decode_errors_total Packets classified malformed, by the reason their headers could not be decoded.
# TYPE nfdrop_decode_errors_total counter
nfdrop_decode_errors_total{group="5",reason="bad_header_length"} 0
nfdrop_decode_errors_total{group="5",reason="bad_total_length"} 0
nfdrop_decode_errors_total{group="5",reason="bad_version"} 0
nfdrop_decode_errors_total{group="5",reason="no_payload"} 0
nfdrop_decode_errors_total{group="5",reason="truncated_ext_header"} 0
nfdrop_decode_errors_total{group="5",reason="truncated_ip_header"} 0
nfdrop_decode_errors_total{group="5",reason="truncated_tcp_header"} 1
# HELP nfdrop_last_packet_timestamp_seconds When the group's last packet was logged (NFLOG timestamp, else arrival), in seconds since the epoch.
# TYPE nfdrop_last_packet_timestamp_seconds gauge
nfdrop_last_packet_timestamp_seconds{group="5"} 1.7000000005e+09
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want),
		"nfdrop_packets_total", "nfdrop_messages_lost_total", "nfdrop_up", "nfdrop_receive_errors_total",
		"nfdrop_decode_errors_total", "nfdrop_last_packet_timestamp_seconds"); err != nil {
		t.Error(err)
	}
	if problems, err := testutil.CollectAndLint(c); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", err, problems)
	}
}

func TestCollectorHealthSeriesExistBeforeTraffic(t *testing.T) {
	c := newTestCollector(t, 0, 9)
	// 2 groups x (up + lost + rebinds + 4 receive reasons + 7 decode reasons + 6 size histograms).
	if n := testutil.CollectAndCount(c); n != 2*(1+1+1+4+7+6) {
		t.Errorf("got %d series before any packet, want %d", n, 2*(1+1+1+4+7+6))
	}
	c.Rebind(9)
	c.Rebind(9)
	want := `# HELP nfdrop_rebinds_total Times the NFLOG socket was closed after a receive error and the group bound again; packets logged in between are counted nowhere.
# TYPE nfdrop_rebinds_total counter
nfdrop_rebinds_total{group="0"} 0
nfdrop_rebinds_total{group="9"} 2
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), "nfdrop_rebinds_total"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(c, "nfdrop_packets_total", "nfdrop_last_packet_timestamp_seconds"); n != 0 {
		t.Errorf("got %d packet series before any packet", n)
	}
}

func TestCollectorPacketSizeHistogram(t *testing.T) {
	c := newTestCollector(t, 1)
	c.Packet(msg(1, 2, "", ipv4TCP(packet.FlagRST, 443, 40000)))
	c.Packet(msg(1, 10, "", ipv6UDP(1, 2)))
	want := `
# HELP nfdrop_packet_size_bytes IP datagram length (from the IP header) of logged packets.
# TYPE nfdrop_packet_size_bytes histogram
`
	var sb strings.Builder
	sb.WriteString(want)
	for _, cl := range []string{"fragment", "handshake", "malformed", "other", "probe", "teardown"} {
		var count, sum, b40, b52, b60 int
		switch cl {
		case "teardown":
			count, sum, b40, b52, b60 = 1, 40, 1, 1, 1
		case "other":
			count, sum, b40, b52, b60 = 1, 48, 0, 1, 1
		}
		for _, b := range []struct {
			le string
			n  int
		}{{"28", 0}, {"40", b40}, {"52", b52}, {"60", b60}, {"64", b60}, {"80", b60}, {"128", b60}, {"256", b60}, {"576", b60}, {"1280", b60}, {"1500", b60}, {"9000", b60}, {"65535", b60}, {"+Inf", count}} {
			sb.WriteString("nfdrop_packet_size_bytes_bucket{class=\"" + cl + "\",group=\"1\",le=\"" + b.le + "\"} " + strconv.Itoa(b.n) + "\n")
		}
		sb.WriteString("nfdrop_packet_size_bytes_sum{class=\"" + cl + "\",group=\"1\"} " + strconv.Itoa(sum) + "\n")
		sb.WriteString("nfdrop_packet_size_bytes_count{class=\"" + cl + "\",group=\"1\"} " + strconv.Itoa(count) + "\n")
	}
	if err := testutil.CollectAndCompare(c, strings.NewReader(sb.String()), "nfdrop_packet_size_bytes"); err != nil {
		t.Error(err)
	}
}

func TestCounterTableOverflowKeepsEveryPacket(t *testing.T) {
	tab := newCounterTable(8)
	total := 0
	for i := 0; i < 40; i++ {
		l := classify.Labels{Family: packet.FamilyIPv4, Proto: packet.ProtoTCP, HasFlags: true, Flags: uint8(i % 64), Class: classify.ClassProbe}
		tab.inc(classify.KeyOf(l.Family, l.Proto, l.PortIndex, l.Side, l.Class, l.HasFlags, l.Flags).WithPrefix(uint8(i/64)), l.Class)
		total++
	}
	var sum uint64
	keys := 0
	tab.each(func(k classify.Key, n uint64, _ int64) { sum += n; keys++ })
	sum += tab.overflow[classify.ClassProbe].Load()
	if keys != 8 || sum != uint64(total) {
		t.Errorf("got %d keys and %d packets, want 8 keys and %d packets", keys, sum, total)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	for _, cfg := range []Config{
		{},
		{Groups: []classify.Group{1, 1}, MaxPrefixes: 1},
		{Groups: []classify.Group{1}, MaxPrefixes: 0},
		{Groups: []classify.Group{1}, MaxPrefixes: 255},
		{Groups: []classify.Group{classify.GroupEBPF + 1}, MaxPrefixes: 1},
	} {
		if _, err := New(cfg, promslog.NewNopLogger()); err == nil {
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
}

func TestPacketPathAllocatesNothing(t *testing.T) {
	c := newTestCollector(t, 5)
	msgs := []*source.Message{
		msg(5, 2, "denied", ipv4TCP(packet.FlagFIN|packet.FlagACK, 51000, 443)),
		msg(5, 10, "denied", ipv6UDP(40000, 53)),
		msg(5, 2, "denied", ipv4TCP(packet.FlagSYN, 40000, 22)),
	}
	for _, m := range msgs { // warm up: first sight of a series or bucket may allocate
		c.Packet(m)
	}
	if n := testing.AllocsPerRun(2000, func() {
		for _, m := range msgs {
			c.Packet(m)
		}
		c.Flush(5)
	}); n != 0 {
		t.Errorf("Packet and Flush allocate %v times per 3 packets", n)
	}
}

// recordingSink records what the collector hands a group's teardown reader.
type recordingSink struct {
	calls []string
}

// recordingReader is one group's teardownReader, recording into a sink.
type recordingReader struct {
	group classify.Group
	sink  *recordingSink
}

func (r *recordingReader) Observe(p *packet.Packet, tsNs int64) {
	r.sink.calls = append(r.sink.calls, fmt.Sprintf("observe g=%s %d->%d flags=%#x ts=%d", r.group, p.SrcPort, p.DstPort, p.TCPFlags, tsNs))
}

func (r *recordingReader) Flush() {
	r.sink.calls = append(r.sink.calls, fmt.Sprintf("flush g=%s", r.group))
}

// TestCollectorTeardownSink: only teardown-shaped drops reach the sink, with
// the NFLOG timestamp, and the sink's Flush follows the datagram's last one.
func TestCollectorTeardownSink(t *testing.T) {
	sink := &recordingSink{}
	c := newTestCollector(t, 3)
	c.groups[3].teardown = &recordingReader{group: 3, sink: sink}
	c.Packet(msg(3, 2, "", ipv4TCP(packet.FlagFIN|packet.FlagACK, 51000, 443))) // teardown
	c.Packet(msg(3, 2, "", ipv4TCP(packet.FlagSYN, 51001, 443)))                // handshake
	c.Packet(msg(3, 2, "", ipv4TCP(packet.FlagRST, 51002, 443)))                // teardown
	c.Packet(msg(3, 10, "", ipv6UDP(40000, 53)))                                // other
	c.Flush(3)
	ts := time.Unix(1700000000, 500000000).UnixNano()
	want := []string{
		fmt.Sprintf("observe g=3 51000->443 flags=%#x ts=%d", packet.FlagFIN|packet.FlagACK, ts),
		fmt.Sprintf("observe g=3 51002->443 flags=%#x ts=%d", packet.FlagRST, ts),
		"flush g=3",
	}
	if strings.Join(sink.calls, "\n") != strings.Join(want, "\n") {
		t.Errorf("sink got\n%s\nwant\n%s", strings.Join(sink.calls, "\n"), strings.Join(want, "\n"))
	}
}

// TestSameBytes compares sameBytes with bytes.Equal for every length up to
// 24 and a difference at every position.
func TestSameBytes(t *testing.T) {
	for n := 0; n <= 24; n++ {
		a := make([]byte, n)
		for i := range a {
			a[i] = byte('a' + i)
		}
		b := append([]byte(nil), a...)
		if !sameBytes(a, b) {
			t.Errorf("len %d: equal slices reported different", n)
		}
		for i := 0; i < n; i++ {
			b[i] ^= 0x20
			if sameBytes(a, b) {
				t.Errorf("len %d: a difference at byte %d not seen", n, i)
			}
			b[i] ^= 0x20
		}
	}
}

// makeKey is the series key of a Labels value (Classifier.key builds keys
// directly; the tests start from labels).
