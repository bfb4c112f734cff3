// Package systemd_test checks the shipped systemd units, nfdrop_exporter.service and its
// eBPF variant nfdrop_exporter-ebpf.service: their hardening directives (exact values, so a
// weakened unit fails), that the variant differs from the unit only where it must,
// `systemd-analyze verify`, the exposure score of `systemd-analyze security --offline=true`
// and the system calls their filters allow.
package systemd_test

import (
	"bufio"
	"bytes"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop-lab/e2e"
	"github.com/nfdrop/nfdrop_exporter/deploy/internal/rulesets"
)

const (
	unitFile     = "nfdrop_exporter.service"
	ebpfUnitFile = "nfdrop_exporter-ebpf.service"
	optionsFile  = "nfdrop_exporter.default"
	installPath  = "/usr/local/bin/nfdrop_exporter"
	// maxExposure is the budget for `systemd-analyze security`. The unit scores 1.5 on
	// systemd 252, the eBPF unit 1.7 (CAP_BPF and bpf() add 0.1 each); what remains is
	// inherent (host network, CAP_NET_ADMIN, netlink and inet sockets, no user
	// namespace). A change that raises either past 2.0 weakened it.
	maxExposure = 2.0
)

// units are the shipped units.
var units = []string{unitFile, ebpfUnitFile}

// ebpfDiffers is what nfdrop_exporter-ebpf.service sets differently from
// nfdrop_exporter.service, and to what: the eBPF source's flag, its two
// capabilities and bpf(), and that the two units exclude each other.
var ebpfDiffers = map[string][]string{
	"Unit/Description":              {"Prometheus exporter for packets dropped by netfilter (NFLOG rules and the kernel's drop tracepoint)"},
	"Unit/Conflicts":                {unitFile},
	"Service/ExecStart":             {installPath + " --ebpf.enable $OPTIONS"},
	"Service/AmbientCapabilities":   {"CAP_NET_ADMIN CAP_BPF CAP_PERFMON"},
	"Service/CapabilityBoundingSet": {"CAP_NET_ADMIN CAP_BPF CAP_PERFMON"},
	"Service/SystemCallFilter":      {"@system-service", "~@privileged @resources", "bpf"},
}

// unit maps "Section/Key" to every value assigned to it, in file order.
type unit map[string][]string

func parseUnit(t *testing.T, name string, data []byte) unit {
	t.Helper()
	u := unit{}
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = strings.Trim(line, "[]")
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("%s:%d: not a key=value line inside a section: %q", name, n, line)
			}
			key := section + "/" + strings.TrimSpace(k)
			u[key] = append(u[key], strings.TrimSpace(v))
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return u
}

func readUnit(t *testing.T, name string) unit {
	t.Helper()
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return parseUnit(t, name, data)
}

// TestDeploySystemdHardening pins every directive the least-privilege design relies on,
// in both units.
func TestDeploySystemdHardening(t *testing.T) {
	for _, name := range units {
		t.Run(name, func(t *testing.T) { checkHardening(t, name) })
	}
}

