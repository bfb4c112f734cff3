//go:build linux

package source

import (
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop-lab/e2e"
	"github.com/nfdrop/nfdrop_exporter/collector/classify"
	"golang.org/x/sys/unix"
)

// The tests in this file bind a real NFLOG group inside a private network
// namespace and flood it from the same namespace. They need root and run
// only with NFDROP_E2E=1, like the other end-to-end tests.

// counter is an allocation-free Handler for the receive-path tests.
type counter struct {
	packets atomic.Uint64
	lost    atomic.Uint64
	errs    [NumReasons]atomic.Uint64
	badLen  atomic.Uint64 // payloads that are not the flood's datagram
	flushes atomic.Uint64 // datagrams
	wantLen int
}

func (c *counter) Bound(classify.Group, bool)      {}
func (c *counter) Flush(classify.Group)            { c.flushes.Add(1) }
func (c *counter) Rebind(classify.Group)           {}
func (c *counter) Lost(_ classify.Group, n uint64) { c.lost.Add(n) }
func (c *counter) ReceiveError(_ classify.Group, r ErrorReason) {
	c.errs[r%NumReasons].Add(1)
}
func (c *counter) Packet(m *Message) {
	if len(m.Payload) != c.wantLen || !m.HasSeq || string(m.Prefix) != "nfdG-live" {
		c.badLen.Add(1)
	}
	c.packets.Add(1)
}

func needLiveRoot(t testing.TB) {
	t.Helper()
	e2e.Require(t, "ip", "iptables")
}

// newLiveNetns is a private network namespace (e2e.NewNetns) with rules that
// log every UDP datagram to 127.0.0.1:9 rules times to group, then drop it.
func newLiveNetns(t testing.TB, group uint16, rules int) *e2e.Netns {
	t.Helper()
	n := e2e.NewNetns(t, "G-live")
	for i := 0; i < rules; i++ {
		n.Exec("iptables", "-A", "OUTPUT", "-o", "lo", "-p", "udp", "--dport", "9",
			"-j", "NFLOG", "--nflog-group", strconv.Itoa(int(group)), "--nflog-prefix", "nfdG-live", "--nflog-size", "128")
	}
	n.Exec("iptables", "-A", "INPUT", "-p", "udp", "--dport", "9", "-j", "DROP")
	return n
}

// flood sends count 64-byte UDP datagrams to 127.0.0.1:9 inside the
// namespace, without allocating per datagram.
func flood(t testing.TB, n *e2e.Netns, count int) {
	t.Helper()
	n.Do(func() {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM, 0)
		if err != nil {
			t.Error(err)
			return
		}
		defer unix.Close(fd)
		if err := unix.Connect(fd, &unix.SockaddrInet4{Port: 9, Addr: [4]byte{127, 0, 0, 1}}); err != nil {
			t.Error(err)
			return
		}
		buf := make([]byte, 64)
		for i := 0; i < count; i++ {
			// ECONNREFUSED from an ICMP error of an earlier datagram is
			// harmless here (the INPUT DROP makes it unlikely anyway).
			if _, err := unix.Write(fd, buf); err != nil && err != unix.ECONNREFUSED {
				t.Errorf("send %d: %v", i, err)
				return
			}
		}
	})
}

