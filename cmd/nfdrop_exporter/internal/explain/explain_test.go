package explain

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"encoding/json"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
	"github.com/nfdrop/nfdrop_exporter/collector/capture"
	"github.com/nfdrop/nfdrop_exporter/collector/classify"
	"github.com/nfdrop/nfdrop_exporter/collector/packet"
	"github.com/nfdrop/nfdrop_exporter/collector/source"
)

var update = flag.Bool("update", false, "rewrite testdata/golden/* from the current output")

func TestMain(m *testing.M) {
	// Syslog and dmesg -T times are local; pin the zone so golden files do not
	// depend on the machine that runs the tests.
	time.Local = time.UTC
	os.Exit(m.Run())
}

func TestGolden(t *testing.T) {
	tests := []struct {
		name  string
		files []string
		ports string
	}{
		{"design", []string{"testdata/design.log"}, ""},
		{"formats", []string{"testdata/formats.log", "testdata/journal.json"}, ""},
		{"lab-iptables-log", []string{"testdata/lab-iptables.log"}, ""},
		{"lab-iptables-pcap", []string{"testdata/lab-iptables.pcap"}, ""},
		{"lab-nft-log", []string{"testdata/lab-nft.log"}, ""},
		{"lab-nft-pcap", []string{"testdata/lab-nft.pcap"}, ""},
		{"lab-nft-ports", []string{"testdata/lab-nft.log"}, "8080,8443"},
		{"empty", []string{"testdata/empty.log"}, ""},
		// written by Debian's ulogd2 2.0.8 (NFLOG → BASE → IFINDEX → IP2STR → PRINTPKT → LOGEMU, and → JSON)
		{"ulogd", []string{"testdata/ulogd-logemu.log", "testdata/ulogd.json"}, ""},
		{"repeated", []string{"testdata/repeated.log"}, ""},
		// the lab's crafted set and real late teardown, as ulogd2 wrote them (TestE2EUlogd2)
		{"lab-ulogd-logemu", []string{"testdata/lab-ulogd-logemu.log"}, ""},
		{"lab-ulogd-json", []string{"testdata/lab-ulogd.json"}, ""},
	}
	for _, tc := range tests {
		for _, format := range []string{"table", "json"} {
			t.Run(tc.name+"/"+format, func(t *testing.T) {
				var out bytes.Buffer
				err := Run(Options{Format: format, Ports: tc.ports, Files: tc.files}, nil, &out)
				if err != nil {
					t.Fatalf("Run: %v", err)
				}
				ext := ".txt"
				if format == "json" {
					ext = ".json"
				}
				golden := filepath.Join("testdata", "golden", tc.name+ext)
				if *update {
					if err := os.WriteFile(golden, out.Bytes(), 0o644); err != nil {
						t.Fatal(err)
					}
					return
				}
				want, err := os.ReadFile(golden)
				if err != nil {
					t.Fatalf("%v (run go test -update to create it)", err)
				}
				if !bytes.Equal(out.Bytes(), want) {
					t.Errorf("output differs from %s (go test -update rewrites it):\n--- got\n%s", golden, out.String())
				}
			})
		}
	}
}

// TestLabLogMatchesCapture is the committed half of TestRealKernel: the LOG
// lines the kernel wrote and the NFLOG capture of the same packets (both from
// the lab) give identical series, label for label.
func TestLabLogMatchesCapture(t *testing.T) {
	for _, fw := range []string{"iptables", "nft"} {
		t.Run(fw, func(t *testing.T) {
			fromLog := explainJSON(t, "testdata/lab-"+fw+".log")
			fromPcap := explainJSON(t, "testdata/lab-"+fw+".pcap")
			if fromLog.Total != 55 || fromPcap.Total != 55 {
				t.Fatalf("totals: log %d, pcap %d, want 55 each", fromLog.Total, fromPcap.Total)
			}
			if d := diffSeries(fromLog.Series, fromPcap.Series); d != "" {
				t.Errorf("LOG lines and capture disagree (-log +pcap):\n%s", d)
			}
			want := map[string]uint64{"teardown": 20, "handshake": 11, "probe": 6, "other": 11, "fragment": 6, "malformed": 1}
			for c, n := range want {
				if fromLog.Classes[c] != n {
					t.Errorf("class %s = %d, want %d", c, fromLog.Classes[c], n)
				}
			}
		})
	}
}

