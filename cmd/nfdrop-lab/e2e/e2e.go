// Package e2e is the one place that decides whether end-to-end tests run and
// that builds the exporter binary they run. Every end-to-end test, in any
// package, starts with Require; tests that only need a tool (promtool,
// systemd-analyze) use Tool; tests that run the exporter use Binary:
//
//	func TestSomething(t *testing.T) {
//		e2e.Require(t, "ip", "iptables")   // NFDROP_E2E=1, root, the tools
//		bin := e2e.Binary(t)                // built once per test process
//		...
//	}
//
//	func TestMain(m *testing.M) { e2e.Main(m) } // removes the binary at exit
//
// The rules: without NFDROP_E2E=1 an end-to-end test skips; with it, a
// missing root or tool fails the test, so that `make test` (which sets it
// and runs as root) can never pass by skipping. .ci/deps installs the tools.
//
// Tests that need a network namespace of their own take it from NewNetns
// (created with its loopback up, removed with everything inside when the
// test ends); tests that wait for a state use WaitFor:
//
//	n := e2e.NewNetns(t, "R-read")      // nfdR-read-<pid>
//	n.Exec("iptables", "-A", "INPUT", "-j", "NFLOG")
//	cfg.NetNS = n.FD()
//	n.Do(func() { ln, err = net.Listen("tcp4", "127.0.0.1:0") })
//	e2e.WaitFor(t, 5*time.Second, "the bind", func() bool { return up.Load() })
//
// The package imports only the standard library (and lab/netns, which does
// too): the collector's kernel tests import it, so it must never import the
// collector or a module.
package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
)

// Enabled is the switch: NFDROP_E2E=1.
func Enabled() bool { return os.Getenv("NFDROP_E2E") == "1" }

// Require skips t unless NFDROP_E2E=1, and then fails it unless it runs as
// root with every listed tool on PATH.
func Require(t testing.TB, tools ...string) {
	t.Helper()
	if !Enabled() {
		t.Skip("end-to-end test: set NFDROP_E2E=1 and run as root (make test does both)")
	}
	if os.Geteuid() != 0 {
		t.Fatal("NFDROP_E2E=1 needs root: the end-to-end tests create network namespaces, firewall rules and NFLOG bindings")
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("NFDROP_E2E=1 but %s is missing (.ci/deps installs it): %v", tool, err)
		}
	}
}

// Tool returns the path of a tool that a test needs but that needs no root
// (promtool, systemd-analyze): without it the test skips, unless
// NFDROP_E2E=1, where the missing tool fails the test.
func Tool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if Enabled() {
			t.Fatalf("NFDROP_E2E=1 but %s is missing (.ci/deps installs it): %v", name, err)
		}
		t.Skipf("%s not installed (.ci/deps installs it; NFDROP_E2E=1 makes this a failure): %v", name, err)
	}
	return p
}

// Version, Revision and Branch are what Binary's build reports in
// nfdrop_exporter_build_info, as a release build would (Makefile LDFLAGS).
const (
	Version  = "0.0.0-e2e"
	Revision = "e2e"
	Branch   = "test"
)

var (
	buildOnce sync.Once
	buildDir  string
	buildBin  string
	buildErr  error
)

// Binary returns the exporter binary, built once per test process with
// release-style version information. It lies in a directory of its own that
// every user may read and execute (tests run it as an unprivileged user);
// Main removes it.
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "nfdrop-e2e-bin-")
		if buildErr != nil {
			return
		}
		if buildErr = os.Chmod(buildDir, 0o755); buildErr != nil {
			return
		}
		buildBin = filepath.Join(buildDir, "nfdrop_exporter")
		ldflags := "-X github.com/prometheus/common/version.Version=" + Version +
			" -X github.com/prometheus/common/version.Revision=" + Revision +
			" -X github.com/prometheus/common/version.Branch=" + Branch
		cmd := exec.Command("go", "build", "-ldflags", ldflags, "-o", buildBin, "./cmd/nfdrop_exporter")
		cmd.Dir = Root()
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/nfdrop_exporter: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildBin
}

// Main runs the tests of a package that calls Binary and removes the binary
// afterwards; call it from TestMain.
func Main(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// Root is the repository's root directory, for tests that read shipped files
// (deploy/, dashboards/) from another package's directory.
func Root() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..")
}
