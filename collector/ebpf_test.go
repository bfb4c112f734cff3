package collector

import (
	"strings"
	"testing"

	"github.com/nfdrop/nfdrop_exporter/collector/classify"
	"github.com/nfdrop/nfdrop_exporter/collector/ebpf"
	"github.com/nfdrop/nfdrop_exporter/collector/packet"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/promslog"
)

// fakeKernel stands for the eBPF program, which collector/ebpf loads for real.
type fakeKernel struct {
	counts ebpf.Counts
	drops  []ebpf.ReasonCount
	calls  []string // what was read, in order
}

func (f *fakeKernel) Counts() (ebpf.Counts, error) {
	f.calls = append(f.calls, "counts")
	return f.counts, nil
}

func (f *fakeKernel) KernelDrops() ([]ebpf.ReasonCount, error) {
	f.calls = append(f.calls, "reasons")
	return f.drops, nil
}

// TestEBPFExposition: the eBPF group's series carry group="ebpf", its losses
// are the kernel's count, and the kernel's own counts follow the packets.
func TestEBPFExposition(t *testing.T) {
	k := &fakeKernel{counts: ebpf.Counts{Matched: 7, Lost: 2, Missed: 1},
		drops: []ebpf.ReasonCount{{Reason: "no_socket", Count: 3}, {Reason: "netfilter_drop", Count: 7}}}
	c, err := New(Config{Groups: []classify.Group{0, classify.GroupEBPF}, MaxPrefixes: 2, EBPF: k}, promslog.NewNopLogger())
	if err != nil {
		t.Fatal(err)
	}
	c.Bound(classify.GroupEBPF, true)
	for range 5 {
		c.Packet(msg(classify.GroupEBPF, 2, "", ipv4TCP(packet.FlagFIN|packet.FlagACK, 51000, 443)))
	}
	c.Flush(classify.GroupEBPF)
	want := `
# HELP nfdrop_ebpf_drops_total Packets netfilter dropped in the exporter's network namespace that the eBPF program saw (the kernel's drop tracepoint, reason NETFILTER_DROP): once read, each is in nfdrop_packets_total{group="ebpf"} or nfdrop_messages_lost_total{group="ebpf"}.
# TYPE nfdrop_ebpf_drops_total counter
nfdrop_ebpf_drops_total 7
# HELP nfdrop_ebpf_program_misses_total Drop tracepoint events of any namespace and reason the kernel did not run the eBPF program for, because it was already running on that CPU; drops they stand for are in no count.
# TYPE nfdrop_ebpf_program_misses_total counter
nfdrop_ebpf_program_misses_total 1
# HELP nfdrop_kernel_drops_total Packets the kernel freed as dropped in the exporter's network namespace, by the kernel's drop reason (SKB_DROP_REASON_ lower-cased, unknown for values outside the kernel's list), counted in the kernel.
# TYPE nfdrop_kernel_drops_total counter
nfdrop_kernel_drops_total{reason="netfilter_drop"} 7
nfdrop_kernel_drops_total{reason="no_socket"} 3
# HELP nfdrop_messages_lost_total Packets the kernel logged that never reached the exporter, from NFLOG sequence-number gaps, or for group "ebpf" the drops the full ring buffer had no room for.
# TYPE nfdrop_messages_lost_total counter
nfdrop_messages_lost_total{group="0"} 0
nfdrop_messages_lost_total{group="ebpf"} 2
# HELP nfdrop_packets_total Packets logged by the NFLOG rule(s) of a group, or for group "ebpf" the netfilter drops seen at the kernel's drop tracepoint, by class, TCP flags, service port and side.
# TYPE nfdrop_packets_total counter
nfdrop_packets_total{class="teardown",family="ipv4",flags="ACK,FIN",group="ebpf",port="443",prefix="",proto="tcp",side="client"} 5
# HELP nfdrop_up 1 while the NFLOG group is bound and being read, or for group "ebpf" while the drop program is attached and its ring buffer read.
# TYPE nfdrop_up gauge
nfdrop_up{group="0"} 0
nfdrop_up{group="ebpf"} 1
`
	k.calls = nil
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), "nfdrop_ebpf_drops_total", "nfdrop_ebpf_program_misses_total",
		"nfdrop_kernel_drops_total", "nfdrop_messages_lost_total", "nfdrop_packets_total", "nfdrop_up"); err != nil {
		t.Error(err)
	}
	// Losses are read before the packets are walked, the kernel's drops after:
	// so that drops >= packets + lost holds for any one scrape.
	if got := strings.Join(k.calls, ","); got != "counts,counts,reasons" {
		t.Errorf("reads in the order %s, want counts (lost), counts (drops), reasons", got)
	}
	if _, err := New(Config{Groups: []classify.Group{0}, MaxPrefixes: 2, EBPF: k}, promslog.NewNopLogger()); err == nil {
		t.Error("the eBPF counts were accepted without the ebpf group")
	}
}
