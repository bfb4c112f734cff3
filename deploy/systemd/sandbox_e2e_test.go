//go:build linux

package systemd_test

import (
	"context"
	"slices"
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

// TestDeploySystemdSandboxKeepsMetrics runs the exporter twice in a network
// namespace of its own: as plain root, and the way the shipped unit runs it
// (a dynamic-user-like unprivileged user holding only CAP_NET_ADMIN, no new
// privileges, and /proc mounted with the unit's ProtectProc=/ProcSubset=
// options), and requires the same metric names from both. ProcSubset=pid
// used to hide /proc/sys and /proc/stat, so nfdrop_conntrack_setting and
// process_start_time_seconds vanished under the unit. (The system call filter
// needs systemd itself and is not reproduced.)
func TestDeploySystemdSandboxKeepsMetrics(t *testing.T) {
	e2e.Require(t, "ip", "unshare", "setpriv", "mount")
	u := readUnit(t)
	if !slices.Equal(u["Service/AmbientCapabilities"], []string{"CAP_NET_ADMIN"}) || !slices.Equal(u["Service/DynamicUser"], []string{"yes"}) {
		t.Fatalf("the unit's identity changed (AmbientCapabilities %q, DynamicUser %q): update this test's setpriv line", u["Service/AmbientCapabilities"], u["Service/DynamicUser"])
	}
	opts := procMountOptions(t, u)
	bin := e2e.Binary(t)

	ns := e2e.NewNetns(t, "S-sandbox")
	const listen = "127.0.0.1:9786"
	client := lab.HTTPClient(ns.Name, 5*time.Second)

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
			cmd.Process.Signal(syscall.SIGTERM)
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
			if v, ok := s.Value("nfdrop_up", map[string]string{"group": "0"}); err == nil && ok && v == 1 {
				var n []string
				for name := range s {
					n = append(n, name)
				}
				slices.Sort(n)
				return n
			}
			if i == 100 {
				t.Fatalf("nfdrop_up{group=\"0\"} not 1 within 10s (last error %v)", err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	root := names(t, bin, "--web.listen-address="+listen)
	for _, want := range []string{"nfdrop_up", "nfdrop_conntrack_setting", "process_start_time_seconds"} {
		if !slices.Contains(root, want) {
			t.Fatalf("as root the exporter serves no %s: the comparison below would prove nothing (names: %v)", want, root)
		}
	}
	mount := "true"
	if opts != "" {
		mount = "mount -t proc -o " + opts + " proc /proc"
	}
	script := mount + ` && exec setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all,+net_admin --ambient-caps=-all,+net_admin --bounding-set=-all,+net_admin --no-new-privs -- "$@"`
	sandboxed := names(t, "unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script, "sh", bin, "--web.listen-address="+listen)
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
		t.Errorf("under the unit's sandbox (/proc options %q) the exporter serves different metric names: missing %v, extra %v", opts, missing, extra)
	}
}
