package bench

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf/asm"
	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop-lab/lab"
	"github.com/nfdrop/nfdrop_exporter/collector/capture"
)

func TestParseStatCPU(t *testing.T) {
	// The command name may contain spaces and parentheses.
	line := []byte("1234 (nfdrop (x) y) S 1 1234 1234 0 -1 4194560 2200 0 0 0 250 75 0 0 20 0 5 0 100 1000000 4000 18446744073709551615\n")
	got, err := parseStatCPU(line)
	if err != nil || got != 3250*time.Millisecond {
		t.Errorf("parseStatCPU = %v, %v; want 3.25s (250+75 ticks)", got, err)
	}
	if _, err := parseStatCPU([]byte("1234 (x) S 1 2")); err == nil {
		t.Error("short stat line accepted")
	}
}

func TestParseStatusKB(t *testing.T) {
	st := []byte("Name:\tnfdrop_exporter\nVmPeak:\t 1234 kB\nVmHWM:\t   20480 kB\nVmRSS:\t 10000 kB\n")
	if got, err := parseStatusKB(st, "VmHWM:"); err != nil || got != 20480<<10 {
		t.Errorf("VmHWM = %d, %v; want %d", got, err, 20480<<10)
	}
	if _, err := parseStatusKB(st, "VmSwap:"); err == nil {
		t.Error("missing key accepted")
	}
}

