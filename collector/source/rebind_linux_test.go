package source

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/promslog"
)

// syncRecorder is a recorder safe to read while a reader goroutine writes it.
type syncRecorder struct {
	mu sync.Mutex
	r  *recorder
}

func (s *syncRecorder) Bound(g uint16, up bool) { s.mu.Lock(); s.r.Bound(g, up); s.mu.Unlock() }
func (s *syncRecorder) Lost(g uint16, n uint64) { s.mu.Lock(); s.r.Lost(g, n); s.mu.Unlock() }
func (s *syncRecorder) Packet(m *Message)       { s.mu.Lock(); s.r.Packet(m); s.mu.Unlock() }
func (s *syncRecorder) Flush(g uint16)          { s.mu.Lock(); s.r.Flush(g); s.mu.Unlock() }
func (s *syncRecorder) ReceiveError(g uint16, e ErrorReason) {
	s.mu.Lock()
	s.r.ReceiveError(g, e)
	s.mu.Unlock()
}

func (s *syncRecorder) snapshot() (packets int, up bool, other int, lost uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.r.packets), s.r.bound[7], s.r.errors[ReasonOther], s.r.lost[7]
}

func run(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%v: %v\n%s", args, err, out)
	}
}

// TestLiveRebindsAfterReceiveError binds a real NFLOG group in a private
// network namespace, breaks the receive, and checks that the reader counts
// the error, re-binds and keeps counting every packet.
func TestLiveRebindsAfterReceiveError(t *testing.T) {
	if os.Getenv("NFDROP_E2E") != "1" || os.Geteuid() != 0 {
		t.Skip("needs root and NFDROP_E2E=1 (binds a real NFLOG group in a network namespace)")
	}
	ns := fmt.Sprintf("nfdL-rebind-%d", os.Getpid())
	run(t, "ip", "netns", "add", ns)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	run(t, "ip", "-n", ns, "link", "set", "lo", "up")
	run(t, "ip", "netns", "exec", ns, "iptables", "-A", "INPUT", "-p", "udp", "--dport", "9999", "-j", "NFLOG", "--nflog-group", "7")
	nsFile, err := os.Open("/run/netns/" + ns)
	if err != nil {
		t.Fatal(err)
	}
	defer nsFile.Close()
	send := func(n int) {
		for i := 0; i < n; i++ {
			run(t, "ip", "netns", "exec", ns, "bash", "-c", "echo x > /dev/udp/127.0.0.1/9999")
		}
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
		}
	}

	rec := &syncRecorder{r: newRecorder()}
	l, err := NewLive(Config{Group: 7, CopyRange: 256, FlushTimeout: 10 * time.Millisecond, NetNS: int(nsFile.Fd())}, promslog.NewNopLogger())
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Start(rec); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx, rec) }()

	send(5)
	waitFor("5 packets", func() bool { n, _, _, _ := rec.snapshot(); return n == 5 })

	// A read that fails for any reason but an overflow makes the reader
	// re-open the socket; an expired deadline is such a failure.
	l.mu.Lock()
	l.nf.Con.SetReadDeadline(time.Unix(1, 0))
	l.mu.Unlock()
	waitFor("the error to be counted", func() bool { _, _, other, _ := rec.snapshot(); return other == 1 })
	waitFor("the group to be bound again", func() bool { _, up, _, _ := rec.snapshot(); return up })

	send(3)
	waitFor("8 packets", func() bool { n, _, _, _ := rec.snapshot(); return n == 8 })
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run returned %v after cancel", err)
	}
	if n, _, other, lost := rec.snapshot(); n != 8 || other != 1 || lost != 0 {
		t.Errorf("got %d packets, %d errors, %d lost; want 8, 1, 0", n, other, lost)
	}
}
