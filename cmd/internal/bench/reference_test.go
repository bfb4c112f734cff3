package bench

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop-lab/e2e"
	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop-lab/lab"
	"golang.org/x/sys/unix"
)

// TestExporterSettingsAreTheExportersDefaults reads the exporter's flag
// definitions: the reference receiver must bind with what the exporter
// binds with.
func TestExporterSettingsAreTheExportersDefaults(t *testing.T) {
	src, err := os.ReadFile("../../nfdrop_exporter/main.go")
	if err != nil {
		t.Fatal(err)
	}
	s := ExporterSettings()
	want := map[string]string{
		"nflog.copy-range":            strconv.FormatUint(uint64(s.CopyRange), 10),
		"nflog.queue-threshold":       strconv.FormatUint(uint64(s.QueueThreshold), 10),
		"nflog.flush-timeout":         s.FlushTimeout.String(),
		"nflog.batch-size":            fmt.Sprintf("%dKiB", s.BatchSize>>10),
		"nflog.socket.receive-buffer": fmt.Sprintf("%dMiB", s.ReceiveBuffer>>20),
	}
	for flag, v := range want {
		re := regexp.MustCompile(`Flag\("` + regexp.QuoteMeta(flag) + `",[^\n]*\.Default\("([^"]*)"\)`)
		m := re.FindSubmatch(src)
		if m == nil {
			t.Errorf("no --%s with a default in cmd/nfdrop_exporter/main.go", flag)
			continue
		}
		if string(m[1]) != v {
			t.Errorf("--%s defaults to %q in the exporter, ExporterSettings has %q", flag, m[1], v)
		}
	}
	if got := changedGroupFlags([]string{"--nflog.batch-size=64KiB", "--web.listen-address=:1", "--nflog.copy-range=128"}); strings.Join(got, " ") != "--nflog.batch-size=64KiB --nflog.copy-range=128" {
		t.Errorf("changedGroupFlags = %q", got)
	}
	if got := strings.Join(referenceArgs(3, s), " "); got != "-g 3 -r 256 -N 131072 -q 1000 -t 1 -b 33554432 -G" {
		t.Errorf("referenceArgs = %q", got)
	}
}

// TestReferenceBuilds compiles the reference receiver with gcc's warnings as
// errors.
func TestReferenceBuilds(t *testing.T) {
	cc := e2e.Tool(t, "gcc")
	if _, err := BuildReference(cc, t.TempDir()); err != nil {
		t.Fatal(err)
	}
	if _, err := BuildReference("no-such-compiler-nfdG", t.TempDir()); err == nil || !strings.Contains(err.Error(), "apt-get install gcc") {
		t.Errorf("a missing compiler gave %v, want a hint to install gcc", err)
	}
}