func TestParseNetlink(t *testing.T) {
	in := `sk               Eth Pid        Groups   Rmem     Wmem     Dump  Locks    Drops    Inode
0000000000000000 0   4181       00000000 0        0        0     2        0        30641
0000000000000000 12  4837       00000000 131072   0        0     2        17       41040
0000000000000000 12  0          00000000 0        0        0     2        0        1
`
	got, err := parseNetlink([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []netlinkSock{{Portid: 4837, Rmem: 131072, Drops: 17}, {Portid: 0}}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("parseNetlink = %+v, want %+v", got, want)
	}
	if _, err := parseNetlink([]byte("garbage\n")); err == nil {
		t.Error("bad header accepted")
	}
}

func TestParseMetrics(t *testing.T) {
	in := `# HELP nfdrop_packets_total x
# TYPE nfdrop_packets_total counter
nfdrop_packets_total{class="teardown",family="ipv4",flags="ACK,FIN",group="0",port="443",prefix="denied",proto="tcp",side="client"} 1500
nfdrop_packets_total{class="probe",family="ipv6",flags="NONE",group="0",port="443",prefix="denied",proto="tcp",side="client"} 2.5e+06
nfdrop_packets_total{class="probe",family="ipv6",flags="NONE",group="10",port="443",prefix="denied",proto="tcp",side="client"} 99
nfdrop_messages_lost_total{group="0"} 42
nfdrop_messages_lost_total{group="10"} 7
nfdrop_up{group="0"} 1
nfdrop_packet_size_bytes_bucket{class="probe",group="0",le="40"} 3
go_memstats_mallocs_total 123456
`
	s, err := parseMetrics(strings.NewReader(in), "0")
	if err != nil {
		t.Fatal(err)
	}
	want := scrape{Packets: 2501500, Lost: 42, Up: 1, Mallocs: 123456, Series: 8, PacketSeries: 2, ExporterLines: 7}
	if s != want {
		t.Errorf("parseMetrics = %+v, want %+v", s, want)
	}
	// The eBPF source's group is labelled "ebpf"; NFLOG group 0's series are not its.
	ebpf := in + `nfdrop_packets_total{class="handshake",family="ipv4",flags="SYN",group="ebpf",port="22",prefix="",proto="tcp",side="client"} 77
nfdrop_messages_lost_total{group="ebpf"} 3
nfdrop_up{group="ebpf"} 1
`
	if s, err := parseMetrics(strings.NewReader(ebpf), "ebpf"); err != nil || s.Packets != 77 || s.Lost != 3 || s.Up != 1 || s.PacketSeries != 1 {
		t.Errorf("parseMetrics(ebpf) = %+v, %v; want 77 packets, 3 lost, up", s, err)
	}
	if _, err := parseMetrics(strings.NewReader("nfdrop_up{group=\"0\"} 1\n"), "0"); err == nil {
		t.Error("answer without nfdrop_messages_lost_total accepted")
	}
}

func TestCountPcap(t *testing.T) {
	for _, ng := range []bool{false, true} {
		var b bytes.Buffer
		write := func(ci gopacket.CaptureInfo, d []byte) error { return nil }
		if ng {
			w, err := pcapgo.NewNgWriter(&b, layers.LinkType(capture.LinkTypeNFLOG))
			if err != nil {
				t.Fatal(err)
			}
			defer w.Flush()
			write = func(ci gopacket.CaptureInfo, d []byte) error {
				if err := w.WritePacket(ci, d); err != nil {
					return err
				}
				return w.Flush()
			}
		} else {
			w := pcapgo.NewWriter(&b)
			w.WriteFileHeader(65535, layers.LinkType(capture.LinkTypeNFLOG))
			write = w.WritePacket
		}
		for _, n := range []int{40, 0, 300} {
			if err := write(gopacket.CaptureInfo{CaptureLength: n, Length: n}, make([]byte, n)); err != nil {
				t.Fatal(err)
			}
		}
		full := b.Bytes()
		if n, err := countPcap(bytes.NewReader(full)); err != nil || n != 3 {
			t.Errorf("pcapng=%v: countPcap = %d, %v; want 3", ng, n, err)
		}
		if _, err := countPcap(bytes.NewReader(full[:len(full)-1])); err == nil {
			t.Errorf("pcapng=%v: truncated record accepted", ng)
		}
	}
	if n, err := countPcap(bytes.NewReader(nil)); err != nil || n != 0 {
		t.Errorf("empty file: %d, %v; want 0, nil", n, err)
	}
	if _, err := countPcap(bytes.NewReader(make([]byte, 24))); err == nil {
		t.Error("bad magic accepted")
	}
}

func TestParseSaveCounters(t *testing.T) {
	out := `*filter
:INPUT ACCEPT [0:0]
[3:180] -A INPUT -i lo -j ACCEPT
[0:0] -A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
[2:120] -A INPUT -p tcp -m conntrack --ctstate NEW -m multiport --dports 80,443 -j ACCEPT
[1000:40000] -A INPUT -j NFLOG --nflog-prefix denied --nflog-size 256
[1000:40000] -A INPUT -j NFLOG --nflog-prefix denied --nflog-size 256
[5:200] -A INPUT -j NFLOG --nflog-prefix other --nflog-group 3
[1000:40000] -A INPUT -j DROP
COMMIT
`
	logged, accepted, err := parseSaveCounters(out, 0)
	if err != nil || logged != 2000 || accepted != 2 {
		t.Errorf("parseSaveCounters = %d, %d, %v; want 2000 logged, 2 accepted", logged, accepted, err)
	}
	if _, _, err := parseSaveCounters(out, 7); err == nil {
		t.Error("missing group accepted")
	}
}

func TestParseProgFdinfo(t *testing.T) {
	info := []byte("pos:\t0\nflags:\t02000002\nmnt_id:\t15\nino:\t1057\nprog_type:\t26\nprog_jited:\t1\nprog_tag:\tb7a58d4c0c6f2a3e\nmemlock:\t4096\nprog_id:\t812\nrun_time_ns:\t0\nrun_cnt:\t0\nrecursion_misses:\t0\nverified_insns:\t210\n")
	typ, id, err := parseProgFdinfo(info)
	if err != nil || typ != bpfProgTypeTracing || id != 812 {
		t.Errorf("parseProgFdinfo = %d, %d, %v; want 26, 812", typ, id, err)
	}
	for _, bad := range []string{"pos:\t0\n", "prog_type:\t26\nprog_id:\tx\n"} {
		if _, _, err := parseProgFdinfo([]byte(bad)); err == nil {
			t.Errorf("fdinfo %q accepted", bad)
		}
	}
}

func TestParseCommandOutput(t *testing.T) {
	r, err := parseCommandOutput("starting\nreceived=1000 lost=5 mallocs=31000\n")
	if err != nil || r != (result{Received: 1000, Lost: 5, HasLost: true, Mallocs: 31000}) {
		t.Errorf("parseCommandOutput = %+v, %v", r, err)
	}
	if _, err := parseCommandOutput("lost=5\n"); err == nil {
		t.Error("output without received= accepted")
	}
}

func TestSummarize(t *testing.T) {
	pts := []Point{{Name: "p"}}
	rcvs := []Receiver{{Name: "a", Kind: KindExporter}, {Name: "b"}, {Name: "e", Kind: KindEBPF}}
	runs := []RunResult{
		{Point: "p", Receiver: "a", CPUPerM: 0.3, LossPct: 0, CPUPerMDrops: 0.3},
		{Point: "p", Receiver: "a", CPUPerM: 0.1, LossPct: 1, CPUPerMDrops: 0.1},
		{Point: "p", Receiver: "a", CPUPerM: 0.2, LossPct: 0, CPUPerMDrops: 0.2},
		{Point: "p", Receiver: "b", CPUPerM: 0.8},
		{Point: "p", Receiver: "b", Err: "boom", CPUPerM: 99},
		{Point: "p", Receiver: "e", CPUPerM: 0.5, CPUPerMDrops: 0.5, BPFPerM: 0.125, LossPct: 2},
	}
	cs := summarize(runs, pts, rcvs)
	if len(cs) != 3 || cs[2].Kind != KindEBPF || cs[2].BPFPerM != [3]float64{0.125, 0.125, 0.125} || cs[0].N != 3 || cs[0].CPUPerM != [3]float64{0.2, 0.1, 0.3} || cs[0].LossPct != [3]float64{0, 0, 1} ||
		cs[1].N != 1 || cs[1].CPUPerM != [3]float64{0.8, 0.8, 0.8} {
		t.Errorf("summarize = %+v", cs)
	}
	if m := median3([]float64{4, 1, 3, 2}); m != [3]float64{2.5, 1, 4} {
		t.Errorf("median3 of an even count = %v, want [2.5 1 4]", m)
	}
	var b bytes.Buffer
	if err := WriteTables(&b, Report{Points: pts, Summary: cs, Runs: runs}); err != nil {
		t.Fatal(err)
	}
	// Every row of a table has as many cells as its header.
	cells := -1
	for _, line := range strings.Split(b.String(), "\n") {
		switch {
		case !strings.HasPrefix(line, "|"):
			cells = -1
		case cells < 0:
			cells = strings.Count(line, "|")
		case strings.Count(line, "|") != cells:
			t.Errorf("row %q has %d cell separators, header %d", line, strings.Count(line, "|"), cells)
		}
	}
	for _, want := range []string{"| p | a | 3 |", "0.200 [0.100–0.300]", "| 4.00x |", "p / b rep 0: boom",
		"| point | a CPU s / M drops | e CPU s / M drops | of it BPF program | e / a | e loss % |", "| p | 0.200 [0.100–0.300] | 0.500 | 0.125 | 2.50x | 2.00 |"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("tables lack %q:\n%s", want, b.String())
		}
	}
}

