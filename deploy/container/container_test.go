// Package container_test builds the image with `make image` and Debian's podman, checks
// its metadata, runs --version, and counts a crafted drop from inside a network namespace
// that the container joins holding CAP_NET_ADMIN alone.
package container_test

import (
	"bytes"
	"encoding/json"
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
	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop-lab/lab/netns"
	"github.com/nfdrop/nfdrop_exporter/deploy/internal/maketest"
	"golang.org/x/sys/unix"
)

const (
	version = "0.0.0-imgtest"
	image   = "localhost/nfdrop_exporter"
	listen  = "127.0.0.1:9786"
	// 1 << CAP_NET_ADMIN (12), as /proc/PID/status prints capability sets.
	capNetAdmin = "0000000000001000"
)

// podman runs podman with the test's private configuration and storage.
type podman struct{ env []string }

// ulimits are the --ulimit values deploy/README.md gives for hosts where podman cannot
// raise limits (no CAP_SYS_RESOURCE): rootful podman asks for 1048576 open files and
// processes unless told otherwise, and one --ulimit replaces all its defaults. Open files:
// the host's hard limit; processes: 32768 (podman's own default), or less if the host has
// less.
func ulimits(t *testing.T) (nofile, nproc string) {
	t.Helper()
	var n, p syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &n); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Getrlimit(unix.RLIMIT_NPROC, &p); err != nil {
		t.Fatal(err)
	}
	files := min(n.Max, 1<<20)
	procs := min(p.Max, 32768)
	return fmt.Sprintf("nofile=%d:%d", files, files), fmt.Sprintf("nproc=%d:%d", procs, procs)
}

