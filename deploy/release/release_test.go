// Package release_test builds the release archives with `make release` twice and checks
// what a user relies on: static, stripped binaries for each architecture, a
// self-contained archive (documentation whose links resolve inside it, the example
// configuration), verifiable checksums, version stamping, and byte-identical rebuilds; and
// the snapshot version `make` stamps without VERSION.
package release_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"debug/buildinfo"
	"debug/elf"
	"io"
	"io/fs"
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

	// The documentation bundle make docs wrote, which each archive holds.
	var docs []string
	err = filepath.WalkDir(filepath.Join(dirs[0], "docs"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(filepath.Join(dirs[0], "docs"), p)
			docs = append(docs, filepath.ToSlash(rel))
		}
		return err
	})
	if err != nil || !slices.Contains(docs, "README.md") || !slices.Contains(docs, "deploy/README.md") {
		t.Fatalf("documentation bundle %q (%v): want README.md and deploy/README.md at least", docs, err)
	}

	for arch, machine := range archs {
		t.Run(arch, func(t *testing.T) {
			bin := checkArchive(t, filepath.Join(dirs[0], "nfdrop_exporter-"+version+".linux-"+arch+".tar.gz"), arch, epoch, docs)
			checkBinary(t, bin, arch, machine)
			if arch == "amd64" {
				checkVersion(t, bin, time.Unix(epoch, 0).UTC())
			}
		})
	}
}

// kit is the example configuration every archive ships next to the documentation, at the
// repository's paths (the Makefile's KIT).
var kit = []string{
	"dashboards/nfdrop.json",
	"deploy/prometheus/alerts.yml", "deploy/prometheus/rules.yml", "deploy/prometheus/scrape-config.yml",
	"deploy/systemd/nfdrop_exporter.default", "deploy/systemd/nfdrop_exporter.service", "deploy/systemd/nfdrop_exporter-ebpf.service",
}

// checkArchive asserts the archive holds exactly the directory, the binary, LICENSE, the
// documentation bundle (docs, files relative to it) and the kit, with sorted names, owned
// by 0/0 with the commit's time; that the copies are self-contained (links and mentioned
// paths resolve inside the archive); and returns the extracted binary.
func checkArchive(t *testing.T, path, arch string, epoch int64, docs []string) string {
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
	out := t.TempDir()
	var got, files []string
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
		rel, ok := strings.CutPrefix(h.Name, dir)
		if !ok || strings.Contains(rel, "..") {
			t.Fatalf("%s: entry %s outside %s", path, h.Name, dir)
		}
		mode := int64(0o644)
		if h.Typeflag == tar.TypeDir || rel == "nfdrop_exporter" {
			mode = 0o755
		}
		if h.Mode&0o7777 != mode || (h.Typeflag != tar.TypeDir && h.Typeflag != tar.TypeReg) {
			t.Errorf("%s: entry %s type %c mode %o, want a file or directory of mode %o", path, h.Name, h.Typeflag, h.Mode, mode)
		}
		if h.Uid != 0 || h.Gid != 0 || h.Uname != "" || h.Gname != "" {
			t.Errorf("%s: owner %d/%d (%q/%q), want 0/0 without names", h.Name, h.Uid, h.Gid, h.Uname, h.Gname)
		}
		if h.ModTime.Unix() != epoch {
			t.Errorf("%s: mtime %v, want the commit's %v", h.Name, h.ModTime, time.Unix(epoch, 0))
		}
		dst := filepath.Join(out, filepath.FromSlash(rel))
		if h.Typeflag == tar.TypeDir {
			if err := os.MkdirAll(dst, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		files = append(files, rel)
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, data, os.FileMode(mode)); err != nil {
			t.Fatal(err)
		}
	}
	// tar --sort=name orders each directory's entries by name, a
	// directory's contents right after it: path components compare in turn.
	byComponents := func(a, b string) int {
		return slices.Compare(strings.Split(strings.TrimSuffix(a, "/"), "/"), strings.Split(strings.TrimSuffix(b, "/"), "/"))
	}
	if !slices.IsSortedFunc(got, byComponents) || len(got) == 0 || got[0] != dir {
		t.Errorf("archive entries not in name order under %s: %q", dir, got)
	}
	want := slices.Concat([]string{"nfdrop_exporter", "LICENSE"}, docs, kit)
	slices.Sort(want)
	want = slices.Compact(want)
	slices.Sort(files)
	if !slices.Equal(files, want) {
		t.Errorf("archive files %q, want %q", files, want)
	}
	// Every file but the binary is the repository's (documents up to their rewritten
	// links), every link resolves inside the archive, and so does every repository path
	// the configuration files mention.
	maketest.CheckDocs(t, out, maketest.Revision(t), "nfdrop_exporter")
	var config []string
	for _, f := range files {
		if f != "nfdrop_exporter" && !strings.HasSuffix(f, ".md") {
			config = append(config, filepath.Join(out, f))
		}
	}
	maketest.CheckMentions(t, out, config...)
	return filepath.Join(out, "nfdrop_exporter")
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
	// Stripped: -s -w leave no symbol table and no DWARF. (With -trimpath the build info
	// does not record -ldflags.)
	for _, sec := range f.Sections {
		if sec.Name == ".symtab" || strings.HasPrefix(sec.Name, ".debug_") || strings.HasPrefix(sec.Name, ".zdebug_") {
			t.Errorf("section %s present: the binary is not stripped", sec.Name)
		}
	}
	if st, err := os.Stat(bin); err == nil {
		t.Logf("%s binary: %d bytes", arch, st.Size())
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
