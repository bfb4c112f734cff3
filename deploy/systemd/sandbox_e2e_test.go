//go:build linux

package systemd_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop-lab/e2e"
	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop-lab/lab"
)

func TestMain(m *testing.M) { e2e.Main(m) }

// procMountOptions translates the unit's /proc settings into the options of
// the procfs instance systemd mounts for the service: ProtectProc= is
// hidepid=, ProcSubset=pid is subset=pid (which hides /proc/sys and
// /proc/stat).
func procMountOptions(t *testing.T, u unit) string {
	t.Helper()
	var opts []string
	switch v := u["Service/ProtectProc"]; {
	case len(v) == 0 || v[len(v)-1] == "default":
	case slices.Contains([]string{"invisible", "noaccess", "ptraceable"}, v[len(v)-1]):
		opts = append(opts, "hidepid="+v[len(v)-1])
	default:
		t.Fatalf("ProtectProc=%s: not translated by this test", v)
	}
	switch v := u["Service/ProcSubset"]; {
	case len(v) == 0 || v[len(v)-1] == "all":
	case v[len(v)-1] == "pid":
		opts = append(opts, "subset=pid")
	default:
		t.Fatalf("ProcSubset=%s: not translated by this test", v)
	}
	return strings.Join(opts, ",")
}

// TestDeploySystemdSandboxKeepsMetrics runs the exporter of each unit twice in a
// network namespace of its own: as plain root, and the way the unit runs it (a
// dynamic-user-like unprivileged user holding only the unit's ambient capabilities, no
// new privileges, and /proc mounted with the unit's ProtectProc=/ProcSubset= options),
// with the flags of the unit's ExecStart, and requires the same metric names from both.
// ProcSubset=pid used to hide /proc/sys and /proc/stat, so nfdrop_conntrack_setting and
// process_start_time_seconds vanished under the unit. The sandboxed run is traced with
// strace, and every system call it makes must be one the unit's SystemCallFilter=
// allows (the filter itself needs systemd as PID 1 and is not applied).
func TestDeploySystemdSandboxKeepsMetrics(t *testing.T) {
	e2e.Require(t, "ip", "unshare", "setpriv", "mount", "strace")
	for _, name := range units {
		t.Run(name, func(t *testing.T) { sandboxKeepsMetrics(t, name) })
	}
}

// unitIdentity is what the unit's ExecStart and capabilities ask for: the
// flags before $OPTIONS, the groups they bind, and the capabilities as
// setpriv names them ("net_admin,+bpf").
func unitIdentity(t *testing.T, u unit) (flags, groups []string, caps string) {
	t.Helper()
	if !slices.Equal(u["Service/DynamicUser"], []string{"yes"}) || len(u["Service/AmbientCapabilities"]) != 1 || len(u["Service/ExecStart"]) != 1 {
		t.Fatalf("the unit's identity changed (DynamicUser %q, AmbientCapabilities %q, ExecStart %q): update this test's setpriv line",
			u["Service/DynamicUser"], u["Service/AmbientCapabilities"], u["Service/ExecStart"])
	}
	cmdline := strings.Fields(u["Service/ExecStart"][0])
	if cmdline[0] != installPath || cmdline[len(cmdline)-1] != "$OPTIONS" {
		t.Fatalf("ExecStart %q: want %s [FLAGS] $OPTIONS", cmdline, installPath)
	}
	flags = cmdline[1 : len(cmdline)-1]
	groups = []string{"0"} // the options file's --nflog.group=0
	if slices.Contains(flags, "--ebpf.enable") {
		groups = append(groups, "ebpf")
	}
	var names []string
	for _, c := range strings.Fields(u["Service/AmbientCapabilities"][0]) {
		names = append(names, strings.ToLower(strings.TrimPrefix(c, "CAP_")))
	}
	return flags, groups, strings.Join(names, ",+")
}