// newPodman writes a containers.conf and a storage.conf into dir: runc, cgroupfs and file
// events (systemd may not be PID 1), image storage under dir, so the host's
// /etc/containers and /var/lib/containers stay untouched, and, with withUlimits, the
// host-safe limits as default_ulimits (the containers.conf form of the fix).
func newPodman(t *testing.T, dir string, withUlimits bool) *podman {
	t.Helper()
	conf := filepath.Join(dir, "containers.conf")
	storage := filepath.Join(dir, "storage.conf")
	containers := ""
	if withUlimits {
		nofile, nproc := ulimits(t)
		containers = fmt.Sprintf("[containers]\ndefault_ulimits = [%q, %q]\n", nofile, nproc)
	}
	files := map[string]string{
		conf: containers + fmt.Sprintf(`[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = %q
tmp_dir = %q
`, filepath.Join(dir, "events.log"), filepath.Join(dir, "libpod")),
		storage: fmt.Sprintf(`[storage]
driver = "vfs"
graphroot = %q
runroot = %q
`, filepath.Join(dir, "graph"), filepath.Join(dir, "run")),
	}
	for name, data := range files {
		if err := os.WriteFile(name, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return &podman{env: []string{"CONTAINERS_CONF=" + conf, "CONTAINERS_STORAGE_CONF=" + storage}}
}

func (p *podman) cmd(args ...string) *exec.Cmd {
	cmd := exec.Command("podman", args...)
	cmd.Env = append(os.Environ(), p.env...)
	return cmd
}

func (p *podman) run(t *testing.T, args ...string) string {
	t.Helper()
	out, err := p.cmd(args...).CombinedOutput()
	if err != nil {
		t.Fatalf("podman %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestContainerImage(t *testing.T) {
	maketest.E2E(t, "podman", "runc", "ip", "iptables", "curl")
	tmp := t.TempDir()
	// Two configurations on one storage: one with the limits as default_ulimits, one
	// without, whose runs pass them as --ulimit flags: both forms deploy/README.md gives.
	p := newPodman(t, tmp, true)
	cliDir := filepath.Join(tmp, "cli")
	if err := os.Mkdir(cliDir, 0o755); err != nil {
		t.Fatal(err)
	}
	cli := newPodman(t, cliDir, false)
	cli.env[1] = p.env[1] // the same image storage
	nofile, nproc := ulimits(t)
	t.Logf("limits for podman run: %s %s", nofile, nproc)
	ref := image + ":" + version
	maketest.Make(t, p.env, "image", "VERSION="+version, "IMAGE="+image, "RELEASE_DIR="+filepath.Join(tmp, "release"))
	t.Cleanup(func() { _ = p.cmd("rmi", "-f", ref).Run() })

	t.Run("metadata", func(t *testing.T) { checkMetadata(t, p, ref) })
	t.Run("version", func(t *testing.T) {
		out := cli.run(t, "run", "--rm", "--network=none", "--ulimit", nofile, "--ulimit", nproc, ref, "--version")
		if !strings.HasPrefix(out, "nfdrop_exporter, version "+version+" ") {
			t.Errorf("--version in the container printed:\n%s", out)
		}
	})
	t.Run("counts a drop in a joined network namespace", func(t *testing.T) { checkDropCounted(t, p, ref) })
}

// TestImageTag: an image tag cannot hold "+", so make image tags a version with build
// metadata (a snapshot after a release tag) with "_" in its place.
func TestImageTag(t *testing.T) {
	maketest.Tools(t, "make", "git")
	out := maketest.Make(t, nil, "-n", "image", "VERSION=1.2.3+git5.g0123456789ab", "IMAGE=registry.example.com/nfdrop_exporter", "RELEASE_DIR="+t.TempDir())
	if want := " -t registry.example.com/nfdrop_exporter:1.2.3_git5.g0123456789ab "; !strings.Contains(out, want) {
		t.Errorf("make -n image does not tag %q:\n%s", want, out)
	}
	if !strings.Contains(out, "--build-arg VERSION=1.2.3+git5.g0123456789ab ") {
		t.Errorf("make -n image does not label the image with the version itself:\n%s", out)
	}
}

func checkMetadata(t *testing.T, p *podman, ref string) {
	var inspect []struct {
		Size         int64
		Architecture string
		Os           string
		Config       struct {
			User         string
			Entrypoint   []string
			Cmd          []string
			ExposedPorts map[string]struct{}
			Labels       map[string]string
		}
	}
	if err := json.Unmarshal([]byte(p.run(t, "image", "inspect", ref)), &inspect); err != nil || len(inspect) != 1 {
		t.Fatalf("podman image inspect: %v (%d images)", err, len(inspect))
	}
	img := inspect[0]
	t.Logf("image %s: %d bytes, %s/%s", ref, img.Size, img.Os, img.Architecture)
	c := img.Config
	if c.User != "65534:65534" {
		t.Errorf("USER %q, want 65534:65534", c.User)
	}
	if strings.Join(c.Entrypoint, " ") != "/bin/nfdrop_exporter" || len(c.Cmd) != 0 {
		t.Errorf("ENTRYPOINT %q CMD %q, want the exporter and no arguments", c.Entrypoint, c.Cmd)
	}
	if _, ok := c.ExposedPorts["9786/tcp"]; !ok || len(c.ExposedPorts) != 1 {
		t.Errorf("EXPOSE %v, want 9786/tcp only", c.ExposedPorts)
	}
	revision := strings.TrimSpace(maketest.Run(t, "git", "-C", maketest.Root(t), "rev-parse", "HEAD"))
	created := time.Unix(maketest.SourceDateEpoch(t), 0).UTC().Format(time.RFC3339)
	for k, v := range map[string]string{
		"title": "nfdrop_exporter", "licenses": "Apache-2.0", "version": version, "revision": revision,
		"created": created, "source": "https://github.com/nfdrop/nfdrop_exporter",
	} {
		if got := c.Labels["org.opencontainers.image."+k]; got != v {
			t.Errorf("label org.opencontainers.image.%s = %q, want %q", k, got, v)
		}
	}
	// The image holds the binary and the license, nothing else: list its file system.
	ctr := strings.TrimSpace(p.run(t, "create", ref))
	defer func() { _ = p.cmd("rm", "-f", ctr).Run() }()
	mnt := strings.TrimSpace(p.run(t, "mount", ctr))
	defer func() { _ = p.cmd("umount", ctr).Run() }()
	var files []string
	err := filepath.Walk(mnt, func(path string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(mnt, path)
		st := info.Sys().(*syscall.Stat_t)
		files = append(files, fmt.Sprintf("/%s %v %d:%d", rel, info.Mode(), st.Uid, st.Gid))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"/LICENSE -rw-r--r-- 0:0", "/bin/nfdrop_exporter -rwxr-xr-x 0:0"}
	if !slices.Equal(files, want) {
		t.Errorf("files in the image %q, want %q", files, want)
	}
}

// checkDropCounted: a namespace whose firewall logs UDP to 127.0.0.1:53 to group 0 and
// drops it; the container joins it with every capability dropped but NET_ADMIN, as
// nobody; one datagram gives exactly one count with the exact labels.
func checkDropCounted(t *testing.T, p *podman, ref string) {
	ns := e2e.NewNetns(t, "C-w16")
	ipt := []string{"-A", "INPUT", "-i", "lo", "-p", "udp", "--dport", "53"}
	ns.Exec("iptables", append(ipt, "-j", "NFLOG", "--nflog-group", "0", "--nflog-prefix", "denied", "--nflog-size", "256")...)
	ns.Exec("iptables", append(ipt, "-j", "DROP")...)

	name := "nfdC-w16-" + strconv.Itoa(os.Getpid())
	p.run(t, "run", "-d", "--name", name, "--network=ns:"+netns.Path(ns.Name), "--cap-drop=all", "--cap-add=NET_ADMIN",
		ref, "--nflog.group=0", "--web.listen-address="+listen)
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := p.cmd("logs", name).CombinedOutput()
			t.Logf("container log:\n%s", out)
		}
		_ = p.cmd("rm", "-f", "-t", "2", name).Run()
	})

	// The exporter runs as nobody with exactly CAP_NET_ADMIN.
	pid := strings.TrimSpace(p.run(t, "inspect", "-f", "{{.State.Pid}}", name))
	status, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Uid:\t65534\t65534\t65534\t65534\n", "CapEff:\t" + capNetAdmin + "\n", "CapPrm:\t" + capNetAdmin + "\n"} {
		if !strings.Contains(string(status), want) {
			t.Errorf("/proc/%s/status lacks %q:\n%s", pid, want, status)
		}
	}

	waitMetric(t, ns, "nfdrop_up", map[string]string{"group": "0"}, 1)
	ns.Exec("bash", "-c", "echo nfdC > /dev/udp/127.0.0.1/53")
	labels := map[string]string{"class": "other", "family": "ipv4", "flags": "", "group": "0", "port": "53",
		"prefix": "denied", "proto": "udp", "side": "client"}
	sc := waitMetric(t, ns, "nfdrop_packets_total", labels, 1)
	if n := len(sc["nfdrop_packets_total"].GetMetric()); n != 1 {
		t.Errorf("nfdrop_packets_total has %d series, want the one drop's", n)
	}
}

// waitMetric scrapes /metrics inside the namespace until the series with exactly these
// labels has the value, for at most 10 s.
func waitMetric(t *testing.T, ns *e2e.Netns, name string, labels map[string]string, want float64) lab.Scrape {
	t.Helper()
	var last string
	for range 100 {
		out, err := ns.Command("curl", "-sf", "--max-time", "2", "http://"+listen+"/metrics").Output()
		if err == nil {
			sc, err := lab.ParseMetrics(bytes.NewReader(out))
			if err != nil {
				t.Fatalf("parse /metrics: %v", err)
			}
			if v, ok := sc.ValueExact(name, labels); ok && v == want {
				return sc
			} else if ok {
				last = fmt.Sprintf("%s = %v", name, v)
			}
		} else {
			last = err.Error()
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s%v not %v within 10s (last: %s)", name, labels, want, last)
	return nil
}
