// Package maketest runs the repository's Makefile targets for the tests under deploy/:
// the release archives, the container image and the Debian package are checked as a user
// builds them, with `make`.
package maketest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// E2E skips unless end-to-end tests are enabled (NFDROP_E2E=1) and the test runs as root;
// what is enabled but missing fails.
func E2E(t *testing.T, tools ...string) {
	t.Helper()
	if os.Getenv("NFDROP_E2E") != "1" {
		t.Skip("end-to-end build test: set NFDROP_E2E=1 and run as root")
	}
	if os.Geteuid() != 0 {
		t.Skip("end-to-end build test needs root")
	}
	for _, tool := range append([]string{"make", "git", "go"}, tools...) {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("NFDROP_E2E=1 but %s is missing: %v (.ci/deps installs it)", tool, err)
		}
	}
}

// Root is the repository's top directory, where the Makefile is.
func Root(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
}

// Make runs `make ARGS` in the repository with env added to the environment, failing the
// test with make's output when it fails.
func Make(t *testing.T, env []string, args ...string) string {
	t.Helper()
	cmd := exec.Command("make", append([]string{"--no-print-directory", "-C", Root(t)}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("make %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// SourceDateEpoch is the build time the Makefile stamps: the last commit's.
func SourceDateEpoch(t *testing.T) int64 {
	t.Helper()
	out, err := exec.Command("git", "-C", Root(t), "log", "-1", "--format=%ct").Output()
	if err != nil {
		t.Fatalf("git log: %v", err)
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// Run runs a command, failing the test with its output when it fails.
func Run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}