func TestParsePoint(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Point
		bad  bool
	}{
		{in: "200k:1:600000", want: Point{Name: "200k pps", Rate: 200_000, Rules: 1, Packets: 600_000, Mix: lab.MixTeardown}},
		{in: "max:8:300k", want: Point{Name: "max pps x8 rules", Rules: 8, Packets: 300_000, Mix: lab.MixTeardown}},
		{in: "max:1:600000:random", want: Point{Name: "random max pps", Rules: 1, Packets: 600_000, Mix: lab.MixRandom}},
		{in: "50000:4:1000", want: Point{Name: "50k pps x4 rules", Rate: 50_000, Rules: 4, Packets: 1000, Mix: lab.MixTeardown}},
		{in: "50k:1:3M:noscrape", want: Point{Name: "50k pps, no scrapes", Rate: 50_000, Rules: 1, Packets: 3_000_000, Mix: lab.MixTeardown, NoScrapes: true}},
		{in: "max:2:1k:noscrape:random", want: Point{Name: "random max pps x2 rules, no scrapes", Rules: 2, Packets: 1000, Mix: lab.MixRandom, NoScrapes: true}},
		{in: "200k:1:100:random:random", bad: true},
		{in: "200k:1:100:noscrape:noscrape", bad: true},
		{in: "200k:1:100:teardown:noscrape:x", bad: true},
		{in: "200k:1", bad: true},
		{in: "fast:1:100", bad: true},
		{in: "200k:0:100", bad: true},
		{in: "200k:1:100:bogus", bad: true},
		{in: "-5:1:100", bad: true},
		{in: "200k:17:100", bad: true},
	} {
		got, err := ParsePoint(tc.in)
		if tc.bad {
			if err == nil {
				t.Errorf("ParsePoint(%q) = %+v, want an error", tc.in, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParsePoint(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}

func TestFloorPoints(t *testing.T) {
	ps := FloorPoints()
	want := []string{"150k pps x8 rules", "150k pps x8 rules, no scrapes", "50k pps", "50k pps, no scrapes"}
	if len(ps) != len(want) {
		t.Fatalf("FloorPoints = %+v", ps)
	}
	for i, p := range ps {
		if p.Name != want[i] || p.NoScrapes != (i%2 == 1) || p.Packets*uint64(p.Rules) < 3_000_000 || p.Rate == 0 {
			t.Errorf("point %d = %+v: want %q, fixed rate, at least 3M messages, scrapes off on every second point", i, p, want[i])
		}
		if !p.NoScrapes && p.ScrapeEvery != time.Second {
			t.Errorf("%s: scraped every %v, want 1s", p.Name, p.ScrapeEvery)
		}
		// Named like the same load given as --point.
		spec := fmt.Sprintf("%gk:%d:%d", p.Rate/1000, p.Rules, p.Packets)
		if p.NoScrapes {
			spec += ":noscrape"
		}
		if q, err := ParsePoint(spec); err != nil || q.Name != p.Name {
			t.Errorf("ParsePoint(%q) = %q, %v; want the name %q", spec, q.Name, err, p.Name)
		}
	}
	if ps[0].Rate != 150_000 || ps[0].Rules != 8 || ps[2].Rate != 50_000 || ps[2].Rules != 1 {
		t.Errorf("FloorPoints = %+v, want 150k pps x8 rules and 50k pps x1 rule", ps)
	}
	for _, name := range []string{"full", "quick", "floor"} {
		if f, ok := PointSets()[name]; !ok || len(f()) == 0 {
			t.Errorf("point set %q missing", name)
		}
	}
	// 3M packets at 50k pps take 60 s: the flood's cap grows with its plan.
	if got := floodLimit(30*time.Second, ps[2]); got != 125*time.Second {
		t.Errorf("floodLimit(50k pps, 3M) = %v, want 125s", got)
	}
	if got := floodLimit(30*time.Second, Point{Packets: 1_000_000}); got != 30*time.Second {
		t.Errorf("floodLimit(max rate) = %v, want the 30s cap", got)
	}
}

func TestScrapeStats(t *testing.T) {
	var lat []time.Duration
	for i := 1; i <= 200; i++ {
		lat = append(lat, time.Duration(i)*time.Millisecond)
	}
	st := scrapeStats(lat)
	if st.p50 != 100*time.Millisecond || st.p99 != 198*time.Millisecond || st.max != 200*time.Millisecond || st.over100ms != 100 {
		t.Errorf("scrapeStats(1..200 ms) = %+v, want p50 100ms, p99 198ms, max 200ms, 100 over 100 ms", st)
	}
	if st := scrapeStats([]time.Duration{7 * time.Millisecond}); st.p50 != st.max || st.p99 != st.max || st.over100ms != 0 {
		t.Errorf("one scrape: %+v", st)
	}
	if st := scrapeStats(nil); st != (latencyStats{}) {
		t.Errorf("no scrapes: %+v", st)
	}
	w := [][2]int64{{100, 200}, {1000, 1100}}
	for _, tc := range []struct {
		a, b int64
		want bool
	}{{0, 99, false}, {0, 100, true}, {150, 160, true}, {201, 999, false}, {900, 2000, true}, {1101, 1200, false}} {
		if got := overlapsAny(tc.a, tc.b, w); got != tc.want {
			t.Errorf("overlapsAny(%d, %d) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
	}
}

func TestWindowCPU(t *testing.T) {
	ms := time.Millisecond
	start := map[int]time.Duration{1: 100 * ms, 2: 50 * ms, 3: 10 * ms, 4: 5 * ms}
	end := map[int]time.Duration{1: 300 * ms, 2: 50 * ms, 5: 20 * ms} // 3 and 4 exited, 5 is new
	exited := map[int]time.Duration{3: 40 * ms, 6: 7 * ms}            // 6 started and exited in between
	cpu, n := windowCPU(start, end, exited)
	if want := (200 + 0 + 20 + 30 + 7) * ms; cpu != want || n != (threadCounts{counted: 5, exited: 2, missed: 1}) {
		t.Errorf("windowCPU = %v, %+v; want %v, 5 counted, 2 exited, 1 missed (thread 4)", cpu, n, want)
	}
	cpu, n = windowCPU(start, end, nil)
	if cpu != 220*ms || n != (threadCounts{counted: 3, missed: 2}) {
		t.Errorf("windowCPU without exit records = %v, %+v", cpu, n)
	}
	if d, err := parseSchedstat([]byte("123456789 1000 42\n")); err != nil || d != 123456789 {
		t.Errorf("parseSchedstat = %v, %v", d, err)
	}
	for _, bad := range []string{"", "1 2", "x 1 2", "-1 2 3"} {
		if _, err := parseSchedstat([]byte(bad)); err == nil {
			t.Errorf("parseSchedstat(%q) accepted", bad)
		}
	}
}

// TestTracerProgramsAssemble checks every jump of the tracer's programs has
// its label and every map reference its map (loading needs root and BPF:
// TestReferenceReceiverAndTracer).
func TestTracerProgramsAssemble(t *testing.T) {
	spec := tracerSpec(1234, 5, traceOffsets{regsFD: 112, regsNr: 120, taskRuntime: 200})
	for name, p := range spec.Programs {
		var b bytes.Buffer
		if err := p.Instructions.Marshal(&b, binary.LittleEndian); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		for _, ins := range p.Instructions {
			if ins.OpCode == asm.InvalidOpCode {
				t.Errorf("%s: invalid instruction %v", name, ins)
			}
			if ref := ins.Reference(); ref != "" && ins.IsLoadFromMap() && spec.Maps[ref] == nil {
				t.Errorf("%s: reference to missing map %q", name, ref)
			}
		}
	}
}

func TestRatioTable(t *testing.T) {
	pts := []Point{{Name: "p"}}
	runs := []RunResult{
		{Point: "p", Receiver: "exp", CPUPerM: 0.3, RecvTraced: true, RecvGapMaxMs: 12.5, Scrapes: 3, ScrapeMedMs: 4, ScrapeP99Ms: 9, ScrapeMaxMs: 9},
		{Point: "p", Receiver: "ref", CPUPerM: 0.05, RecvTraced: true, RecvGapMaxMs: 11},
		{Point: "p", Receiver: "ulogd2", CPUPerM: 0.9, RecvTraceErr: "no BTF"},
	}
	r := Report{Points: pts, Runs: runs, Receivers: []ReceiverInfo{{"exp", KindExporter}, {"ref", KindReference}, {"ulogd2", KindUlogd}}}
	r.Summary = summarize(runs, pts, []Receiver{{Name: "exp"}, {Name: "ref"}, {Name: "ulogd2"}})
	var b bytes.Buffer
	if err := WriteTables(&b, r); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| point | exp CPU s/M | ref CPU s/M | ulogd2 CPU s/M | exp / ref | ulogd2 / exp | exp loss % | ref loss % | ulogd2 loss % | exp max recv gap ms | ref max recv gap ms | ulogd2 max recv gap ms |",
		"| p | 0.300 | 0.050 | 0.900 | 6.00x | 3.00x | 0.00 | 0.00 | 0.00 | 12.5 | 11.0 | – |",
		"| 3 | 4.0 / 9.0 / 9.0 | 0 |", "no receive-call gaps for ulogd2: no BTF",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("tables lack %q:\n%s", want, b.String())
		}
	}
}

func FuzzParsePoint(f *testing.F) {
	for _, s := range []string{"200k:1:600000", "max:8:300k:random", "50k:1:3M:noscrape", "max:2:1k:noscrape:random", "1:1:1", "0.5k:16:50M", "x", "::::", "200k:1:1e400"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePoint(s)
		if err != nil {
			return
		}
		if p.Rules < 1 || p.Rules > 16 || p.Packets < 1 || p.Packets > 50_000_000 || p.Rate < 0 || math.IsInf(p.Rate, 0) || math.IsNaN(p.Rate) || p.Name == "" ||
			(p.Mix != lab.MixTeardown && p.Mix != lab.MixRandom) || p.NoScrapes != strings.HasSuffix(p.Name, ", no scrapes") {
			t.Fatalf("ParsePoint(%q) = %+v", s, p)
		}
	})
}

func FuzzParseSchedstat(f *testing.F) {
	for _, s := range []string{"123456789 1000 42\n", "0 0 0", "1 2", "-1 2 3", "18446744073709551615 1 1", "9223372036854775807 0 0"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := parseSchedstat(b)
		if err == nil && d < 0 {
			t.Fatalf("parseSchedstat(%q) = %v", b, d)
		}
	})
}