func TestDesignLines(t *testing.T) {
	r := explainJSON(t, "testdata/design.log")
	want := []Series{
		{Prefix: "iptables denied:", Family: "ipv4", Proto: "tcp", Port: "443", Side: "client", Flags: "ACK,FIN", Class: "teardown", Count: 1},
		{Prefix: "iptables denied:", Family: "ipv4", Proto: "tcp", Port: "443", Side: "client", Flags: "RST", Class: "teardown", Count: 1},
		{Prefix: "iptables denied:", Family: "ipv4", Proto: "tcp", Port: "80", Side: "client", Flags: "ACK,FIN", Class: "teardown", Count: 1},
	}
	if d := diffSeries(r.Series, want); d != "" {
		t.Errorf("series (-got +want):\n%s", d)
	}
	if !strings.HasPrefix(r.Verdict, "All 3 drops are late TCP teardown") {
		t.Errorf("verdict %q", r.Verdict)
	}
}

func TestInputs(t *testing.T) {
	design, err := os.ReadFile("testdata/design.log")
	if err != nil {
		t.Fatal(err)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(design)
	zw.Close()
	dir := t.TempDir()
	gzFile := filepath.Join(dir, "kern.log.2.gz")
	if err := os.WriteFile(gzFile, gz.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	badLink := writePcap(t, 147, nil)
	longLine := strings.Repeat("x", 3<<20) + "\n" + string(design)

	tests := []struct {
		name      string
		files     []string
		stdin     string
		wantTotal uint64
		wantIgn   uint64
		wantErr   string // in the returned error: the input's name
		wantMsg   string // in the report's input: why
	}{
		{"stdin default", nil, string(design), 3, 0, "", ""},
		{"stdin dash", []string{"-"}, string(design), 3, 0, "", ""},
		{"gzip", []string{gzFile}, "", 3, 0, "", ""},
		{"missing file still reports the rest", []string{"testdata/design.log", filepath.Join(dir, "nope.log")}, "", 3, 0, "nope.log", "no such file"},
		{"unsupported link type", []string{badLink}, "", 0, 0, "plain.pcap", "link type 147"},
		{"line longer than the buffer", nil, longLine, 3, 1, "", ""},
		{"no newline at the end", nil, strings.TrimSuffix(string(design), "\n"), 3, 0, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			err := Run(Options{Format: "json", Files: tc.files}, strings.NewReader(tc.stdin), &out)
			if tc.wantErr == "" && err != nil {
				t.Fatalf("Run: %v", err)
			}
			if tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("Run error %v; want %q in it", err, tc.wantErr)
			}
			var r Report
			if err := json.Unmarshal(out.Bytes(), &r); err != nil {
				t.Fatalf("report not written: %v", err)
			}
			if tc.wantMsg != "" && !strings.Contains(r.Inputs[len(r.Inputs)-1].Error, tc.wantMsg) {
				t.Errorf("inputs %+v, want the last to say %q", r.Inputs, tc.wantMsg)
			}
			if r.Total != tc.wantTotal || r.Ignored != tc.wantIgn {
				t.Errorf("total %d ignored %d, want %d %d", r.Total, r.Ignored, tc.wantTotal, tc.wantIgn)
			}
		})
	}
}

func TestBadOptions(t *testing.T) {
	for _, o := range []Options{{Format: "yaml"}, {Ports: "http"}} {
		if err := Run(o, strings.NewReader(""), io.Discard); err == nil {
			t.Errorf("Run(%+v) = nil, want an error", o)
		}
	}
}

// TestMaxPrefixesRange: --max-prefixes takes the exporter's range; a larger
// value used to wrap the prefix index and merge unrelated prefixes.
func TestMaxPrefixesRange(t *testing.T) {
	for n, want := range map[int]string{
		-1:    "--max-prefixes=-1: want 1 to 254 distinct prefixes",
		255:   "--max-prefixes=255: want 1 to 254 distinct prefixes",
		65536: "--max-prefixes=65536: want 1 to 254 distinct prefixes",
		70000: "--max-prefixes=70000: want 1 to 254 distinct prefixes",
		254:   "",
		0:     "", // the exporter's default
	} {
		got := ""
		if err := Run(Options{MaxPrefixes: n}, strings.NewReader(""), io.Discard); err != nil {
			got = err.Error()
		}
		if got != want {
			t.Errorf("Run(MaxPrefixes: %d) = %q, want %q", n, got, want)
		}
	}
}