func sandboxKeepsMetrics(t *testing.T, name string) {
	u := readUnit(t, name)
	flags, groups, caps := unitIdentity(t, u)
	opts := procMountOptions(t, u)
	bin := e2e.Binary(t)

	tag := "S-sandbox"
	if name == ebpfUnitFile {
		tag = "B-sandbox"
	}
	ns := e2e.NewNetns(t, tag)
	const listen = "127.0.0.1:9786"
	client := lab.HTTPClient(ns.Name, 5*time.Second)
	args := append([]string{bin, "--web.listen-address=" + listen}, flags...)

	names := func(t *testing.T, argv ...string) []string {
		t.Helper()
		var out lab.SyncBuffer
		cmd := ns.Command(argv[0], argv[1:]...)
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		defer func() {
			stopExporter(ns.Name, cmd.Process)
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				cmd.Process.Kill()
				<-done
			}
			if t.Failed() {
				t.Logf("exporter output:\n%s", out.String())
			}
		}()
		for i := 0; ; i++ {
			select {
			case err := <-done:
				t.Fatalf("exporter exited (%v):\n%s", err, out.String())
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			s, err := lab.FetchMetrics(ctx, client, "http://"+listen+"/metrics")
			cancel()
			up := err == nil
			for _, g := range groups {
				v, ok := s.Value("nfdrop_up", map[string]string{"group": g})
				up = up && ok && v == 1
			}
			if up {
				// The landing page and the summary run code of their own.
				for _, path := range []string{"/", "/api/v1/summary"} {
					if resp, err := client.Get("http://" + listen + path); err == nil {
						resp.Body.Close()
					}
				}
				var n []string
				for name := range s {
					n = append(n, name)
				}
				slices.Sort(n)
				return n
			}
			if i == 100 {
				t.Fatalf("nfdrop_up of groups %v not 1 within 10s (last error %v)", groups, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	root := names(t, args...)
	for _, want := range []string{"nfdrop_up", "nfdrop_conntrack_setting", "process_start_time_seconds"} {
		if !slices.Contains(root, want) {
			t.Fatalf("as root the exporter serves no %s: the comparison below would prove nothing (names: %v)", want, root)
		}
	}
	if slices.Contains(flags, "--ebpf.enable") && !slices.Contains(root, "nfdrop_ebpf_drops_total") {
		t.Fatalf("as root with %v the exporter serves no nfdrop_ebpf_drops_total", flags)
	}
	mount := "true"
	if opts != "" {
		mount = "mount -t proc -o " + opts + " proc /proc"
	}
	// strace writes where the unprivileged user may.
	traceDir, err := os.MkdirTemp("", "nfdS-strace-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(traceDir) })
	if err := os.Chown(traceDir, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	trace := filepath.Join(traceDir, "strace.out")
	script := mount + ` && exec setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all,+` + caps +
		` --ambient-caps=-all,+` + caps + ` --bounding-set=-all,+` + caps + ` --no-new-privs -- strace -f -qq -o ` + trace + ` "$@"`
	sandboxed := names(t, append([]string{"unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script, "sh"}, args...)...)
	if !slices.Equal(root, sandboxed) {
		var missing, extra []string
		for _, n := range root {
			if !slices.Contains(sandboxed, n) {
				missing = append(missing, n)
			}
		}
		for _, n := range sandboxed {
			if !slices.Contains(root, n) {
				extra = append(extra, n)
			}
		}
		t.Errorf("under the unit's sandbox (/proc options %q, capabilities %s) the exporter serves different metric names: missing %v, extra %v", opts, caps, missing, extra)
	}

	calls := tracedSyscalls(t, trace)
	f := newSyscallSets(t).filterOf(u)
	var denied []string
	for _, c := range calls {
		if !f.allows(c) {
			denied = append(denied, c)
		}
	}
	if len(calls) < 20 || !slices.Contains(calls, "epoll_pwait") {
		t.Fatalf("strace saw only %q: the trace is not the exporter's", calls)
	}
	if slices.Contains(flags, "--ebpf.enable") != slices.Contains(calls, "bpf") {
		t.Errorf("flags %v, and the exporter called bpf(): %v", flags, slices.Contains(calls, "bpf"))
	}
	if len(denied) > 0 {
		t.Errorf("the exporter called %q, which %s's SystemCallFilter= denies", denied, name)
	}
	t.Logf("%s: %d metric names under the sandbox; %d distinct system calls, all allowed by the unit's filter", name, len(sandboxed), len(calls))
}

// stopExporter sends SIGTERM to the exporter in namespace ns: proc itself,
// or, when proc is strace, the exporter it traces (strace then ends with it).
func stopExporter(ns string, proc *os.Process) {
	out, _ := exec.Command("ip", "netns", "pids", ns).Output()
	for _, f := range strings.Fields(string(out)) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			continue
		}
		if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); strings.TrimSpace(string(comm)) == "nfdrop_exporter" {
			_ = syscall.Kill(pid, syscall.SIGTERM)
			return
		}
	}
	_ = proc.Signal(syscall.SIGTERM)
}
