package ebpf

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// generated are the files bpf2go writes, committed so that a build needs no
// clang.
var generated = []string{"kfreeskb_bpfel.go", "kfreeskb_bpfel.o", "kfreeskb_bpfeb.go", "kfreeskb_bpfeb.o"}

// TestGenerated compiles kfree_skb.bpf.c again, with the //go:generate
// command of gen.go, into a temporary directory and checks that the committed
// objects and loaders are byte for byte what it gives. bpf2go keeps the
// output reproducible (no clang version string, no build directory in the
// debug info), so any difference means the committed files are stale. The
// objects are built with Debian's clang 14; another clang writes other
// bytes, so the test needs clang-14 and llvm-strip-14 and skips without them.
func TestGenerated(t *testing.T) {
	for _, tool := range []string{"clang-14", "llvm-strip-14"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed (apt-get install clang-14 llvm-14 libbpf-dev): the committed objects are checked only where they can be rebuilt", tool)
		}
	}
	if _, err := os.Stat("/usr/include/bpf/bpf_helpers.h"); err != nil {
		t.Skip("libbpf-dev's headers are not installed (apt-get install libbpf-dev)")
	}
	// Read here as well as by clang, so that go test's cache knows the
	// result depends on it.
	if _, err := os.ReadFile("kfree_skb.bpf.c"); err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("gen.go")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^//go:generate (.*bpf2go) (.*)$`).FindSubmatch(src)
	if m == nil {
		t.Fatal("no bpf2go //go:generate line in gen.go")
	}
	dir := t.TempDir()
	args := append(strings.Fields(string(m[1])), "-output-dir", dir)
	args = append(args, strings.Fields(string(m[2]))...)
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), "GOPACKAGE=ebpf")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	for _, name := range generated {
		want, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s is not what kfree_skb.bpf.c compiles to (%d bytes committed, %d rebuilt): run make generate", name, len(got), len(want))
		}
	}
	// Nothing else was written.
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != len(generated) {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("bpf2go wrote %v, the test knows %v", names, generated)
	}
}
