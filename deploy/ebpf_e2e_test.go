//go:build linux

package deploy_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop-lab/lab"
)

// The eBPF source's least privilege: CAP_BPF and CAP_PERFMON besides
// CAP_NET_ADMIN, in the ways the shipped units and the DaemonSet grant them:
//
//	NFDROP_E2E=1 go test -run DeployE2EEBPF -v ./deploy/

// capsEBPFHx is CAP_NET_ADMIN (12), CAP_PERFMON (38) and CAP_BPF (39), as
// /proc/PID/status prints a capability set.
const capsEBPFHx = "000000c000001000"

var (
	// nfdrop_exporter-ebpf.service: DynamicUser, the three capabilities
	// ambient and bounding, NoNewPrivileges.
	privAmbientEBPF = []string{"setpriv", "--reuid=" + deployUID, "--regid=" + deployUID, "--clear-groups",
		"--inh-caps=-all,+net_admin,+bpf,+perfmon", "--ambient-caps=-all,+net_admin,+bpf,+perfmon",
		"--bounding-set=-all,+net_admin,+bpf,+perfmon", "--no-new-privs", "--"}
	// kubernetes/daemonset-ebpf.yaml: UID 0, the three capabilities only,
	// allowPrivilegeEscalation: false.
	privRootEBPF = []string{"setpriv", "--inh-caps=-all", "--bounding-set=-all,+net_admin,+bpf,+perfmon", "--no-new-privs", "--"}
	// A binary with file capabilities cap_net_admin,cap_bpf,cap_perfmon+ep.
	privFileCapsEBPF = []string{"setpriv", "--reuid=" + deployUID, "--regid=" + deployUID, "--clear-groups", "--inh-caps=-all",
		"--bounding-set=-all,+net_admin,+bpf,+perfmon", "--"}
)

// waitGroups polls until every group of groups is bound.
func (e *deployEnv) waitGroups(t *testing.T, p *deployProc, groups ...string) lab.Scrape {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if !p.running() {
			t.Fatalf("exporter exited (%v) before serving; output:\n%s", p.err, p.stderr.String())
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		s, err := lab.FetchMetrics(ctx, e.client, "http://"+deployListen+"/metrics")
		cancel()
		up := err == nil
		for _, g := range groups {
			v, ok := s.Value("nfdrop_up", map[string]string{"group": g})
			up = up && ok && v == 1
		}
		if up {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("nfdrop_up of groups %v not 1 within 10s; output:\n%s", groups, p.stderr.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestDeployE2EEBPF(t *testing.T) {
	e := deploySetup(t, "B-deploy")
	fcap := filepath.Join(e.dir, "nfdrop_exporter-fcap-ebpf")
	data, err := os.ReadFile(e.bin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(fcap, data, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("setcap", "cap_net_admin,cap_bpf,cap_perfmon+ep", fcap).CombinedOutput(); err != nil {
		t.Fatalf("setcap: %v\n%s", err, out)
	}
	tests := []struct {
		name      string
		priv      []string
		bin       string
		wantUp    bool
		wantUID   string
		wantRoot  bool
		wantNoNew string
		wantErr   []string // with wantUp false: in the one error line
	}{
		{name: "systemd model: nobody with ambient CAP_NET_ADMIN, CAP_BPF, CAP_PERFMON and no_new_privs", priv: privAmbientEBPF, wantUp: true, wantUID: deployUID, wantNoNew: "1"},
		{name: "Kubernetes model: root with only NET_ADMIN, BPF, PERFMON and no_new_privs", priv: privRootEBPF, wantUp: true, wantUID: "0", wantRoot: true, wantNoNew: "1"},
		{name: "nobody with file capabilities", priv: privFileCapsEBPF, bin: fcap, wantUp: true, wantUID: deployUID, wantNoNew: "0"},
		{name: "nobody with CAP_NET_ADMIN only (nfdrop_exporter.service's identity)", priv: privAmbient,
			wantErr: []string{"lacks CAP_BPF and CAP_PERFMON", "the NFLOG source works without it"}},
		{name: "nobody without any capability", priv: privNone, wantErr: []string{"lacks CAP_BPF and CAP_PERFMON"}},
		{name: "plain root", wantUp: true, wantUID: "0", wantRoot: true, wantNoNew: "0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bin := e.bin
			if tc.bin != "" {
				bin = tc.bin
			}
			p := e.start(t, tc.priv, bin, "--web.listen-address="+deployListen, "--ebpf.enable")
			if !tc.wantUp {
				if code := p.exitCode(t, 10*time.Second); code != 2 {
					t.Errorf("exit code %d, want 2", code)
				}
				var errs []string
				for _, line := range strings.Split(p.stderr.String(), "\n") {
					if strings.Contains(strings.ToLower(line), "level=error") {
						errs = append(errs, line)
					}
				}
				if len(errs) != 1 {
					t.Fatalf("want one error line, got %q", errs)
				}
				for _, w := range tc.wantErr {
					if !strings.Contains(errs[0], w) {
						t.Errorf("error %q lacks %q", errs[0], w)
					}
				}
				return
			}
			s := e.waitGroups(t, p, "0", "ebpf")
			st := procStatus(t, p.cmd.Process.Pid)
			want := map[string]string{
				"Uid":        strings.Repeat(tc.wantUID+" ", 3) + tc.wantUID,
				"CapEff":     capsEBPFHx,
				"CapBnd":     capsEBPFHx,
				"NoNewPrivs": tc.wantNoNew,
			}
			if tc.priv == nil {
				delete(want, "CapEff")
				delete(want, "CapBnd")
			}
			for k, v := range want {
				if st[k] != v {
					t.Errorf("/proc/%d/status %s = %q, want %q", p.cmd.Process.Pid, k, st[k], v)
				}
			}
			if _, ok := s.Value("nfdrop_ebpf_drops_total", nil); !ok {
				t.Error("no nfdrop_ebpf_drops_total")
			}
			// Both sources see the same drops: the namespace's rule logs and
			// drops the datagrams (the counters start at 0 per process).
			e.sendDrops(t, 3)
			var nflog, ebpf float64
			for i := 0; i < 50; i++ {
				s = e.scrape(t)
				nflog, ebpf = lab.Sum(s.Packets("0")), lab.Sum(s.Packets("ebpf"))
				if nflog == 3 && ebpf == 3 {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			if nflog != 3 || ebpf != 3 {
				t.Errorf("3 dropped datagrams: NFLOG group counted %v, ebpf group %v", nflog, ebpf)
			}
			warn := p.stopForRootWarnings(t)
			switch {
			case tc.wantRoot && (len(warn) != 1 || !strings.Contains(warn[0], "CAP_NET_ADMIN, CAP_BPF and CAP_PERFMON") || !strings.Contains(warn[0], "nfdrop_exporter-ebpf.service")):
				t.Errorf("want one warning naming the three capabilities and nfdrop_exporter-ebpf.service, got %q", warn)
			case !tc.wantRoot && len(warn) != 0:
				t.Errorf("unprivileged exporter warns about root: %q", warn)
			}
		})
	}
}