func TestUnparsedExamples(t *testing.T) {
	var in strings.Builder
	for i := 0; i < 8; i++ {
		in.WriteString("Nov 25 13:34:54 web1 kernel: x IN=eth0 OUT= SRC=1.2.3.4 TTL=1 PROTO=TCP SPT=1\n")
		in.WriteString("Nov 25 13:34:54 web1 sshd[1]: hello\n")
	}
	var out bytes.Buffer
	if err := Run(Options{Format: "json"}, strings.NewReader(in.String()), &out); err != nil {
		t.Fatal(err)
	}
	var r Report
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatal(err)
	}
	if r.Unparsed != 8 || r.Ignored != 8 || r.Total != 0 || len(r.UnparsedLines) != maxExamples {
		t.Fatalf("unparsed %d ignored %d total %d examples %d", r.Unparsed, r.Ignored, r.Total, len(r.UnparsedLines))
	}
	for i, u := range r.UnparsedLines {
		if u.Line != uint64(2*i+1) || u.Input != "(stdin)" || !strings.Contains(u.Text, "PROTO=TCP SPT=1") {
			t.Errorf("example %d: %+v", i, u)
		}
	}
	if !strings.Contains(r.Verdict, "No dropped packets") || !strings.Contains(r.Verdict, "8 lines look like firewall log lines") {
		t.Errorf("verdict %q", r.Verdict)
	}
}

// TestPlainCaptures re-wraps the IP packets of the lab NFLOG capture in every
// plain link type and requires the same classification (prefix aside: plain
// captures have none).
// TestPcapng reads the lab's NFLOG capture converted to pcapng: the same
// report as from the pcap, but the format.
func TestPcapng(t *testing.T) {
	f, err := os.Open("testdata/lab-nft.pcap")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	pr, err := capture.Open(bufio.NewReader(f))
	if err != nil {
		t.Fatal(err)
	}
	var ng bytes.Buffer
	w, err := pcapgo.NewNgWriter(&ng, layers.LinkType(capture.LinkTypeNFLOG))
	if err != nil {
		t.Fatal(err)
	}
	for {
		data, ts, err := pr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := w.WritePacket(gopacket.CaptureInfo{Timestamp: ts, CaptureLength: len(data), Length: len(data)}, data); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "lab-nft.pcapng")
	if err := os.WriteFile(path, ng.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	ref, got := explainJSON(t, "testdata/lab-nft.pcap"), explainJSON(t, path)
	if got.Inputs[0].Format != "pcapng" || got.Total != ref.Total || got.Total == 0 {
		t.Fatalf("format %q total %d, want pcapng %d", got.Inputs[0].Format, got.Total, ref.Total)
	}
	if d := diffSeries(mergeSeries(got.Series), mergeSeries(ref.Series)); d != "" {
		t.Errorf("(-pcapng +pcap):\n%s", d)
	}
}

func TestPlainCaptures(t *testing.T) {
	f, err := os.Open("testdata/lab-nft.pcap")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	pr, err := capture.Open(bufio.NewReader(f))
	if err != nil {
		t.Fatal(err)
	}
	var payloads [][]byte
	for {
		data, _, err := pr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		var m source.Message
		if err := source.ParseNFLOGRecord(data, &m); err != nil {
			t.Fatal(err)
		}
		payloads = append(payloads, bytes.Clone(m.Payload))
	}
	ref := explainJSON(t, "testdata/lab-nft.pcap")
	wrap := map[string]struct {
		lt capture.LinkType
		fn func(ip []byte) []byte
	}{
		"ethernet+qinq": {capture.LinkTypeEthernet, func(ip []byte) []byte {
			h := []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0x88, 0xa8, 0, 1, 0x81, 0x00, 0, 2}
			return append(append(h, etherType(ip)...), ip...)
		}},
		"raw":       {capture.LinkTypeRaw, func(ip []byte) []byte { return ip }},
		"sll":       {capture.LinkTypeLinuxSLL, func(ip []byte) []byte { return append(append(make([]byte, 14), etherType(ip)...), ip...) }},
		"sll2":      {capture.LinkTypeLinuxSLL2, func(ip []byte) []byte { return append(append(etherType(ip), make([]byte, 18)...), ip...) }},
		"ipv4/ipv6": {0, nil},
	}
	for name, w := range wrap {
		t.Run(name, func(t *testing.T) {
			var files []string
			if w.fn == nil {
				var v4, v6 [][]byte
				for _, p := range payloads {
					if p[0]>>4 == 4 {
						v4 = append(v4, p)
					} else {
						v6 = append(v6, p)
					}
				}
				files = []string{writePcap(t, capture.LinkTypeIPv4, v4), writePcap(t, capture.LinkTypeIPv6, v6)}
			} else {
				var frames [][]byte
				for _, p := range payloads {
					frames = append(frames, w.fn(p))
				}
				// a non-IP frame (ARP) is ignored, not classified
				if w.lt == capture.LinkTypeEthernet {
					frames = append(frames, append([]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0x08, 0x06}, make([]byte, 28)...))
				}
				files = []string{writePcap(t, w.lt, frames)}
			}
			var out bytes.Buffer
			if err := Run(Options{Format: "json", Files: files}, nil, &out); err != nil {
				t.Fatal(err)
			}
			var r Report
			if err := json.Unmarshal(out.Bytes(), &r); err != nil {
				t.Fatal(err)
			}
			want := make([]Series, len(ref.Series))
			copy(want, ref.Series)
			for i := range want {
				want[i].Prefix = ""
			}
			if d := diffSeries(mergeSeries(r.Series), mergeSeries(want)); d != "" {
				t.Errorf("(-plain +nflog):\n%s", d)
			}
			if w.lt == capture.LinkTypeEthernet && r.Ignored != 1 {
				t.Errorf("ignored %d, want the ARP frame", r.Ignored)
			}
		})
	}
}

