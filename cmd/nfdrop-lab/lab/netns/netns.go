// Package netns creates, enters and removes named network namespaces the way
// iproute2 keeps them (`ip netns`, /run/netns/NAME). The lab and every
// end-to-end test build their namespaces on it, so that creation, stale
// removal, running commands inside and cleanup are written once.
//
// It imports only the standard library: cmd/nfdrop-lab/e2e builds on it, and
// the kernel tests of the collector's packages import e2e.
package netns

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Dir is where iproute2 keeps its named network namespaces.
const Dir = "/run/netns"

// Timeout bounds every command Run, Create and Remove start.
const Timeout = 30 * time.Second

// Path is the file that names the namespace, for setns(2) or
// `podman --network=ns:PATH`.
func Path(name string) string { return filepath.Join(Dir, name) }

// Exists reports whether the namespace name exists.
func Exists(name string) bool {
	_, err := os.Stat(Path(name))
	return err == nil
}

// Create makes the namespace name with its loopback up. A namespace of the
// same name left behind by an earlier run that was killed is removed first
// (see Remove).
func Create(name string) error {
	if err := Remove(name); err != nil {
		return err
	}
	if _, err := Run("", "ip", "netns", "add", name); err != nil {
		return err
	}
	_, err := Run("", "ip", "-n", name, "link", "set", "lo", "up")
	return err
}

// Remove kills every process still inside the namespace (those `ip netns
// pids` lists, never this process), deletes it and checks that it is gone.
// A namespace that does not exist is no error.
func Remove(name string) error {
	if !Exists(name) {
		return nil
	}
	if out, err := Run("", "ip", "netns", "pids", name); err == nil {
		for _, f := range strings.Fields(out) {
			if pid, err := strconv.Atoi(f); err == nil && pid != os.Getpid() {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	_, delErr := Run("", "ip", "netns", "del", name)
	if Exists(name) {
		return errors.Join(fmt.Errorf("namespace %s still exists after removal", name), delErr)
	}
	return nil
}

// CommandContext returns the command that runs prog inside the namespace
// name (`ip netns exec name prog args...`), or in the caller's own namespace
// when name is "". It is not started. ip execs prog in place, so
// cmd.Process is prog itself and signals reach it directly.
func CommandContext(ctx context.Context, name, prog string, args ...string) *exec.Cmd {
	if name == "" {
		return exec.CommandContext(ctx, prog, args...)
	}
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", name, prog}, args...)...)
}

// Command is CommandContext without a context.
func Command(name, prog string, args ...string) *exec.Cmd {
	return CommandContext(context.Background(), name, prog, args...)
}

// Run runs prog inside the namespace name ("" for the caller's own) for at
// most Timeout and returns its standard output; a failure's error carries
// the command line and its standard error.
func Run(name, prog string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	cmd := CommandContext(ctx, name, prog, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s: %w: %s", strings.Join(cmd.Args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

// Do runs f on the calling goroutine's OS thread while that thread is
// switched into the namespace name, then switches it back.
//
// Sockets created by f belong to the namespace for their whole life, so a
// listener or connection made inside f can be used from any goroutine after
// Do returns. Goroutines started by f do NOT run in the namespace (they may
// be scheduled on any thread). f may end its goroutine (a test's t.Fatal):
// the thread is switched back on the way out all the same.
func Do(name string, f func() error) (err error) {
	target, err := os.Open(Path(name))
	if err != nil {
		return fmt.Errorf("open netns %q: %w", name, err)
	}
	defer target.Close()

	// The thread stays locked for the whole switch: the Go scheduler must
	// never run another goroutine on a thread in a foreign namespace.
	runtime.LockOSThread()
	orig, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("open current netns: %w", err)
	}
	defer orig.Close()
	if err := setns(int(target.Fd())); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("setns %q: %w", name, err)
	}
	defer func() {
		if serr := setns(int(orig.Fd())); serr != nil {
			// Leave the thread locked: the runtime terminates it when the
			// goroutine exits, instead of reusing a thread stuck in the
			// namespace.
			err = errors.Join(err, fmt.Errorf("setns back from %q (this goroutine stays in it): %w", name, serr))
			return
		}
		runtime.UnlockOSThread()
	}()
	return f()
}