// startLive binds group inside the namespace and runs the reader until the
// test ends.
func startLive(t testing.TB, n *e2e.Netns, cfg Config, h Handler) {
	t.Helper()
	var l *Live
	var err error
	n.Do(func() {
		l = NewLive(cfg.Groups[0], cfg, slog.New(slog.DiscardHandler))
		err = l.Open(h)
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := l.Run(ctx, h); err != nil {
			t.Error(err)
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
}

// waitCount waits until the handler saw want messages (counted or lost).
func waitCount(c *counter, want uint64, limit time.Duration) {
	deadline := time.Now().Add(limit)
	for c.packets.Load()+c.lost.Load() < want && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	// Anything beyond want would arrive within a flush timeout.
	time.Sleep(50 * time.Millisecond)
}

func defaultLiveConfig(group uint16) Config {
	return Config{Groups: []uint16{group}, CopyRange: 256, QueueThreshold: 1000, FlushTimeout: 10 * time.Millisecond,
		BatchSize: 128 << 10, ReceiveBuffer: 32 << 20}
}

// TestLiveExactCountsAndNoAllocs floods a real group with a known number of
// datagrams (x4 rules) and checks that every message is delivered exactly
// once with the exporter's default settings, and that the receive loop
// (socket read, netlink and attribute parsing, sequence tracking) allocates
// nothing per message.
func TestLiveExactCountsAndNoAllocs(t *testing.T) {
	needLiveRoot(t)
	const group, rules, datagrams = 41, 4, 50_000
	n := newLiveNetns(t, group, rules)
	c := &counter{wantLen: 20 + 8 + 64}
	startLive(t, n, defaultLiveConfig(group), c)

	// Warm up: the first batches set up the poller and buffers.
	flood(t, n, 1000)
	waitCount(c, 1000*rules, 5*time.Second)
	base := c.packets.Load()

	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	flood(t, n, datagrams)
	waitCount(c, base+datagrams*rules, 10*time.Second)
	runtime.ReadMemStats(&m1)

	got := c.packets.Load() - base
	if got != datagrams*rules || c.lost.Load() != 0 {
		t.Errorf("received %d messages and lost %d, want exactly %d and 0", got, c.lost.Load(), datagrams*rules)
	}
	if b := c.badLen.Load(); b != 0 {
		t.Errorf("%d messages without the flood's payload, prefix or sequence number", b)
	}
	for r := ErrorReason(0); r < NumReasons; r++ {
		if e := c.errs[r].Load(); e != 0 {
			t.Errorf("%d receive errors %s", e, r)
		}
	}
	// The test's own goroutines (sleeps, the sending thread) allocate a
	// few times per flood. One allocation per message would show as 200,000,
	// one per kernel batch (1000 messages) as 200: allow 100 in all.
	mallocs := m1.Mallocs - m0.Mallocs
	t.Logf("%d messages, %d mallocs in the whole process (%.5f per message)", got, mallocs, float64(mallocs)/float64(got))
	if mallocs > 100 {
		t.Errorf("%d allocations for %d messages, want none per message or batch (<= 100 test overhead)", mallocs, got)
	}
}

// TestLiveOverflowIsCounted overflows a tiny socket buffer while the reader
// is stalled and checks the accounting: every message the rules logged is
// either received or counted as lost once a later message arrives, and the
// loss is real.
func TestLiveOverflowIsCounted(t *testing.T) {
	needLiveRoot(t)
	const group, rules, datagrams = 42, 4, 20_000
	n := newLiveNetns(t, group, rules)
	h := &stallingCounter{counter: counter{wantLen: 20 + 8 + 64}}
	h.stall.Store(true)
	cfg := defaultLiveConfig(group)
	cfg.ReceiveBuffer = 64 << 10
	startLive(t, n, cfg, h)
	flood(t, n, datagrams)
	h.stall.Store(false)
	// A lost batch shows as a sequence gap only when a later message
	// arrives: once the reader has drained the queue, one more datagram
	// (slowly, so that it is not lost too) reveals the loss at the tail.
	waitCount(&h.counter, datagrams*rules, 2*time.Second)
	flood(t, n, 1)
	const total = (datagrams + 1) * rules
	waitCount(&h.counter, total, 10*time.Second)
	got, lost := h.packets.Load(), h.lost.Load()
	if got+lost != total {
		t.Errorf("received %d + lost %d = %d, want exactly %d logged", got, lost, got+lost, total)
	}
	if lost == 0 {
		t.Errorf("nothing lost with a 64 KiB buffer and a stalled reader: the test did not overflow")
	}
	t.Logf("received %d, lost %d, ENOBUFS %d", got, lost, h.errs[ReasonENOBUFS].Load())
}

// stallingCounter blocks in its first Packet call until stall is cleared,
// as a reader that is descheduled during a burst would.
type stallingCounter struct {
	counter
	stall atomic.Bool
}

func (s *stallingCounter) Packet(m *Message) {
	for s.stall.Load() {
		time.Sleep(time.Millisecond)
	}
	s.counter.Packet(m)
}

// BenchmarkLiveReceive measures the real receive path per message: b.N
// datagrams (x1 rule) are logged by the kernel and read by Live with the
// exporter's defaults. rcv-cpu-ns/msg is the reader thread's own CPU time
// (from /proc/self/task/TID/stat, 10 ms ticks: use -benchtime=500000x or more).
func BenchmarkLiveReceive(b *testing.B) {
	needLiveRoot(b)
	const group = 43
	n := newLiveNetns(b, group, 1)
	c := &counter{wantLen: 20 + 8 + 64}
	var l *Live
	var err error
	n.Do(func() {
		l = NewLive(group, defaultLiveConfig(group), slog.New(slog.DiscardHandler))
		err = l.Open(c)
	})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	tidc := make(chan int, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		tidc <- unix.Gettid()
		_ = l.Run(ctx, c)
	}()
	defer func() { cancel(); <-done }()
	tid := <-tidc
	flood(b, n, 1000)
	waitCount(c, 1000, 5*time.Second)
	base := c.packets.Load()

	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := threadCPU(b, tid)
	flood(b, n, b.N)
	waitCount(c, base+uint64(b.N), 30*time.Second)
	cpu1 := threadCPU(b, tid)
	b.StopTimer()
	if got := c.packets.Load() - base; got != uint64(b.N) || c.lost.Load() != 0 {
		b.Fatalf("received %d, lost %d, want %d and 0", got, c.lost.Load(), b.N)
	}
	b.ReportMetric(float64((cpu1-cpu0).Nanoseconds())/float64(b.N), "rcv-cpu-ns/msg")
}

// threadCPU is utime+stime of one thread of this process.
func threadCPU(t testing.TB, tid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/self/task/%d/stat", tid))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	u, _ := strconv.ParseUint(f[11], 10, 64)
	st, _ := strconv.ParseUint(f[12], 10, 64)
	return time.Duration(u+st) * 10 * time.Millisecond
}

// BenchmarkParseAttrs measures the attribute parser on a typical kernel
// message: "walk" follows the TLV chain (it used to read the headers through
// the binary.ByteOrder interface, a non-inlined call per header: 136-138 ns
// per message against 73-77 ns with the byte order fixed to the host's);
// "layout" checks the message against the layout of the previous one, which
// is what the live reader does for all but the first message of a rule.
func BenchmarkParseAttrs(b *testing.B) {
	msg := benchNFLOGMessage()
	check := func(b *testing.B, m *Message) {
		if len(m.Payload) != 60 || string(m.Prefix) != "denied" || !m.HasSeq || !m.HasTimestamp {
			b.Fatalf("benchmark message not parsed: %+v", m)
		}
	}
	b.Run("walk", func(b *testing.B) {
		var m Message
		b.ReportAllocs()
		for b.Loop() {
			resetMessage(&m, 0, 2)
			_ = parseAttrs(msg, false, &m, nil)
		}
		check(b, &m)
	})
	b.Run("layout", func(b *testing.B) {
		var m Message
		var lay attrLayout
		_ = parseAttrs(msg, false, &m, &lay)
		b.ReportAllocs()
		for b.Loop() {
			resetMessage(&m, 0, 2)
			if !lay.parse(msg, &m) {
				b.Fatal("layout did not match")
			}
		}
		check(b, &m)
	})
}

// benchNFLOGMessage is the attribute part of a typical NFULNL_MSG_PACKET as
// the kernel builds it for an iptables NFLOG rule on INPUT (attribute order of
// __build_packet_message).
func benchNFLOGMessage() []byte {
	var b []byte
	attr := func(typ uint16, v []byte) {
		l := 4 + len(v)
		b = binary.NativeEndian.AppendUint16(b, uint16(l))
		b = binary.NativeEndian.AppendUint16(b, typ)
		b = append(b, v...)
		for len(b)%4 != 0 {
			b = append(b, 0)
		}
	}
	attr(attrPacketHdr, []byte{0x08, 0x00, 1, 0})
	attr(4, []byte{0, 0, 0, 0}) // NFULA_MARK
	attr(attrTimestamp, make([]byte, 16))
	attr(5, []byte{0, 0, 0, 2}) // NFULA_IFINDEX_INDEV
	attr(8, make([]byte, 12))   // NFULA_HWADDR
	attr(16, make([]byte, 14))  // NFULA_HWHEADER
	attr(17, []byte{0, 1})      // NFULA_HWTYPE
	attr(18, []byte{0, 14})     // NFULA_HWLEN
	attr(attrPrefix, []byte("denied\x00"))
	attr(attrSeq, []byte{0, 0, 0, 7})
	attr(attrPayload, make([]byte, 60))
	return b
}
