package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"sync"
	"syscall"
	"testing"

	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop-lab/lab/netns"
)

// Netns is a network namespace of one test, created by NewNetns and removed
// when the test ends. Use it from the test (or benchmark) that created it:
// its methods fail that test.
type Netns struct {
	// Name is "nfd<tag>-<pid>": the tag says which test made it, the
	// process id keeps concurrent runs apart.
	Name string

	t  testing.TB
	fd int // -1 until FD opens it
}

var (
	tagRE     = regexp.MustCompile(`^[A-Za-z0-9_-]{1,24}$`)
	liveMu    sync.Mutex
	liveNames = map[string]bool{}
)

// NewNetns creates the namespace "nfd<tag>-<pid>" with its loopback up
// (removing first a stale one of that name, left by a killed run whose
// process id this one reuses). When t ends it kills whatever still runs
// inside, closes FD and deletes the namespace. Like Require it skips t
// unless NFDROP_E2E=1. Two namespaces of one process need two tags.
func NewNetns(t testing.TB, tag string) *Netns {
	t.Helper()
	Require(t, "ip")
	if !tagRE.MatchString(tag) {
		t.Fatalf("namespace tag %q: want 1-24 of [A-Za-z0-9_-]", tag)
	}
	n := &Netns{Name: fmt.Sprintf("nfd%s-%d", tag, os.Getpid()), t: t, fd: -1}
	liveMu.Lock()
	taken := liveNames[n.Name]
	liveNames[n.Name] = true
	liveMu.Unlock()
	if taken {
		t.Fatalf("namespace %s is still in use by this process: give each live namespace its own tag", n.Name)
	}
	t.Cleanup(func() {
		if n.fd >= 0 {
			syscall.Close(n.fd)
		}
		if err := netns.Remove(n.Name); err != nil {
			t.Error(err)
		}
		liveMu.Lock()
		delete(liveNames, n.Name)
		liveMu.Unlock()
	})
	if err := netns.Create(n.Name); err != nil {
		t.Fatal(err)
	}
	return n
}

// Exec runs a command inside the namespace (for at most netns.Timeout) and
// returns its standard output; a failure fails the test with its standard
// error.
func (n *Netns) Exec(name string, args ...string) string {
	n.t.Helper()
	out, err := netns.Run(n.Name, name, args...)
	if err != nil {
		n.t.Fatal(err)
	}
	return out
}

// Command returns a command that runs inside the namespace, not started.
// ip execs it in place, so cmd.Process is the command itself and its
// signals reach it directly. Whatever still runs at the end of the test is
// killed when the namespace is removed.
func (n *Netns) Command(name string, args ...string) *exec.Cmd {
	return netns.Command(n.Name, name, args...)
}

// CommandContext is Command with a context that kills the command.
func (n *Netns) CommandContext(ctx context.Context, name string, args ...string) *exec.Cmd {
	return netns.CommandContext(ctx, n.Name, name, args...)
}

// FD is a file descriptor of the namespace, for the NetNS settings of the
// collector's parts and for netlink sockets; it stays open until the test
// ends.
func (n *Netns) FD() int {
	n.t.Helper()
	if n.fd < 0 {
		fd, err := syscall.Open(netns.Path(n.Name), syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
		if err != nil {
			n.t.Fatalf("open namespace %s: %v", n.Name, err)
		}
		n.fd = fd
	}
	return n.fd
}

// Do runs f on the calling goroutine with its OS thread switched into the
// namespace (netns.Do): sockets f makes stay in the namespace. f may fail
// the test.
func (n *Netns) Do(f func()) {
	n.t.Helper()
	if err := netns.Do(n.Name, func() error { f(); return nil }); err != nil {
		n.t.Fatal(err)
	}
}