// TestReferenceReceiverAndTracer floods a real group in a lab namespace pair
// with the reference receiver bound and the receive-call tracer attached to
// it: the receiver must count exactly what the NFLOG rules logged, with the
// exporter's kernel batching and group settings in effect, and the tracer
// must see exactly the receiver's receive calls.
func TestReferenceReceiverAndTracer(t *testing.T) {
	e2e.Require(t, "ip", "iptables-restore", "ip6tables-restore", "iptables-save", "taskset", "gcc")
	o := Options{Receivers: []Receiver{{Name: "reference", Kind: KindReference}}, Reps: 1, RulesDir: "../../../deploy/firewall", QuietBelow: -1}
	if err := o.defaults(); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bin, err := BuildReference("gcc", dir)
	if err != nil {
		t.Fatal(err)
	}
	l, err := lab.New(o.Prefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	if err := applyRules(l, &o, 2, dir); err != nil {
		t.Fatal(err)
	}
	proc, err := startReceiver(context.Background(), l, Receiver{Name: "reference", Kind: KindReference, Path: bin}, &o, dir)
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			proc.kill()
			<-proc.done
		}
	})

	// The kernel shows the instance's copy mode, copy range and flush timeout.
	inst, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/netfilter/nfnetlink_log", proc.pid))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(inst))
	if len(f) < 6 || f[0] != "0" || f[3] != "2" || f[4] != "256" || f[5] != "1" {
		t.Errorf("nfnetlink_log = %q, want group 0, copy mode 2 (packet), copy range 256, flush timeout 1", inst)
	}
	fd, err := nflogSocketFD(proc.pid, o.Group)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := startRecvTracer(proc.pid, fd)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.close()
	if err := tr.reset(); err != nil {
		t.Fatal(err)
	}
	logged0, _, err := ruleCounters(l, o.Group)
	if err != nil {
		t.Fatal(err)
	}
	pool, err := lab.BuildPool(lab.MixTeardown, lab.PoolSize, 1)
	if err != nil {
		t.Fatal(err)
	}
	const packets = 40_000
	err = lab.InNetns(l.Client, func() error {
		_, err := lab.Flood(lab.ClientIf, pool, packets, 40_000, 10*time.Second, nil)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	logged1, accepted, err := ruleCounters(l, o.Group)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := waitDrained(proc.pid, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // the last partial batch (10 ms flush timeout)
	g, err := tr.gaps()
	if err != nil {
		t.Fatal(err)
	}
	stopped = true
	r, err := proc.stop(nil)
	if err != nil {
		t.Fatal(err)
	}
	out := proc.stdout.String()
	datagrams := commandValue(t, out, "datagrams")

	logged := logged1 - logged0
	t.Logf("logged %d (%d before the flood); reference: %s; tracer: %+v", logged, logged0, strings.TrimSpace(out), g)
	if accepted != 0 || logged != 2*packets {
		t.Fatalf("rules logged %d (want %d) and accepted %d flood packets", logged, 2*packets, accepted)
	}
	if !r.HasLost || r.Received != logged1 || r.Lost != 0 {
		t.Errorf("reference received %d, lost %d (reported: %v); the rules logged %d in all", r.Received, r.Lost, r.HasLost, logged1)
	}
	for _, k := range []string{"truncated", "no_seq", "errors"} {
		if v := commandValue(t, out, k); v != 0 {
			t.Errorf("%s=%d, want 0 (%s)", k, v, out)
		}
	}
	// 128 KiB kernel batches: hundreds of messages per datagram (a one-page
	// batch holds about 15).
	if datagrams == 0 || r.Received/datagrams < 100 {
		t.Errorf("%d messages in %d datagrams: the kernel batch size was not applied", r.Received, datagrams)
	}
	// A blocking reader: every receive call returns one datagram.
	if g.DataCalls != datagrams || g.Calls != datagrams {
		t.Errorf("tracer saw %d calls, %d with data; the receiver read %d datagrams", g.Calls, g.DataCalls, datagrams)
	}
	if g.MaxGap <= 0 || g.MaxGap > 5*time.Second || g.MaxBusyGap <= 0 || g.MaxBusyGap > g.MaxGap {
		t.Errorf("gaps %v (busy %v): want a positive longest gap under the flood's length, and no longer busy gap", g.MaxGap, g.MaxBusyGap)
	}
	if now := monotonicNow(); g.MaxGapEnd <= 0 || g.MaxGapEnd > now || now-g.MaxGapEnd > int64(time.Minute) {
		t.Errorf("longest gap ended at %d, now is %d (CLOCK_MONOTONIC ns)", g.MaxGapEnd, now)
	}
}

// commandValue returns the number after "key=" in a receiver's output.
func commandValue(t *testing.T, out, key string) uint64 {
	t.Helper()
	for _, w := range strings.Fields(out) {
		if v, ok := strings.CutPrefix(w, key+"="); ok {
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				t.Fatalf("%s in %q: %v", key, out, err)
			}
			return n
		}
	}
	t.Fatalf("no %s= in %q", key, out)
	return 0
}

// threadExitEnv makes the test binary a process whose thread burns CPU and
// exits when told (runThreadExitHelper).
const threadExitEnv = "NFDG_THREAD_EXIT_HELPER"

// runThreadExitHelper prints "ready", waits for SIGUSR1, then runs a thread
// that burns the given milliseconds of its own CPU time and exits, prints
// "done" and waits for SIGTERM.
func runThreadExitHelper(spec string) int {
	burn, _ := strconv.Atoi(spec)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGUSR1, syscall.SIGTERM)
	fmt.Println("ready")
	<-sig
	done := make(chan struct{})
	go func() {
		// Returning while locked ends the thread.
		runtime.LockOSThread()
		defer close(done)
		var ts unix.Timespec
		for {
			_ = unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts)
			if ts.Nano() >= int64(burn)*1e6 {
				return
			}
		}
	}()
	<-done
	fmt.Println("done")
	<-sig
	return 0
}

// TestWindowCPUCountsExitedThreads runs a process one of whose threads uses
// CPU and exits inside the measured window: /proc/PID/task no longer lists
// it, and only the tracer's exit record keeps its time in the sum.
func TestWindowCPUCountsExitedThreads(t *testing.T) {
	e2e.Require(t)
	const burn = 300 * time.Millisecond
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), threadExitEnv+"="+strconv.Itoa(int(burn/time.Millisecond)))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	lines := bufio.NewScanner(stdout)
	expect := func(want string) {
		t.Helper()
		if !lines.Scan() || lines.Text() != want {
			t.Fatalf("helper said %q (%v), want %q", lines.Text(), lines.Err(), want)
		}
	}
	expect("ready")
	pid := cmd.Process.Pid
	tr, err := startRecvTracer(pid, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.close()
	if err := tr.reset(); err != nil {
		t.Fatal(err)
	}
	start, err := procThreadRuntimes(pid)
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	expect("done")
	// The helper says done when its goroutine returns; its thread ends
	// just after, so the window closes once the exit is on record.
	var exited map[int]time.Duration
	e2e.WaitFor(t, 5*time.Second, "the helper's thread to exit", func() bool {
		exited, err = tr.exitedRuntimes()
		return err == nil && len(exited) > 0
	})
	end, err := procThreadRuntimes(pid)
	if err != nil {
		t.Fatal(err)
	}
	withExits, n := windowCPU(start, end, exited)
	live, _ := windowCPU(start, end, nil)
	if n.exited != 1 || n.missed != 0 {
		t.Errorf("threads: %+v, want 1 exited, 0 missed (exit records %v)", n, exited)
	}
	if withExits-live < burn-10*time.Millisecond {
		t.Errorf("window CPU %v with exit records, %v without: want the exited thread's %v between them", withExits, live, burn)
	}
	if g, err := tr.gaps(); err != nil || g.Calls != 0 {
		t.Errorf("tracer for descriptor -1 saw %d receive calls (%v), want 0", g.Calls, err)
	}
}