func checkHardening(t *testing.T, name string) {
	u := readUnit(t, name)
	want := map[string][]string{
		"Service/ExecStart":               {installPath + " $OPTIONS"},
		"Service/EnvironmentFile":         {"-/etc/default/nfdrop_exporter"},
		"Service/DynamicUser":             {"yes"},
		"Service/AmbientCapabilities":     {"CAP_NET_ADMIN"},
		"Service/CapabilityBoundingSet":   {"CAP_NET_ADMIN"},
		"Service/NoNewPrivileges":         {"yes"},
		"Service/ProtectSystem":           {"strict"},
		"Service/ProtectHome":             {"yes"},
		"Service/PrivateTmp":              {"yes"},
		"Service/PrivateDevices":          {"yes"},
		"Service/ProtectProc":             {"invisible"},
		"Service/ProtectKernelTunables":   {"yes"},
		"Service/ProtectKernelModules":    {"yes"},
		"Service/ProtectControlGroups":    {"yes"},
		"Service/RestrictNamespaces":      {"yes"},
		"Service/RestrictSUIDSGID":        {"yes"},
		"Service/MemoryDenyWriteExecute":  {"yes"},
		"Service/SystemCallArchitectures": {"native"},
		"Service/RestrictAddressFamilies": {"AF_NETLINK AF_UNIX AF_INET AF_INET6"},
		"Service/SystemCallFilter":        {"@system-service", "~@privileged @resources"},
		"Service/KillSignal":              {"SIGTERM"},
		"Install/WantedBy":                {"multi-user.target"},
	}
	if name == ebpfUnitFile {
		maps.Copy(want, ebpfDiffers)
	}
	for key, values := range want {
		if got := u[key]; !slices.Equal(got, values) {
			t.Errorf("%s = %q, want %q", key, got, values)
		}
	}
	// The first four would cut the exporter off from the host's NFLOG groups, ProcSubset=pid
	// from the conntrack settings and its start time (see the unit's comments).
	for _, key := range []string{"Service/PrivateNetwork", "Service/PrivateUsers", "Service/NetworkNamespacePath", "Service/User", "Service/ProcSubset"} {
		if v, ok := u[key]; ok {
			t.Errorf("%s = %q must not be set", key, v)
		}
	}
}

// TestDeploySystemdEBPFUnit checks that the eBPF unit is the unit with exactly the
// differences of ebpfDiffers, so that a hardening change of one reaches the other.
func TestDeploySystemdEBPFUnit(t *testing.T) {
	base, variant := readUnit(t, unitFile), readUnit(t, ebpfUnitFile)
	keys := append(slices.Collect(maps.Keys(base)), slices.Collect(maps.Keys(variant))...)
	slices.Sort(keys)
	for _, key := range slices.Compact(keys) {
		want := base[key]
		if d, ok := ebpfDiffers[key]; ok {
			want = d
		}
		if !slices.Equal(variant[key], want) {
			t.Errorf("%s %s = %q, want %q (%s has %q)", ebpfUnitFile, key, variant[key], want, unitFile, base[key])
		}
	}
}

// TestDeploySystemdOptionsFile checks that the options file sets OPTIONS (the unit expands
// it unquoted, so it must be one shell-style assignment) and that its group is the one
// the shipped firewall rulesets log to.
func TestDeploySystemdOptionsFile(t *testing.T) {
	data, err := os.ReadFile(optionsFile)
	if err != nil {
		t.Fatal(err)
	}
	var options []string
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		v, ok := strings.CutPrefix(line, "OPTIONS=")
		if !ok {
			t.Fatalf("unexpected line in %s: %q", optionsFile, line)
		}
		uq, err := strconv.Unquote(v)
		if err != nil {
			t.Fatalf("OPTIONS value %s is not a double-quoted string: %v", v, err)
		}
		options = append(options, uq)
	}
	if len(options) != 1 {
		t.Fatalf("%s sets OPTIONS %d times, want 1", optionsFile, len(options))
	}
	args := strings.Fields(options[0])
	for _, a := range args {
		if !strings.HasPrefix(a, "--") || !strings.Contains(a, "=") {
			t.Errorf("option %q: want --flag=value form (systemd splits $OPTIONS on spaces)", a)
		}
	}
	if !slices.Contains(args, "--nflog.group=0") {
		t.Errorf("OPTIONS %q does not read group 0", args)
	}
	rulesets.CheckGroup(t, 0, "the unit's options read")
}

// verifiableCopy writes the unit into dir with ExecStart pointing at an executable stub:
// `systemd-analyze verify` rejects a unit whose binary does not exist yet, and the install
// path is the only thing that differs between this copy and the shipped file.
func verifiableCopy(t *testing.T, name, dir string, extra string) string {
	t.Helper()
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "nfdrop_exporter")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(data, []byte(installPath)); n != 1 { // ExecStart only
		t.Fatalf("%s mentions %s %d times, want 1", name, installPath, n)
	}
	data = bytes.ReplaceAll(data, []byte("ExecStart="+installPath), []byte("ExecStart="+bin))
	if extra == "uncomment-credentials" {
		n := bytes.Count(data, []byte("\n#LoadCredential="))
		if n != 3 {
			t.Fatalf("%s has %d commented LoadCredential= lines, want 3", name, n)
		}
		data = bytes.ReplaceAll(data, []byte("\n#LoadCredential="), []byte("\nLoadCredential="))
		extra = ""
	}
	data = append(data, extra...)
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func systemdAnalyze(t *testing.T) string {
	t.Helper()
	return e2e.Tool(t, "systemd-analyze")
}