func etherType(ip []byte) []byte {
	if ip[0]>>4 == 6 {
		return []byte{0x86, 0xdd}
	}
	return []byte{0x08, 0x00}
}

// mergeSeries sums series that became equal (two inputs, or prefixes dropped).
func mergeSeries(in []Series) []Series {
	idx := map[Series]int{}
	var out []Series
	for _, s := range in {
		n := s.Count
		s.Count = 0
		if i, ok := idx[s]; ok {
			out[i].Count += n
			continue
		}
		idx[s] = len(out)
		s.Count = n
		out = append(out, s)
	}
	return out
}

// writePcap writes frames as a classic pcap of linkType (pcapgo's writer
// holds 8 bits of it: the header is patched for larger ones).
func writePcap(t testing.TB, linkType capture.LinkType, frames [][]byte) string {
	var buf bytes.Buffer
	w := pcapgo.NewWriter(&buf)
	if err := w.WriteFileHeader(65535, layers.LinkType(linkType)); err != nil {
		t.Fatal(err)
	}
	for i, fr := range frames {
		ci := gopacket.CaptureInfo{Timestamp: time.Unix(int64(1795613700+i), 0), CaptureLength: len(fr), Length: len(fr)}
		if err := w.WritePacket(ci, fr); err != nil {
			t.Fatal(err)
		}
	}
	b := buf.Bytes()
	binary.LittleEndian.PutUint32(b[20:], uint32(linkType)) // pcapgo writes little-endian
	f := filepath.Join(t.TempDir(), "plain.pcap")
	if err := os.WriteFile(f, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

// FuzzFrame: the link-layer framing of plain captures never panics and
// returns a suffix of the frame.
func FuzzFrame(f *testing.F) {
	f.Add(uint32(capture.LinkTypeEthernet), []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0x81, 0x00, 0, 1, 0x08, 0x00, 0x45})
	f.Add(uint32(capture.LinkTypeLinuxSLL), make([]byte, 16))
	f.Add(uint32(capture.LinkTypeLinuxSLL2), []byte{0x86, 0xdd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x60})
	f.Add(uint32(capture.LinkTypeRaw), []byte{0x45})
	f.Fuzz(func(t *testing.T, lt uint32, b []byte) {
		ip, fam, ok := frame(capture.LinkType(lt), b)
		if !ok {
			return
		}
		if len(ip) > len(b) || !bytes.Equal(ip, b[len(b)-len(ip):]) {
			t.Fatalf("frame returned bytes that are not a suffix of the frame")
		}
		if fam != packet.FamilyIPv4 && fam != packet.FamilyIPv6 {
			t.Fatalf("family %v", fam)
		}
	})
}

// FuzzPcapInput: any bytes given to explain (capture or text) produce a
// report and never a panic; totals add up.
func FuzzPcapInput(f *testing.F) {
	for _, name := range []string{"testdata/lab-nft.pcap", "testdata/design.log"} {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b[:min(len(b), 600)])
	}
	for _, seed := range []string{
		writePcap(f, capture.LinkTypeNFLOG, [][]byte{{2, 0, 0, 5, 4, 0, 9, 0}, {2}}),
		writePcap(f, capture.LinkTypeEthernet, [][]byte{make([]byte, 40)}),
	} {
		b, err := os.ReadFile(seed)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var out bytes.Buffer
		Run(Options{Format: "json"}, bytes.NewReader(b), &out)
		var r Report
		if err := json.Unmarshal(out.Bytes(), &r); err != nil {
			t.Fatalf("no report: %v", err)
		}
		var sum uint64
		for _, n := range r.Classes {
			sum += n
		}
		if sum != r.Total {
			t.Fatalf("classes sum %d, total %d", sum, r.Total)
		}
	})
}

