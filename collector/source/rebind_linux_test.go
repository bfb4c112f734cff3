package source

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop-lab/e2e"
	"github.com/nfdrop/nfdrop_exporter/collector/classify"
	"github.com/prometheus/common/promslog"
)

// syncRecorder is a recorder safe to read while a reader goroutine writes it.
// If gate is set, the next Packet waits until it is closed.
type syncRecorder struct {
	mu   sync.Mutex
	r    *recorder
	gate chan struct{}
}

func (s *syncRecorder) Bound(g classify.Group, up bool) { s.mu.Lock(); s.r.Bound(g, up); s.mu.Unlock() }
func (s *syncRecorder) Lost(g classify.Group, n uint64) { s.mu.Lock(); s.r.Lost(g, n); s.mu.Unlock() }
func (s *syncRecorder) Flush(g classify.Group)          { s.mu.Lock(); s.r.Flush(g); s.mu.Unlock() }
func (s *syncRecorder) Rebind(g classify.Group)         { s.mu.Lock(); s.r.Rebind(g); s.mu.Unlock() }
func (s *syncRecorder) Packet(m *Message) {
	s.mu.Lock()
	gate := s.gate
	s.gate = nil
	s.mu.Unlock()
	if gate != nil {
		<-gate
	}
	s.mu.Lock()
	s.r.Packet(m)
	s.mu.Unlock()
}
func (s *syncRecorder) ReceiveError(g classify.Group, e ErrorReason) {
	s.mu.Lock()
	s.r.ReceiveError(g, e)
	s.mu.Unlock()
}

func (s *syncRecorder) snapshot() (packets int, up bool, other int, lost uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.r.packets), s.r.bound[7], s.r.errors[ReasonOther], s.r.lost[7]
}

// TestLiveRebindsAfterReceiveError binds a real NFLOG group in a private
// network namespace and breaks the receive while the socket holds packets
// the reader has not read yet. The reader must count the error and the
// re-bind, deliver the queued packets before it closes the socket, bind
// again and keep counting, so that packets + lost equals the rule's counter.
func TestLiveRebindsAfterReceiveError(t *testing.T) {
	e2e.Require(t, "ip", "iptables")
	ns := e2e.NewNetns(t, "L-rebind")
	ns.Exec("iptables", "-A", "INPUT", "-p", "udp", "--dport", "9999", "-j", "NFLOG", "--nflog-group", "7")
	send := func(n int) {
		ns.Exec("bash", "-c", fmt.Sprintf("for i in $(seq %d); do echo x > /dev/udp/127.0.0.1/9999; done", n))
	}
	ruleCount := func() int {
		out := ns.Exec("iptables", "-L", "INPUT", "-v", "-n", "-x")
		var pkts int
		for _, line := range strings.Split(out, "\n") {
			if strings.Contains(line, "NFLOG") {
				fmt.Sscan(line, &pkts)
			}
		}
		return pkts
	}
	rec := &syncRecorder{r: newRecorder()}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				n, up, other, lost := rec.snapshot()
				t.Fatalf("timed out waiting for %s (packets %d, up %v, errors %d, lost %d)", what, n, up, other, lost)
			}
		}
	}

	l := NewLive(7, Config{CopyRange: 256, FlushTimeout: 10 * time.Millisecond, NetNS: ns.FD()}, promslog.NewNopLogger())
	if err := l.Open(rec); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx, rec) }()

	send(5)
	waitFor("5 packets", func() bool { n, _, _, _ := rec.snapshot(); return n == 5 })

	// Hold the reader in its next packet, so that the next four packets,
	// each in a kernel batch of its own, queue up in the socket unread.
	gate := make(chan struct{})
	rec.mu.Lock()
	rec.gate = gate
	rec.mu.Unlock()
	send(1)
	waitFor("the reader to hold", func() bool { rec.mu.Lock(); defer rec.mu.Unlock(); return rec.gate == nil })
	for i := 0; i < 4; i++ {
		send(1)
		time.Sleep(50 * time.Millisecond) // past the 10 ms flush timeout: a datagram each
	}
	// A read that fails for any reason but an overflow makes the reader
	// re-open the socket; an expired deadline is such a failure, and the
	// reader meets it at its next read, with the queued packets unread.
	l.mu.Lock()
	l.c.setReadDeadline(time.Unix(1, 0))
	l.mu.Unlock()
	close(gate)
	waitFor("the error to be counted", func() bool { _, _, other, _ := rec.snapshot(); return other == 1 })
	// up is still true from the first binding until the reader unbinds:
	// bound again is up after the rebind.
	waitFor("the group to be bound again", func() bool {
		_, up, _, _ := rec.snapshot()
		rec.mu.Lock()
		defer rec.mu.Unlock()
		return up && rec.r.rebinds[7] == 1
	})

	send(3)
	waitFor("13 packets", func() bool { n, _, _, _ := rec.snapshot(); return n >= 13 })
	time.Sleep(100 * time.Millisecond)
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run returned %v after cancel", err)
	}
	n, _, other, lost := rec.snapshot()
	rec.mu.Lock()
	rebinds := rec.r.rebinds[7]
	rec.mu.Unlock()
	if n != 13 || other != 1 || lost != 0 || rebinds != 1 {
		t.Errorf("got %d packets, %d errors, %d lost, %d rebinds; want 13, 1, 0, 1", n, other, lost, rebinds)
	}
	if c := ruleCount(); uint64(n)+lost != uint64(c) {
		t.Errorf("packets %d + lost %d != rule counter %d", n, lost, c)
	}
}
