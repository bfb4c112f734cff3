package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	nflog "github.com/florianl/go-nflog/v2"
	"github.com/mdlayher/netlink"
	"github.com/nfdrop/nfdrop_exporter/collector"
	"github.com/nfdrop/nfdrop_exporter/collector/classify"
	"github.com/nfdrop/nfdrop_exporter/collector/source"
	"golang.org/x/sys/unix"
)

// helperEnv makes the test binary act as a go-nflog receiver (see
// runGoNflogReceiver) instead of running tests.
const helperEnv = "NFDG_GONFLOG_RECEIVER"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		os.Exit(runGoNflogReceiver(os.Getenv(helperEnv)))
	}
	if os.Getenv(threadExitEnv) != "" {
		os.Exit(runThreadExitHelper(os.Getenv(threadExitEnv)))
	}
	os.Exit(m.Run())
}

// runGoNflogReceiver is go-nflog v2.3.0's own receive path
// (RegisterWithErrorFunc, Attribute decoding) feeding the exporter's real
// collector, with the same group settings go-nflog can express (FlagSeq,
// qthreshold, 10 ms flush timeout, NoENOBUFS, socket buffer via
// SO_RCVBUFFORCE; nlbufsiz cannot be set). It prints received=, lost= and
// mallocs= when it gets SIGTERM, for KindCommand. It is the measured
// alternative that the exporter's own parsing replaced.
func runGoNflogReceiver(spec string) int {
	rcvbuf, _ := strconv.Atoi(spec)
	coll, err := collector.New(collector.Config{Groups: []classify.Group{0}, MaxPrefixes: classify.DefaultMaxPrefixes}, slog.New(slog.DiscardHandler))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	nf, err := nflog.Open(&nflog.Config{Group: 0, Copymode: nflog.CopyPacket, Bufsize: 256, Flags: nflog.FlagSeq, QThresh: 1000, Timeout: 1})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if rcvbuf > 0 {
		if err := nf.Con.SetReadBuffer(rcvbuf); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	if err := nf.SetOption(netlink.NoENOBUFS, true); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var received, lost atomic.Uint64
	var next uint32
	started := false
	var m source.Message
	var ms0 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	hook := func(a nflog.Attribute) int {
		m = source.Message{Group: 0}
		if a.HwProtocol != nil {
			m.HwProtocol, m.HasHwProto = *a.HwProtocol, true
		}
		if a.Payload != nil {
			m.Payload = *a.Payload
		}
		if a.Prefix != nil {
			m.Prefix = []byte(*a.Prefix)
		}
		if a.Timestamp != nil {
			m.TimestampNs, m.HasTimestamp = a.Timestamp.UnixNano(), true
		}
		if a.Seq != nil {
			if started && *a.Seq != next {
				lost.Add(uint64(*a.Seq - next))
			}
			started, next = true, *a.Seq+1
		}
		coll.Packet(&m)
		coll.Flush(m.Group) // go-nflog hands over one message at a time
		received.Add(1)
		return 0
	}
	errfn := func(err error) int {
		if errors.Is(err, unix.ENOBUFS) || ctx.Err() != nil {
			return 0
		}
		fmt.Fprintln(os.Stderr, "receive:", err)
		return 1
	}
	if err := nf.RegisterWithErrorFunc(ctx, hook, errfn); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	var ms1 runtime.MemStats
	runtime.ReadMemStats(&ms1)
	cancel()
	nf.Close()
	fmt.Printf("received=%d lost=%d mallocs=%d\n", received.Load(), lost.Load(), ms1.Mallocs-ms0.Mallocs)
	return 0
}

// buildExporter builds cmd/nfdrop_exporter into a temporary directory.
func buildExporter(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "nfdrop_exporter")
	cmd := exec.Command("go", "build", "-o", bin, "../../nfdrop_exporter")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Getenv("NFDROP_BENCH") != "1" {
		t.Skip("set NFDROP_BENCH=1 (and run as root) for the flood bench (about a minute)")
	}
	if os.Geteuid() != 0 {
		t.Fatal("NFDROP_BENCH=1 needs root (network namespaces, NFLOG, AF_PACKET)")
	}
}

