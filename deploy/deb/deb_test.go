// Package deb_test builds the Debian package with `make deb`, installs it with dpkg,
// checks every file it ships, verifies the installed unit with systemd-analyze, runs the
// installed binary, and removes and purges it, after which nothing of it is left.
package deb_test

import (
	"bytes"
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
	pkg     = "nfdrop-exporter"
	version = "0.0.0-debtest"
	unit    = "/lib/systemd/system/nfdrop_exporter.service"
	wantsTo = "/etc/systemd/system/multi-user.target.wants/nfdrop_exporter.service"
)

// shipped maps each installed file to its source in the repository (nil: checked apart).
var shipped = map[string]string{
	"/usr/bin/nfdrop_exporter":     "",
	unit:                           "",
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

func TestDebPackage(t *testing.T) {
	maketest.E2E(t, "dpkg", "dpkg-deb", "systemd-analyze", "systemctl")
	if installed() {
		t.Fatalf("%s is already installed on this machine; this test installs and purges it, remove it first (dpkg -P %s)", pkg, pkg)
	}
	root := maketest.Root(t)
	dir := t.TempDir()
	maketest.Make(t, nil, "deb", "VERSION="+version, "RELEASE_DIR="+dir)
	debs, _ := filepath.Glob(filepath.Join(dir, "*.deb"))
	if len(debs) != 1 {
		t.Fatalf("make deb produced %q, want one .deb", debs)
	}
	deb := debs[0]
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
	dpkg(t, "-i", deb)

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

	// The packaged unit is the tested one with the package's binary path.
	src, err := os.ReadFile(filepath.Join(root, "deploy/systemd/nfdrop_exporter.service"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(unit)
	if err != nil {
		t.Fatal(err)
	}
	if exp := bytes.ReplaceAll(src, []byte("/usr/local/bin/nfdrop_exporter"), []byte("/usr/bin/nfdrop_exporter")); !bytes.Equal(got, exp) {
		t.Errorf("%s is not deploy/systemd/nfdrop_exporter.service with /usr/bin/nfdrop_exporter", unit)
	}
	if !bytes.Contains(got, []byte("\nExecStart=/usr/bin/nfdrop_exporter $OPTIONS\n")) {
		t.Errorf("%s does not run /usr/bin/nfdrop_exporter", unit)
	}
	// verify only warns about problems: any output fails.
	if out, err := exec.Command("systemd-analyze", "verify", "--man=no", unit).CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify %s: %v\n%s", unit, err, out)
	}

	out, err := exec.Command("/usr/bin/nfdrop_exporter", "--version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "nfdrop_exporter, version "+version+" ") {
		t.Errorf("installed binary --version: %v\n%s", err, out)
	}

	// Installing does not enable the service; an administrator does, and removal undoes it.
	if _, err := os.Lstat(wantsTo); err == nil {
		t.Errorf("%s exists right after install: the package must not enable the service", wantsTo)
	}
	maketest.Run(t, "systemctl", "enable", "nfdrop_exporter.service")
	if _, err := os.Lstat(wantsTo); err != nil {
		t.Fatalf("systemctl enable did not create %s: %v", wantsTo, err)
	}

	dpkg(t, "-r", pkg)
	for f := range shipped {
		_, err := os.Lstat(f)
		if keep := f == "/etc/default/nfdrop_exporter"; keep != (err == nil) {
			t.Errorf("after dpkg -r: %s exists = %v, want %v (only the conffile stays until purge)", f, err == nil, keep)
		}
	}
	if _, err := os.Lstat(wantsTo); err == nil {
		t.Errorf("after dpkg -r the service is still enabled: %s", wantsTo)
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