// verify runs `systemd-analyze verify`. It exits 0 even for unknown keys or bad values
// (it only warns), so any output at all counts as a failure.
func verify(sa, path string) error {
	cmd := exec.Command(sa, "verify", "--man=no", path)
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		return fmt.Errorf("systemd-analyze verify %s: err=%v output:\n%s", path, err, out)
	}
	return nil
}

func TestDeploySystemdVerify(t *testing.T) {
	sa := systemdAnalyze(t)
	tests := []struct {
		name    string
		extra   string
		wantErr bool
	}{
		{name: "shipped unit", extra: "", wantErr: false},
		{name: "TLS credentials enabled", extra: "uncomment-credentials", wantErr: false},
		// Proves the check can fail: a typo'd hardening key is only a warning to systemd.
		{name: "unknown key", extra: "\n[Service]\nProtectSytem=strict\n", wantErr: true},
		{name: "bad value", extra: "\n[Service]\nRestrictAddressFamilies=AF_BOGUS\n", wantErr: true},
	}
	for _, name := range units {
		for _, tc := range tests {
			t.Run(name+"/"+tc.name, func(t *testing.T) {
				err := verify(sa, verifiableCopy(t, name, t.TempDir(), tc.extra))
				if (err != nil) != tc.wantErr {
					t.Fatalf("verify error = %v, wantErr %v", err, tc.wantErr)
				}
			})
		}
	}
}

var exposureRE = regexp.MustCompile(`Overall exposure level for \S+: (\d+\.\d+) `)

func TestDeploySystemdSecurityExposure(t *testing.T) {
	sa := systemdAnalyze(t)
	for _, name := range units {
		t.Run(name, func(t *testing.T) { checkExposure(t, sa, name) })
	}
}

func checkExposure(t *testing.T, sa, name string) {
	p := verifiableCopy(t, name, t.TempDir(), "")
	out, err := exec.Command(sa, "security", "--offline=true", "--no-pager", p).CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze security: %v\n%s", err, out)
	}
	m := exposureRE.FindSubmatch(out)
	if m == nil {
		t.Fatalf("no overall exposure in output:\n%s", out)
	}
	exposure, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: systemd-analyze security --offline=true exposure: %.1f (budget %.1f)", name, exposure, maxExposure)
	if exposure > maxExposure {
		t.Errorf("exposure %.1f exceeds budget %.1f:\n%s", exposure, maxExposure, out)
	}
	// The remaining findings must be the inherent ones, nothing new.
	allowed := []string{
		"RootDirectory=/RootImage=", "AmbientCapabilities=", "RestrictAddressFamilies=~AF_NETLINK",
		"RestrictAddressFamilies=~AF_UNIX", "RestrictAddressFamilies=~AF_(INET|INET6)",
		"CapabilityBoundingSet=~CAP_NET_ADMIN", "PrivateNetwork=", "PrivateUsers=",
		"DeviceAllow=", "IPAddressDeny=",
		// Read access to /proc/sys and /proc/stat: the conntrack settings and the start time.
		"ProcSubset=",
	}
	if name == ebpfUnitFile {
		// The eBPF source: CAP_BPF, and bpf() out of @privileged (that it is the only
		// system call of @privileged allowed is TestDeploySystemdSyscallFilter's).
		allowed = append(allowed, "CapabilityBoundingSet=~CAP_BPF", "SystemCallFilter=~@privileged")
	}
	for _, line := range strings.Split(string(out), "\n") {
		name, ok := strings.CutPrefix(line, "✗ ")
		if !ok {
			continue
		}
		f := strings.Fields(name)
		if len(f) == 0 || !slices.Contains(allowed, f[0]) {
			t.Errorf("unexpected security finding: %s", strings.TrimSpace(line))
		}
	}
}
