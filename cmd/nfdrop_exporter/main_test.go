package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"flag"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop-lab/e2e"
	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop-lab/lab"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

func TestMain(m *testing.M) { e2e.Main(m) }

var update = flag.Bool("update", false, "rewrite testdata/e2e-output.txt from the current output")

func freePort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startExporter runs the binary and returns its address once /metrics answers.
func startExporter(t *testing.T, args ...string) string {
	t.Helper()
	addr := freePort(t)
	cmd := exec.Command(e2e.Binary(t), append([]string{"--web.listen-address=" + addr}, args...)...)
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
		if t.Failed() {
			t.Logf("exporter log:\n%s", logs.String())
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get("http://" + addr + "/metrics"); err == nil {
			resp.Body.Close()
			return addr
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("exporter did not answer on %s", addr)
	return ""
}

func scrape(t *testing.T, addr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// volatile are families whose values depend on the run, not on the input.
var volatile = regexp.MustCompile(`^(# (HELP|TYPE) )?(go_|process_|promhttp_|nfdrop_exporter_build_info)`)

func stable(exposition string) string {
	var out []string
	for _, line := range strings.Split(exposition, "\n") {
		if line != "" && !volatile.MatchString(line) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n") + "\n"
}

// sumPackets adds up every nfdrop_packets_total series in an exposition.
func sumPackets(t *testing.T, exposition string) float64 {
	t.Helper()
	sc, err := lab.ParseMetrics(strings.NewReader(exposition))
	if err != nil {
		t.Fatal(err)
	}
	return lab.Sum(sc.Packets(""))
}

// TestReplayGolden replays a capture recorded in the lab (testdata/record-replay.sh)
// through the real binary and compares /metrics with the golden exposition.
func TestReplayGolden(t *testing.T) {
	const records = 17 // tcpdump -r testdata/replay.pcap | wc -l
	addr := startExporter(t, "--nflog.replay-file=testdata/replay.pcap", "--nflog.group=0")
	var got string
	deadline := time.Now().Add(5 * time.Second)
	for {
		got = scrape(t, addr)
		if sumPackets(t, got) == records || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := sumPackets(t, got); n != records {
		t.Fatalf("counted %v packets, want %d", n, records)
	}
	if !strings.Contains(got, "nfdrop_exporter_build_info{") {
		t.Error("no nfdrop_exporter_build_info")
	}
	if !strings.Contains(got, "go_goroutines") {
		t.Error("no exporter self-metrics (go_*)")
	}
	golden := filepath.Join("testdata", "e2e-output.txt")
	if *update {
		if err := os.WriteFile(golden, []byte(stable(got)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if stable(got) != string(want) {
		t.Errorf("exposition differs from %s (run with -update to accept):\n%s", golden, lineDiff(string(want), stable(got)))
	}
	if problems := lintExposition(t, got); len(problems) > 0 {
		t.Errorf("promlint: %v", problems)
	}
	// Native histograms are only in the protobuf exposition.
	req, _ := http.NewRequest("GET", "http://"+addr+"/metrics", nil)
	req.Header.Set("Accept", "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	dec := expfmt.NewDecoder(resp.Body, expfmt.ResponseFormat(resp.Header))
	natives := 0
	for {
		var mf dto.MetricFamily
		if err := dec.Decode(&mf); err != nil {
			break
		}
		if mf.GetName() != "nfdrop_packet_size_bytes" {
			continue
		}
		for _, m := range mf.Metric {
			h := m.GetHistogram()
			if h.GetSchema() != 0 || h.GetZeroThreshold() != 0 || len(h.GetPositiveSpan()) > 0 {
				if len(h.GetBucket()) == 0 {
					t.Errorf("histogram without classic buckets")
				}
				if h.GetSampleCount() > 0 && len(h.GetPositiveSpan()) == 0 {
					t.Errorf("native histogram with samples but no spans")
				}
				natives++
			}
		}
	}
	if natives != 6 {
		t.Errorf("%d nfdrop_packet_size_bytes series carry native buckets, want 6", natives)
	}
}

func lineDiff(want, got string) string {
	w, g := map[string]bool{}, map[string]bool{}
	for _, l := range strings.Split(want, "\n") {
		w[l] = true
	}
	for _, l := range strings.Split(got, "\n") {
		g[l] = true
	}
	var b strings.Builder
	for _, l := range strings.Split(want, "\n") {
		if !g[l] {
			b.WriteString("- " + l + "\n")
		}
	}
	for _, l := range strings.Split(got, "\n") {
		if !w[l] {
			b.WriteString("+ " + l + "\n")
		}
	}
	return b.String()
}

// TestFlagErrors runs the binary with bad flags: it must exit non-zero with one
// sentence that names the flag, before binding anything.
func TestFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--nflog.copy-range=10"}, "--nflog.copy-range=10: want 64 to 65531 bytes"},
		{[]string{"--nflog.group=70000"}, "--nflog.group=70000: want a group number from 0 to 65535"},
		{[]string{"--nflog.group=1", "--nflog.group=1"}, "--nflog.group=1 is given twice: give each group once"},
		{[]string{"explain", "--max-prefixes=70000"}, "--max-prefixes=70000: want 1 to 254"},
		{[]string{"explain", "--ports=22,http"}, `invalid port "http"`},
		{[]string{"--collector.ports=22,http"}, `invalid port "http"`},
		{[]string{"--collector.max-prefixes=0"}, "--collector.max-prefixes=0: want 1 to 254"},
		{[]string{"--nflog.batch-size=1MiB"}, "the kernel accepts 4KiB to 128KiB"},
		{[]string{"--nflog.flush-timeout=-1s"}, "--nflog.flush-timeout=-1s"},
		{[]string{"--collector.rule-audit.timeout=1ms"}, "--collector.rule-audit.timeout=1ms: want 10ms to 1m"},
		{[]string{"--collector.rule-audit.max-age=-1s"}, "--collector.rule-audit.max-age=-1s: want 0 to 1h"},
		{[]string{"--no-such-flag"}, "unknown long flag '--no-such-flag'"},
		{[]string{"--conntrack.reasons.window=0s"}, "--conntrack.reasons.window=0s: want more than 0 and at most 1m"},
		{[]string{"--no-conntrack.reasons", "--conntrack.reasons.bind"}, "--conntrack.reasons.bind needs --conntrack.reasons"},
		{[]string{"--debug.cpu-profile=/nonexistent-dir/cpu.pprof"}, "--debug.cpu-profile: open /nonexistent-dir/cpu.pprof: no such file or directory"},
		// A bad path used to pass and make the HTTP mux panic after the
		// groups were bound (the replay file stands in for them here).
		{[]string{replayArg, "--web.telemetry-path=metrics"}, `--web.telemetry-path="metrics": want an absolute path such as /metrics, other than /`},
		{[]string{replayArg, "--web.telemetry-path=/"}, `--web.telemetry-path="/": want an absolute path such as /metrics, other than /`},
		{[]string{replayArg, "--web.telemetry-path="}, `--web.telemetry-path="": want an absolute path`},
		{[]string{replayArg, "--web.telemetry-path=GET /metrics"}, `--web.telemetry-path="GET /metrics": want`},
		{[]string{replayArg, "--web.telemetry-path=/metrics/"}, `--web.telemetry-path="/metrics/": want`},
		{[]string{replayArg, "--web.telemetry-path=/{x}"}, `--web.telemetry-path="/{x}": want`},
		// The summary's path made the mux panic after the groups were bound.
		{[]string{replayArg, "--web.telemetry-path=/api/v1/summary"}, `--web.telemetry-path="/api/v1/summary": the summary is served there`},
		// An empty address listened on a random port on every interface; a
		// bad one failed only after the groups were bound, with exit 1.
		{[]string{"--web.listen-address="}, `--web.listen-address="": want [host]:port`},
		{[]string{"--web.listen-address=nonsense"}, `--web.listen-address="nonsense": want [host]:port`},
		{[]string{"--web.listen-address=:9786", "--web.listen-address=localhost"}, `--web.listen-address="localhost": want [host]:port`},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			// A flag the exporter fails to reject would leave it serving.
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, e2e.Binary(t), tc.args...)
			out, err := cmd.CombinedOutput()
			if ctx.Err() != nil {
				t.Fatalf("still running after 30s, want exit status 2; output:\n%s", out)
			}
			ee, ok := err.(*exec.ExitError)
			if !ok || ee.ExitCode() != 2 {
				t.Fatalf("exit %v, want status 2; output:\n%s", err, out)
			}
			if !strings.Contains(string(out), tc.want) {
				t.Errorf("output %q does not contain %q", out, tc.want)
			}
		})
	}
}

// replayArg makes a run read the lab capture instead of binding NFLOG groups.
const replayArg = "--nflog.replay-file=testdata/replay.pcap"

// TestHelpShowsEachFlagOnce: a bare --help lists every serving flag exactly
// once and names the other commands; --help-man puts a one-word version in
// the man page's .TH line.
func TestHelpShowsEachFlagOnce(t *testing.T) {
	out, err := exec.Command(e2e.Binary(t), "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("--help: %v\n%s", err, out)
	}
	for _, flag := range []string{"--nflog.group=", "--web.listen-address=", "--[no-]conntrack.correlate", "--collector.ports="} {
		if n := strings.Count(string(out), flag); n != 1 {
			t.Errorf("--help lists %s %d times, want once", flag, n)
		}
	}
	if !strings.Contains(string(out), "explain") || !strings.Contains(string(out), "nfdrop_exporter help") {
		t.Errorf("--help does not point at the other commands:\n%s", out)
	}
	man, err := exec.Command(e2e.Binary(t), "--help-man").CombinedOutput()
	if err != nil {
		t.Fatalf("--help-man: %v\n%s", err, man)
	}
	th := strings.SplitN(string(man), "\n", 2)[0]
	if !regexp.MustCompile(`^\.TH nfdrop_exporter 1 \S+ `).MatchString(th) || strings.Count(string(man), "build date") != 0 {
		t.Errorf("--help-man .TH line %q (want the version as one word), or the multi-line version elsewhere", th)
	}
}

func TestVersionAndHelp(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--version"}, "nfdrop_exporter, version"},
		// A bare --help lists the serving flags too, not only the commands.
		{[]string{"--help"}, "--nflog.group"},
		{[]string{"-h"}, "--web.listen-address"},
		{[]string{"explain", "--help"}, "--format"},
	} {
		out, err := exec.Command(e2e.Binary(t), tc.args...).CombinedOutput()
		if err != nil {
			t.Errorf("%v: %v\n%s", tc.args, err, out)
		}
		if !strings.Contains(string(out), tc.want) {
			t.Errorf("%v printed no %q:\n%s", tc.args, tc.want, out)
		}
	}
}

// lintExposition runs the checks of promtool check metrics on a scrape.
func lintExposition(t *testing.T, exposition string) []promlint.Problem {
	t.Helper()
	problems, err := promlint.New(strings.NewReader(exposition)).Lint()
	if err != nil {
		t.Fatal(err)
	}
	return problems
}

// TestCPUProfileFlag: the hidden --debug.cpu-profile (how default.pgo is
// made) writes a gzip-compressed pprof CPU profile when the exporter stops.
func TestCPUProfileFlag(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cpu.pprof")
	t.Run("run", func(t *testing.T) {
		startExporter(t, "--nflog.replay-file=testdata/replay.pcap", "--nflog.group=0", "--debug.cpu-profile="+path)
	}) // the subtest's cleanup stops the exporter with SIGINT
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatalf("profile is not gzip-compressed: %v", err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"samples", "cpu", "nanoseconds"} {
		if !bytes.Contains(b, []byte(s)) {
			t.Errorf("profile has no %q sample type: not a CPU profile", s)
		}
	}
}
