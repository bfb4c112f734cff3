// Package release_test builds the release archives with `make release` twice and checks
// what a user relies on: static binaries for each architecture, promu-style archive
// layout, verifiable checksums, version stamping, and byte-identical rebuilds.
package release_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"debug/buildinfo"
	"debug/elf"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nfdrop/nfdrop_exporter/deploy/internal/maketest"
)

const version = "0.0.0-reltest"

var archs = map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}

func TestReleaseArchives(t *testing.T) {
	maketest.E2E(t, "tar", "gzip", "sha256sum")
	epoch := maketest.SourceDateEpoch(t)
	tmp := t.TempDir()
	dirs := []string{filepath.Join(tmp, "a"), filepath.Join(tmp, "b")}
	start := time.Now()
	for _, d := range dirs {
		maketest.Make(t, nil, "release", "VERSION="+version, "RELEASE_DIR="+d)
	}
	t.Logf("two release builds in %s", time.Since(start).Round(time.Second))

	// Byte-identical rebuilds: every archive and the checksum file.
	var names []string
	for arch := range archs {
		names = append(names, "nfdrop_exporter-"+version+".linux-"+arch+".tar.gz")
	}
	slices.Sort(names)
	for _, name := range append(names, "sha256sums.txt") {
		a, errA := os.ReadFile(filepath.Join(dirs[0], name))
		b, errB := os.ReadFile(filepath.Join(dirs[1], name))
		if errA != nil || errB != nil {
			t.Fatalf("%s: %v, %v", name, errA, errB)
		}
		if !bytes.Equal(a, b) {
			t.Errorf("%s differs between two builds of the same commit", name)
		}
		t.Logf("%s: %d bytes", name, len(a))
	}

	// sha256sums.txt names exactly the archives, and they verify.
	sums, err := os.ReadFile(filepath.Join(dirs[0], "sha256sums.txt"))
	if err != nil {
		t.Fatal(err)
	}
	var listed []string
	for _, line := range strings.Split(strings.TrimSpace(string(sums)), "\n") {
		if f := strings.Fields(line); len(f) == 2 {
			listed = append(listed, f[1])
		}
	}
	if !slices.Equal(listed, names) {
		t.Errorf("sha256sums.txt lists %q, want %q", listed, names)
	}
	cmd := exec.Command("sha256sum", "-c", "sha256sums.txt")
	cmd.Dir = dirs[0]
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("sha256sum -c: %v\n%s", err, out)
	}

	for arch, machine := range archs {
		t.Run(arch, func(t *testing.T) {
			bin := checkArchive(t, filepath.Join(dirs[0], "nfdrop_exporter-"+version+".linux-"+arch+".tar.gz"), arch, epoch)
			checkBinary(t, bin, arch, machine)
			if arch == "amd64" {
				checkVersion(t, bin, time.Unix(epoch, 0).UTC())
			}
		})
	}
}

// checkArchive asserts the archive holds exactly the directory, the binary, LICENSE and
// README.md, owned by 0/0 with the commit's time, and returns the extracted binary.
func checkArchive(t *testing.T, path, arch string, epoch int64) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	if gz.Name != "" || !gz.ModTime.IsZero() {
		t.Errorf("gzip header carries name %q and time %v, want neither (gzip -n)", gz.Name, gz.ModTime)
	}
	dir := "nfdrop_exporter-" + version + ".linux-" + arch + "/"
	want := map[string]int64{dir: 0o755, dir + "LICENSE": 0o644, dir + "README.md": 0o644, dir + "nfdrop_exporter": 0o755}
	var got []string
	bin := filepath.Join(t.TempDir(), "nfdrop_exporter")
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, h.Name)
		if mode, ok := want[h.Name]; !ok || h.Mode&0o7777 != mode {
			t.Errorf("%s: entry %s mode %o, want one of %v", path, h.Name, h.Mode, want)
		}
		if h.Uid != 0 || h.Gid != 0 || h.Uname != "" || h.Gname != "" {
			t.Errorf("%s: owner %d/%d (%q/%q), want 0/0 without names", h.Name, h.Uid, h.Gid, h.Uname, h.Gname)
		}
		if h.ModTime.Unix() != epoch {
			t.Errorf("%s: mtime %v, want the commit's %v", h.Name, h.ModTime, time.Unix(epoch, 0))
		}
		var data []byte
		if data, err = io.ReadAll(tr); err != nil {
			t.Fatal(err)
		}
		switch strings.TrimPrefix(h.Name, dir) {
		case "nfdrop_exporter":
			if err := os.WriteFile(bin, data, 0o755); err != nil {
				t.Fatal(err)
			}
		case "LICENSE", "README.md":
			src, err := os.ReadFile(filepath.Join(maketest.Root(t), strings.TrimPrefix(h.Name, dir)))
			if err != nil || !bytes.Equal(src, data) {
				t.Errorf("%s differs from the repository's (%v)", h.Name, err)
			}
		}
	}
	wantNames := []string{dir, dir + "LICENSE", dir + "README.md", dir + "nfdrop_exporter"}
	if !slices.Equal(got, wantNames) {
		t.Errorf("archive entries %q, want %q in this order", got, wantNames)
	}
	return bin
}

// checkBinary asserts a static ELF for the architecture, built without cgo, with -trimpath
// and the checked-in PGO profile.
func checkBinary(t *testing.T, bin, arch string, machine elf.Machine) {
	t.Helper()
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Machine != machine {
		t.Errorf("ELF machine %v, want %v", f.Machine, machine)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("program header %v: dynamically linked, want static", p.Type)
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) != 0 {
		t.Errorf("needs shared libraries %q, want none", libs)
	}
	info, err := buildinfo.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	settings := map[string]string{}
	for _, s := range info.Settings {
		settings[s.Key] = s.Value
	}
	for k, v := range map[string]string{"CGO_ENABLED": "0", "-trimpath": "true", "GOOS": "linux", "GOARCH": arch} {
		if settings[k] != v {
			t.Errorf("build setting %s = %q, want %q", k, settings[k], v)
		}
	}
	if !strings.HasSuffix(settings["-pgo"], "default.pgo") {
		t.Errorf("build setting -pgo = %q, want the checked-in default.pgo", settings["-pgo"])
	}
}

// checkVersion runs the binary: --version names the release version and the commit's
// date, and no build-host detail.
func checkVersion(t *testing.T, bin string, date time.Time) {
	t.Helper()
	out, err := exec.Command(bin, "--version").CombinedOutput()
	if err != nil {
		t.Fatalf("--version: %v\n%s", err, out)
	}
	s := string(out)
	for _, want := range []string{"nfdrop_exporter, version " + version + " ", "build date:       " + date.Format("20060102-15:04:05") + "\n"} {
		if !strings.Contains(s, want) {
			t.Errorf("--version output lacks %q:\n%s", want, s)
		}
	}
	if host, _ := os.Hostname(); host != "" && strings.Contains(s, host) {
		t.Errorf("--version output names the build host %q:\n%s", host, s)
	}
}
