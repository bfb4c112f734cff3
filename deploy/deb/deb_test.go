// Package deb_test builds the Debian package with `make deb`, installs it with dpkg,
// checks every file it ships, verifies the installed units with systemd-analyze, runs the
// installed binary, and removes and purges it, after which nothing of it is left.
package deb_test

import (
	"bytes"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nfdrop/nfdrop_exporter/deploy/internal/maketest"
)

const (
	pkg      = "nfdrop-exporter"
	version  = "0.0.0-debtest"
	unit     = "/lib/systemd/system/nfdrop_exporter.service"
	unitEBPF = "/lib/systemd/system/nfdrop_exporter-ebpf.service"
	wantsTo  = "/etc/systemd/system/multi-user.target.wants/"
	docDir   = "/usr/share/doc/nfdrop-exporter"
)

// shippedFiles maps each installed file to its source in the repository ("": checked
// apart); the documentation is added from what make docs bundled.
var shippedFiles = map[string]string{
	"/usr/bin/nfdrop_exporter":     "",
	unit:                           "",
	unitEBPF:                       "",
	"/etc/default/nfdrop_exporter": "deploy/systemd/nfdrop_exporter.default",
	"/usr/share/nfdrop_exporter/dashboards/nfdrop.json":       "dashboards/nfdrop.json",
	"/usr/share/nfdrop_exporter/prometheus/alerts.yml":        "deploy/prometheus/alerts.yml",
	"/usr/share/nfdrop_exporter/prometheus/rules.yml":         "deploy/prometheus/rules.yml",
	"/usr/share/nfdrop_exporter/prometheus/scrape-config.yml": "deploy/prometheus/scrape-config.yml",
	"/usr/share/nfdrop_exporter/web-config.yml":               "deploy/web-config.yml",
	"/usr/share/doc/nfdrop-exporter/copyright":                "LICENSE",
}