// TestQuickBench runs the --quick bench against the exporter, the reference
// receiver, ulogd2, the exporter's eBPF drop source and go-nflog's own
// receive path, and checks what must hold at every rate: every flood packet
// reached the NFLOG rules and was dropped, the exporter's and the
// reference's accounting is exact (messages, or drops for the eBPF source:
// read + lost), and the exporter's scrapes stayed fast. NFDG_BENCH_FULL=1
// runs the full points and 3 repetitions, NFDG_BENCH_SET=floor (or full,
// quick) another point set; NFDG_BENCH_OUT=FILE also writes the JSON report.
func TestQuickBench(t *testing.T) {
	needRoot(t)
	exporter := buildExporter(t)
	o := Options{
		Receivers: append(DefaultReceivers(exporter),
			Receiver{Name: "go-nflog", Kind: KindCommand, Path: os.Args[0], Env: []string{helperEnv + "=" + strconv.Itoa(32<<20)}}),
		Points:   QuickPoints(),
		Reps:     1,
		RulesDir: "../../../deploy/firewall",
		Progress: testWriter{t},
	}
	o.PerfDir = os.Getenv("NFDG_BENCH_PERF")
	o.Prefix = os.Getenv("NFDG_BENCH_PREFIX") // namespace names; default nfdG-b<pid>
	if os.Getenv("NFDG_BENCH_FULL") == "1" {
		o.Points, o.Reps = DefaultPoints(), 3
	}
	if set := os.Getenv("NFDG_BENCH_SET"); set != "" {
		points, ok := PointSets()[set]
		if !ok {
			t.Fatalf("NFDG_BENCH_SET=%s: want full, quick or floor", set)
		}
		o.Points = points()
	}
	// NFDG_BENCH_EXPORTERS=name=path[;flag;...],... compares exporter builds
	// or flags (A/B of a change) instead of the default receivers; the name
	// "reference" alone adds the reference receiver.
	if e := os.Getenv("NFDG_BENCH_EXPORTERS"); e != "" {
		o.Receivers = nil
		for _, kv := range strings.Split(e, ",") {
			if kv == "reference" {
				o.Receivers = append(o.Receivers, Receiver{Name: kv, Kind: KindReference})
				continue
			}
			name, spec, ok := strings.Cut(kv, "=")
			if !ok {
				t.Fatalf("NFDG_BENCH_EXPORTERS: %q is not name=path[;flag...]", kv)
			}
			f := strings.Split(spec, ";")
			o.Receivers = append(o.Receivers, Receiver{Name: name, Kind: KindExporter, Path: f[0], Args: f[1:]})
		}
	}
	if ps := os.Getenv("NFDG_BENCH_POINTS"); ps != "" {
		o.Points = nil
		for _, v := range strings.Split(ps, ",") {
			p, err := ParsePoint(v)
			if err != nil {
				t.Fatal(err)
			}
			o.Points = append(o.Points, p)
		}
	}
	if n, err := strconv.Atoi(os.Getenv("NFDG_BENCH_REPS")); err == nil {
		o.Reps = n
	}
	if r := os.Getenv("NFDG_BENCH_RECEIVERS"); r != "" {
		var keep []Receiver
		for _, x := range o.Receivers {
			if strings.Contains(","+r+",", ","+x.Name+",") {
				keep = append(keep, x)
			}
		}
		o.Receivers = keep
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	var out bytes.Buffer
	rep, err := Run(ctx, o, &out)
	if err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + out.String())
	if f := os.Getenv("NFDG_BENCH_OUT"); f != "" {
		b, _ := json.MarshalIndent(rep, "", "  ")
		if err := os.WriteFile(f, b, 0o644); err != nil {
			t.Error(err)
		}
		if err := os.WriteFile(strings.TrimSuffix(f, ".json")+".md", out.Bytes(), 0o644); err != nil {
			t.Error(err)
		}
	}
	exporters, exact, kinds := map[string]bool{}, map[string]bool{}, map[string]string{}
	for _, r := range o.Receivers {
		exporters[r.Name], kinds[r.Name] = r.exporter(), r.Kind
		exact[r.Name] = r.exporter() || r.Kind == KindReference
	}
	for _, r := range rep.Runs {
		if r.Err != "" {
			t.Errorf("%s / %s: %s", r.Point, r.Receiver, r.Err)
			continue
		}
		if r.Accepted != 0 {
			t.Errorf("%s / %s: the ruleset accepted %d flood packets; all must reach NFLOG", r.Point, r.Receiver, r.Accepted)
		}
		var rules int
		for _, p := range o.Points {
			if p.Name == r.Point {
				rules = p.Rules
			}
		}
		if r.Dropped != r.Sent {
			t.Errorf("%s / %s: the ruleset dropped %d of the %d packets sent", r.Point, r.Receiver, r.Dropped, r.Sent)
		}
		switch want := r.Sent * uint64(rules); {
		case kinds[r.Receiver] == KindEBPF && r.Logged != r.Dropped:
			t.Errorf("%s / %s: ground truth %d, want the %d drops", r.Point, r.Receiver, r.Logged, r.Dropped)
		case kinds[r.Receiver] != KindEBPF && r.Logged != want:
			t.Errorf("%s / %s: logged %d, want sent %d x %d rules", r.Point, r.Receiver, r.Logged, r.Sent, rules)
		}
		if exact[r.Receiver] && r.Unaccounted != 0 {
			t.Errorf("%s / %s: accounting off by %d: logged %d, counted %d, lost %d", r.Point, r.Receiver, r.Unaccounted, r.Logged, r.Received, r.Lost)
		}
		if r.CPUThreadsMissed != 0 {
			t.Errorf("%s / %s: %d threads exited during the flood without an exit record", r.Point, r.Receiver, r.CPUThreadsMissed)
		}
		if kinds[r.Receiver] == KindEBPF && (r.BPFSeconds <= 0 || r.BPFRuns < r.Dropped) {
			t.Errorf("%s / %s: the BPF program ran %d times for %v s, for %d drops", r.Point, r.Receiver, r.BPFRuns, r.BPFSeconds, r.Dropped)
		}
		// The eBPF source has no NFLOG socket whose receive calls could be traced.
		if kinds[r.Receiver] != KindEBPF && !r.RecvTraced {
			t.Errorf("%s / %s: receive calls not traced: %s", r.Point, r.Receiver, r.RecvTraceErr)
		}
	}
	// Scrape latency is judged on the median over repetitions: a shared
	// machine's other tenants can stall a single run (logged as
	// machine_busy_before in the JSON).
	for _, c := range rep.Summary {
		if exporters[c.Receiver] && c.ScrapeMaxMs[0] >= 100 {
			t.Errorf("%s: the slowest scrape during the flood took %.1f ms (median of %d runs), want < 100", c.Point, c.ScrapeMaxMs[0], c.N)
		}
		if exporters[c.Receiver] && c.Series[0] > 2000 {
			t.Errorf("%s: %.0f series on /metrics, want at most 2000", c.Point, c.Series[0])
		}
		if exporters[c.Receiver] && c.PeakRSS[0] > 64<<20 {
			t.Errorf("%s: peak RSS %.1f MiB, want at most 64 MiB", c.Point, c.PeakRSS[0]/(1<<20))
		}
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}