// BenchmarkExplainText runs the whole text path (read, detect, parse,
// classify, count) over a kern.log-like mix: 8 firewall lines for every other
// line. It reports lines/s and allocations per line.
func BenchmarkExplainText(b *testing.B) {
	design, err := os.ReadFile("testdata/lab-nft.log")
	if err != nil {
		b.Fatal(err)
	}
	fw := strings.Split(strings.TrimSpace(string(design)), "\n")
	var in bytes.Buffer
	lines := 0
	for in.Len() < 32<<20 {
		for i, l := range fw {
			// syslog wrapper around the dmesg line
			in.WriteString("Nov 25 13:34:54 web1 kernel: " + l + "\n")
			lines++
			if i%8 == 7 {
				in.WriteString("Nov 25 13:34:55 web1 sshd[4121]: Connection closed by 203.0.113.9 port 51234 [preauth]\n")
				lines++
			}
		}
	}
	data := in.Bytes()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := Run(Options{Format: "json"}, bytes.NewReader(data), io.Discard); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(lines)*float64(b.N)/b.Elapsed().Seconds(), "lines/s")
}

// TestCountingAllocs: reading, parsing, classifying and counting cost no
// allocation per line: a 20 times larger input allocates exactly as much
// (setup, maps sized by the distinct series) as a small one.
func TestCountingAllocs(t *testing.T) {
	lab, err := os.ReadFile("testdata/lab-iptables.log")
	if err != nil {
		t.Fatal(err)
	}
	c := classify.NewClassifier(classify.MustParsePorts(classify.DefaultPorts))
	measure := func(data []byte) float64 {
		return testing.AllocsPerRun(5, func() {
			a := newAggregator(c, 32)
			in := &input{name: "x"}
			if err := a.readText(in, bufio.NewReaderSize(bytes.NewReader(data), 1<<16)); err != nil || in.packets == 0 {
				t.Fatalf("readText: %v, %d packets", err, in.packets)
			}
		})
	}
	small, large := bytes.Repeat(lab, 10), bytes.Repeat(lab, 200)
	a, b := measure(small), measure(large)
	// A per-line allocation would add >10,000; the runtime itself now and
	// then accounts an allocation to a run (GC), hence the slack of 2.
	if b-a > 2 {
		t.Errorf("allocations grow with input: %v for %d lines, %v for %d lines",
			a, bytes.Count(small, []byte("\n")), b, bytes.Count(large, []byte("\n")))
	}
}