// dpkg runs dpkg, waiting (bounded) while another process holds its lock.
func dpkg(t *testing.T, args ...string) string {
	t.Helper()
	var out []byte
	var err error
	for range 60 {
		out, err = exec.Command("dpkg", args...).CombinedOutput()
		if err == nil || !bytes.Contains(out, []byte("lock")) {
			break
		}
		time.Sleep(time.Second)
	}
	if err != nil {
		t.Fatalf("dpkg %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func installed() bool {
	out, err := exec.Command("dpkg-query", "-W", "-f=${Status}", pkg).Output()
	return err == nil && strings.Contains(string(out), "install ok installed")
}

// nextSteps is what the first installation prints: with systemd running, and without.
func nextSteps(systemd bool) string {
	start := "without systemd, as root or with CAP_NET_ADMIN: nfdrop_exporter --nflog.group=0"
	if systemd {
		start = "systemctl enable --now nfdrop_exporter"
	}
	return `nfdrop_exporter is installed, not started. Next steps:
  1. Log the dropped packets to NFLOG group 0, in the rule right before your final DROP:
       iptables -I INPUT <line of the DROP> -j NFLOG --nflog-group 0 --nflog-prefix denied --nflog-size 256
     (nftables: log prefix "denied" group 0 snaplen 256 drop; rulesets in
     /usr/share/doc/nfdrop-exporter/deploy/firewall/)
  2. Match the group in /etc/default/nfdrop_exporter, then start it:
       ` + start + `
  Then: curl -s localhost:9786/metrics | grep nfdrop_up. Documentation: /usr/share/doc/nfdrop-exporter/
`
}

// buildDeb runs make deb (VERSION unset when version is "") and returns the package.
func buildDeb(t *testing.T, dir, version string) string {
	t.Helper()
	args := []string{"deb", "RELEASE_DIR=" + dir}
	if version != "" {
		args = append(args, "VERSION="+version)
	}
	maketest.Make(t, nil, args...)
	debs, _ := filepath.Glob(filepath.Join(dir, "*.deb"))
	if len(debs) != 1 {
		t.Fatalf("make deb produced %q, want one .deb", debs)
	}
	return debs[0]
}

func TestDebPackage(t *testing.T) {
	maketest.E2E(t, "dpkg", "dpkg-deb", "systemd-analyze", "systemctl")
	if installed() {
		t.Fatalf("%s is already installed on this machine; this test installs and purges it, remove it first (dpkg -P %s)", pkg, pkg)
	}
	root := maketest.Root(t)
	dir := t.TempDir()
	deb := buildDeb(t, dir, version)
	shipped := maps.Clone(shippedFiles)
	if st, err := os.Stat(deb); err == nil {
		t.Logf("%s: %d bytes", filepath.Base(deb), st.Size())
	}
	for field, want := range map[string]string{"Package": pkg, "Version": "0.0.0~debtest", "Architecture": "amd64", "Section": "net"} {
		if got := strings.TrimSpace(maketest.Run(t, "dpkg-deb", "-f", deb, field)); got != want {
			t.Errorf("control field %s = %q, want %q", field, got, want)
		}
	}
	t.Logf("contents:\n%s", maketest.Run(t, "dpkg-deb", "-c", deb))

	t.Cleanup(func() {
		if installed() {
			_ = exec.Command("dpkg", "-P", pkg).Run()
		}
	})
	// The first installation says what to do next, for the init system this machine runs.
	_, err := os.Stat("/run/systemd/system")
	if out := dpkg(t, "-i", deb); !strings.Contains(out, nextSteps(err == nil)) {
		t.Errorf("dpkg -i output lacks the next steps (systemd running: %v):\n%s", err == nil, out)
	}

	// The documentation: README.md and what it links to, self-contained, at the
	// repository's paths under /usr/share/doc/nfdrop-exporter.
	docs := maketest.CheckDocs(t, docDir, maketest.Revision(t), "copyright")
	for _, must := range []string{"README.md", "deploy/README.md", "collector/README.md", "dashboards/README.md", "deploy/firewall/iptables.rules"} {
		if !slices.Contains(docs, must) {
			t.Errorf("%s/%s is not installed", docDir, must)
		}
	}
	for _, d := range docs {
		shipped[docDir+"/"+d] = ""
	}
	// What the installed configuration mentions (deploy/firewall/, collector/ctlog/README.md,
	// ...) is in the documentation, as the options file says. (The documents themselves
	// also describe the source tree.)
	var mentioning []string
	for f := range shipped {
		if f != "/usr/bin/nfdrop_exporter" && !strings.HasSuffix(f, ".md") {
			mentioning = append(mentioning, f)
		}
	}
	maketest.CheckMentions(t, docDir, mentioning...)

	// dpkg -L: exactly the shipped files, plus their directories.
	var files []string
	for _, f := range strings.Split(strings.TrimSpace(dpkg(t, "-L", pkg)), "\n") {
		if st, err := os.Stat(f); err == nil && !st.IsDir() {
			files = append(files, f)
		}
	}
	want := slices.Sorted(func(yield func(string) bool) {
		for f := range shipped {
			if !yield(f) {
				return
			}
		}
	})
	slices.Sort(files)
	if !slices.Equal(files, want) {
		t.Errorf("dpkg -L files %q, want %q", files, want)
	}
	for dst, src := range shipped {
		if src == "" {
			continue
		}
		a, errA := os.ReadFile(dst)
		b, errB := os.ReadFile(filepath.Join(root, src))
		if errA != nil || errB != nil || !bytes.Equal(a, b) {
			t.Errorf("%s differs from %s (%v, %v)", dst, src, errA, errB)
		}
	}
	if conf := dpkg(t, "-s", pkg); !strings.Contains(conf, "Conffiles:\n /etc/default/nfdrop_exporter ") {
		t.Errorf("/etc/default/nfdrop_exporter is not a conffile:\n%s", conf)
	}

	// The packaged units are the tested ones with the package's binary path.
	for u, flags := range map[string]string{unit: "", unitEBPF: "--ebpf.enable "} {
		src, err := os.ReadFile(filepath.Join(root, "deploy/systemd", filepath.Base(u)))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(u)
		if err != nil {
			t.Fatal(err)
		}
		if exp := bytes.ReplaceAll(src, []byte("/usr/local/bin/nfdrop_exporter"), []byte("/usr/bin/nfdrop_exporter")); !bytes.Equal(got, exp) {
			t.Errorf("%s is not deploy/systemd/%s with /usr/bin/nfdrop_exporter", u, filepath.Base(u))
		}
		if !bytes.Contains(got, []byte("\nExecStart=/usr/bin/nfdrop_exporter "+flags+"$OPTIONS\n")) {
			t.Errorf("%s does not run /usr/bin/nfdrop_exporter", u)
		}
		// verify only warns about problems: any output fails.
		if out, err := exec.Command("systemd-analyze", "verify", "--man=no", u).CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) > 0 {
			t.Errorf("systemd-analyze verify %s: %v\n%s", u, err, out)
		}
	}

	out, err := exec.Command("/usr/bin/nfdrop_exporter", "--version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "nfdrop_exporter, version "+version+" ") {
		t.Errorf("installed binary --version: %v\n%s", err, out)
	}

	// Installing does not enable a service; an administrator does, and removal undoes it.
	for _, u := range []string{unit, unitEBPF} {
		if _, err := os.Lstat(wantsTo + filepath.Base(u)); err == nil {
			t.Errorf("%s exists right after install: the package must not enable the service", wantsTo+filepath.Base(u))
		}
	}
	for _, u := range []string{unit, unitEBPF} {
		maketest.Run(t, "systemctl", "enable", filepath.Base(u))
		if _, err := os.Lstat(wantsTo + filepath.Base(u)); err != nil {
			t.Fatalf("systemctl enable did not create %s: %v", wantsTo+filepath.Base(u), err)
		}
	}

	dpkg(t, "-r", pkg)
	for f := range shipped {
		_, err := os.Lstat(f)
		if keep := f == "/etc/default/nfdrop_exporter"; keep != (err == nil) {
			t.Errorf("after dpkg -r: %s exists = %v, want %v (only the conffile stays until purge)", f, err == nil, keep)
		}
	}
	for _, u := range []string{unit, unitEBPF} {
		if _, err := os.Lstat(wantsTo + filepath.Base(u)); err == nil {
			t.Errorf("after dpkg -r the service is still enabled: %s", wantsTo+filepath.Base(u))
		}
	}
	dpkg(t, "-P", pkg)
	for _, f := range append(want, "/usr/share/nfdrop_exporter", "/usr/share/doc/nfdrop-exporter") {
		if _, err := os.Lstat(f); err == nil {
			t.Errorf("after dpkg -P: %s still exists", f)
		}
	}
	if st, _ := exec.Command("dpkg-query", "-W", "-f=${db:Status-Status}", pkg).Output(); len(st) > 0 && string(st) != "not-installed" {
		t.Errorf("after dpkg -P the package status is %q, want not-installed", st)
	}
}

// TestDebDefaultVersion builds the package as a first-time user does, without VERSION:
// its Debian version is the snapshot version of this commit, which dpkg installs, and the
// installed binary reports the same version.
func TestDebDefaultVersion(t *testing.T) {
	maketest.E2E(t, "dpkg", "dpkg-deb")
	if installed() {
		t.Fatalf("%s is already installed on this machine; this test installs and purges it, remove it first (dpkg -P %s)", pkg, pkg)
	}
	want := maketest.DefaultVersion(t)
	deb := buildDeb(t, t.TempDir(), "")
	debVersion := maketest.DebVersion(want)
	if got := strings.TrimSpace(maketest.Run(t, "dpkg-deb", "-f", deb, "Version")); got != debVersion {
		t.Fatalf("make deb without VERSION: Version %q, want %q (the snapshot version %q)", got, debVersion, want)
	}
	if filepath.Base(deb) != pkg+"_"+debVersion+"_amd64.deb" {
		t.Errorf("package file %s, want %s_%s_amd64.deb", filepath.Base(deb), pkg, debVersion)
	}
	t.Cleanup(func() {
		if installed() {
			_ = exec.Command("dpkg", "-P", pkg).Run()
		}
	})
	dpkg(t, "-i", deb)
	if got, _ := exec.Command("dpkg-query", "-W", "-f=${Version}", pkg).Output(); string(got) != debVersion {
		t.Errorf("installed version %q, want %q", got, debVersion)
	}
	out, err := exec.Command("/usr/bin/nfdrop_exporter", "--version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "nfdrop_exporter, version "+want+" ") {
		t.Errorf("installed binary --version: %v\n%s", err, out)
	}
	// A snapshot sorts before any release: 0.0.0~... < 0.0.0 when no tag exists yet.
	if !strings.HasPrefix(want, "0.0.0-") {
		t.Logf("the repository has a release tag: %s", want)
	} else if exec.Command("dpkg", "--compare-versions", debVersion, "lt", "0.0.0").Run() != nil {
		t.Errorf("dpkg does not sort the snapshot %s before 0.0.0", debVersion)
	}
	t.Logf("make deb without VERSION: %s, installed as %s", filepath.Base(deb), debVersion)
	dpkg(t, "-P", pkg)
}

// TestDebPostinst runs the package's postinst in a mount namespace of its own, whose /run
// is an empty tmpfs with or without /run/systemd/system and whose PATH holds a systemctl
// that only records its arguments (systemd is not PID 1 on the test machines): what it
// prints and what it asks systemd, for a first installation, an upgrade and other calls.
func TestDebPostinst(t *testing.T) {
	maketest.E2E(t, "unshare", "mount")
	script := filepath.Join(maketest.Root(t), "deploy", "deb", "postinst")
	tests := []struct {
		name      string
		args      []string
		systemd   bool
		wantOut   string
		wantCalls string
	}{
		{"first install, systemd", []string{"configure", ""}, true, nextSteps(true), "daemon-reload\ntry-restart nfdrop_exporter.service nfdrop_exporter-ebpf.service\n"},
		{"first install, no systemd", []string{"configure", ""}, false, nextSteps(false), ""},
		{"upgrade, systemd", []string{"configure", "0.1.0"}, true, "", "daemon-reload\ntry-restart nfdrop_exporter.service nfdrop_exporter-ebpf.service\n"},
		{"upgrade, no systemd", []string{"configure", "0.1.0"}, false, "", ""},
		{"abort-upgrade", []string{"abort-upgrade", "0.2.0"}, true, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			bin := filepath.Join(dir, "bin")
			calls := filepath.Join(dir, "calls")
			if err := os.Mkdir(bin, 0o755); err != nil {
				t.Fatal(err)
			}
			fake := "#!/bin/sh\necho \"$*\" >> " + calls + "\n"
			if err := os.WriteFile(filepath.Join(bin, "systemctl"), []byte(fake), 0o755); err != nil {
				t.Fatal(err)
			}
			setup := "mount -t tmpfs nfdrop-postinst /run"
			if tc.systemd {
				setup += " && mkdir -p /run/systemd/system"
			}
			cmd := exec.Command("unshare", append([]string{"--mount", "--propagation", "private", "sh", "-c",
				setup + ` && exec env PATH="$0:$PATH" sh "$@"`, bin, script}, tc.args...)...)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Run(); err != nil {
				t.Fatalf("postinst %q: %v\n%s%s", tc.args, err, stdout.String(), stderr.String())
			}
			if stdout.String() != tc.wantOut || stderr.Len() > 0 {
				t.Errorf("postinst %q printed\n%s\nstderr %q\nwant\n%s", tc.args, stdout.String(), stderr.String(), tc.wantOut)
			}
			got, _ := os.ReadFile(calls)
			if string(got) != tc.wantCalls {
				t.Errorf("postinst %q called systemctl %q, want %q", tc.args, got, tc.wantCalls)
			}
		})
	}
}
