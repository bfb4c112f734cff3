package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop-lab/lab/netns"
)

// TestImportsOnlyTheStandardLibrary: the collector's kernel tests import
// this package, so nothing it pulls in may import the collector or a module.
func TestImportsOnlyTheStandardLibrary(t *testing.T) {
	cmd := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	got := strings.Fields(string(out))
	slices.Sort(got)
	want := []string{
		"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop-lab/e2e",
		"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop-lab/lab/netns",
	}
	if !slices.Equal(got, want) {
		t.Errorf("non-standard packages in the build of e2e: %q, want %q", got, want)
	}
}

// fatalRecorder stands in for a test to see WaitFor fail it.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (f *fatalRecorder) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func TestWaitFor(t *testing.T) {
	calls := 0
	WaitFor(t, time.Second, "the third call", func() bool { calls++; return calls == 3 })
	if calls != 3 {
		t.Errorf("cond called %d times, want 3 (it held on the third)", calls)
	}

	rec := &fatalRecorder{TB: t}
	start := time.Now()
	done := make(chan struct{})
	calls = 0
	go func() {
		defer close(done)
		WaitEvery(rec, 200*time.Millisecond, 50*time.Millisecond, "never", func() bool { calls++; return false })
	}()
	<-done
	if took := time.Since(start); took < 200*time.Millisecond {
		t.Errorf("gave up after %v, before the 200ms deadline", took)
	}
	if rec.msg != "timed out after 200ms waiting for never" {
		t.Errorf("failure %q", rec.msg)
	}
	// 0, 50, ..., 200 ms and the one past the deadline: 5 or 6 calls, never
	// the 20 a 10 ms interval would make.
	if calls < 4 || calls > 7 {
		t.Errorf("cond called %d times in 200ms at a 50ms interval", calls)
	}
}

// TestNetns: a namespace of a test has its loopback up, runs commands and Go
// code inside, and is gone with everything in it when the test ends; a stale
// one of the same name is replaced.
func TestNetns(t *testing.T) {
	Require(t, "ip", "sleep")
	var name string
	var sleeper *exec.Cmd
	waited := make(chan error, 1)
	t.Run("use", func(t *testing.T) {
		n := NewNetns(t, "t-netns")
		name = n.Name
		if want := "nfdt-netns-" + strconv.Itoa(os.Getpid()); n.Name != want {
			t.Errorf("name %q, want %q", n.Name, want)
		}
		if out := n.Exec("ip", "-o", "link", "show", "lo"); !strings.Contains(out, "<LOOPBACK,UP,LOWER_UP>") {
			t.Errorf("loopback not up: %s", out)
		}
		var st syscall.Stat_t
		if err := syscall.Stat(netns.Path(n.Name), &st); err != nil {
			t.Fatal(err)
		}
		var fdSt syscall.Stat_t
		if err := syscall.Fstat(n.FD(), &fdSt); err != nil || fdSt.Ino != st.Ino {
			t.Errorf("FD is inode %d (%v), the namespace %d", fdSt.Ino, err, st.Ino)
		}
		self := func() string {
			s, err := os.Readlink("/proc/thread-self/ns/net")
			if err != nil {
				t.Fatal(err)
			}
			return s
		}
		var inside string
		n.Do(func() { inside = self() })
		if want := fmt.Sprintf("net:[%d]", st.Ino); inside != want {
			t.Errorf("inside Do the thread is in %s, want %s", inside, want)
		}
		sleeper = n.Command("sleep", "60")
		if err := sleeper.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { waited <- sleeper.Wait() }()
		waitInside(t, sleeper, n.Name)
	})
	if netns.Exists(name) {
		t.Errorf("namespace %s still exists after its test ended", name)
	}
	select {
	case err := <-waited:
		if ws, ok := sleeper.ProcessState.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
			t.Errorf("the process left inside ended with %v, want killed", err)
		}
	case <-time.After(5 * time.Second):
		t.Error("the process left inside still runs after its test ended")
	}

	t.Run("stale", func(t *testing.T) {
		stale := "nfdt-stale-" + strconv.Itoa(os.Getpid())
		if _, err := netns.Run("", "ip", "netns", "add", stale); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = netns.Remove(stale) })
		marker := netns.Command(stale, "sleep", "60")
		if err := marker.Start(); err != nil {
			t.Fatal(err)
		}
		markerDone := make(chan error, 1)
		go func() { markerDone <- marker.Wait() }()
		waitInside(t, marker, stale)
		n := NewNetns(t, "t-stale")
		select {
		case <-markerDone:
		case <-time.After(5 * time.Second):
			t.Error("the process in the stale namespace survived its removal")
		}
		if out := n.Exec("ip", "-o", "link", "show", "lo"); !strings.Contains(out, "<LOOPBACK,UP,LOWER_UP>") {
			t.Errorf("loopback of the new namespace not up: %s", out)
		}
	})
}

// waitInside waits until the process cmd started with `ip netns exec` is
// inside the namespace name: ip enters it after Start returns, and a
// removal before that has nothing to kill.
func waitInside(t *testing.T, cmd *exec.Cmd, name string) {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(netns.Path(name), &st); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("net:[%d]", st.Ino)
	WaitFor(t, 5*time.Second, "the process inside namespace "+name, func() bool {
		s, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", cmd.Process.Pid))
		return s == want
	})
}
