package ctlog

import (
	"reflect"
	"testing"
	"time"

	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop-lab/e2e"
	"github.com/nfdrop/nfdrop_exporter/collector/classify"
	"github.com/nfdrop/nfdrop_exporter/collector/packet"
)

var classes = []string{"malformed", "fragment", "probe", "handshake", "teardown", "other"}

const (
	teardown = 4
	probe    = 2
)

// pkt builds a distinct 40-byte IPv4 TCP packet per n.
func pkt(n byte) []byte {
	b := make([]byte, 40)
	b[0], b[9] = 0x45, 6
	b[8] = 64 // TTL
	b[24] = n // TCP sequence number
	return b
}

func newLog(t *testing.T, groups []classify.Group, window time.Duration) *Log {
	t.Helper()
	return New(Config{Groups: groups, ReasonsGroup: 0, Join: true, Window: window})
}

func drops(l *Log, group classify.Group, class int, r Reason) uint64 {
	return l.Group(group).drops[class][r].Load()
}

func TestJoinSharedGroup(t *testing.T) {
	l := newLog(t, []classify.Group{0}, time.Second)
	a, b, c := Key(packet.FamilyIPv4, pkt(1)), Key(packet.FamilyIPv4, pkt(2)), Key(packet.FamilyIPv4, pkt(3))
	// Conntrack's message comes first, then the drop of the same packet.
	l.Group(0).Message(packet.FamilyIPv4, packet.ProtoTCP, ReasonInvalidNew, a, 1, true)
	l.Group(0).Drop(teardown, a, 2, true)
	// A drop conntrack wrote nothing about.
	l.Group(0).Drop(teardown, b, 3, true)
	// A message about a packet that was accepted, not dropped: no drop is counted.
	l.Group(0).Message(packet.FamilyIPv4, packet.ProtoTCP, ReasonIgnoredState, c, 4, true)
	// A retransmission with identical headers: two messages, two drops.
	l.Group(0).Message(packet.FamilyIPv4, packet.ProtoTCP, ReasonInvalidNew, b, 5, true)
	l.Group(0).Drop(teardown, b, 6, true)
	l.Group(0).Message(packet.FamilyIPv4, packet.ProtoTCP, ReasonInvalidNew, b, 7, true)
	l.Group(0).Drop(teardown, b, 8, true)
	l.Group(0).Drop(teardown, b, 9, true) // the third has no message
	if got := drops(l, 0, teardown, ReasonInvalidNew); got != 3 {
		t.Errorf("invalid_new drops = %d, want 3", got)
	}
	if got := drops(l, 0, teardown, ReasonNone); got != 2 {
		t.Errorf("none drops = %d, want 2", got)
	}
	if got := l.Group(0).messages[packet.FamilyIPv4][packet.ProtoTCP][ReasonIgnoredState].Load(); got != 1 {
		t.Errorf("ignored_state messages = %d, want 1", got)
	}
}

func TestJoinSeparateGroup(t *testing.T) {
	l := newLog(t, []classify.Group{0, 5}, 200*time.Millisecond)
	a, b, c, d := Key(packet.FamilyIPv4, pkt(1)), Key(packet.FamilyIPv4, pkt(2)), Key(packet.FamilyIPv4, pkt(3)), Key(packet.FamilyIPv4, pkt(4))
	// Read in kernel order.
	l.Group(0).Message(packet.FamilyIPv4, packet.ProtoTCP, ReasonSeqOverUpperBound, a, 10, true)
	l.Group(5).Drop(teardown, a, 11, true)
	// The drop's group is read before conntrack's: it waits for its reason.
	l.Group(5).Drop(probe, b, 13, true)
	if got := l.Group(5).waiting(); got != 1 {
		t.Fatalf("waiting drops = %d, want 1", got)
	}
	l.Group(0).Message(packet.FamilyIPv4, packet.ProtoTCP, ReasonInvalidFlags, b, 12, true)
	l.resolve()
	// The reasons group has been read past the drop: none at once.
	l.Group(5).Drop(teardown, c, 11, true)
	// No sequence numbers and no reason: none once the window has ended.
	l.Group(5).Drop(teardown, d, 0, false)
	l.resolve()
	if got := drops(l, 5, teardown, ReasonNone); got != 1 {
		t.Errorf("none before the window = %d, want 1", got)
	}
	time.Sleep(250 * time.Millisecond)
	l.resolve()
	for _, tc := range []struct {
		class int
		r     Reason
		want  uint64
	}{
		{teardown, ReasonSeqOverUpperBound, 1},
		{probe, ReasonInvalidFlags, 1},
		{teardown, ReasonNone, 2},
	} {
		if got := drops(l, 5, tc.class, tc.r); got != tc.want {
			t.Errorf("group 5 %s/%s = %d, want %d", classes[tc.class], tc.r, got, tc.want)
		}
	}
	if got := l.Group(5).waiting(); got != 0 {
		t.Errorf("waiting drops = %d, want 0", got)
	}
}

func TestJoinStaleReasonNotClaimed(t *testing.T) {
	l := newLog(t, []classify.Group{0}, 10*time.Millisecond)
	a := Key(packet.FamilyIPv4, pkt(1))
	l.Group(0).Message(packet.FamilyIPv4, packet.ProtoTCP, ReasonInvalidNew, a, 1, true)
	time.Sleep(40 * time.Millisecond)
	l.resolve() // advances the clock, as the resolver does every 20ms
	l.Group(0).Drop(teardown, a, 2, true)
	if got := drops(l, 0, teardown, ReasonNone); got != 1 {
		t.Errorf("a reason older than twice the window was claimed: none = %d, want 1", got)
	}
}

func TestJoinOffCountsMessagesOnly(t *testing.T) {
	l := New(Config{Groups: []classify.Group{5}, ReasonsGroup: 0, Join: true})
	if l.Joining() {
		t.Fatal("joining without the reasons group")
	}
	l.Group(5).Message(packet.FamilyIPv6, packet.ProtoTCP, ReasonInvalidNew, 1, 0, false)
	l.Group(5).Drop(teardown, 1, 0, false)
	want := []GroupCounts{{Group: 5, Messages: []MessageCount{{packet.FamilyIPv6, packet.ProtoTCP, ReasonInvalidNew, 1}}}}
	if got := l.Counts(); !reflect.DeepEqual(got, want) {
		t.Errorf("Counts() = %+v, want %+v", got, want)
	}
}

func TestKeyMasksHopFields(t *testing.T) {
	a, b := pkt(1), pkt(1)
	b[8], b[10], b[11] = 63, 0xab, 0xcd // forwarded: TTL and checksum changed
	if Key(packet.FamilyIPv4, a) != Key(packet.FamilyIPv4, b) {
		t.Error("IPv4 TTL/checksum change the key")
	}
	v6a, v6b := make([]byte, 60), make([]byte, 60)
	v6a[0], v6b[0], v6a[7], v6b[7] = 0x60, 0x60, 64, 63
	if Key(packet.FamilyIPv6, v6a) != Key(packet.FamilyIPv6, v6b) {
		t.Error("IPv6 hop limit changes the key")
	}
	if Key(packet.FamilyIPv4, pkt(1)) == Key(packet.FamilyIPv4, pkt(2)) {
		t.Error("different sequence numbers, same key")
	}
	if Key(packet.FamilyIPv4, nil) != 0 {
		t.Error("no payload must give no key")
	}
	long := make([]byte, 1500)
	copy(long, pkt(1))
	if Key(packet.FamilyIPv4, long) != Key(packet.FamilyIPv4, long[:KeyBytes]) {
		t.Error("bytes past KeyBytes change the key")
	}
}

// DropPacket on the reasons group skips the key while no reason is live, and
// joins exactly as Drop does once one is: before any message, after the
// newest message went stale, and for a packet with a message.
func TestDropPacketSharedGroup(t *testing.T) {
	l := newLog(t, []classify.Group{0}, time.Second)
	a, b := pkt(1), pkt(2)
	l.Group(0).DropPacket(teardown, packet.FamilyIPv4, a, 1, true) // no reason kept yet
	if l.live() {
		t.Fatal("live before any message")
	}
	l.Group(0).Message(packet.FamilyIPv4, packet.ProtoTCP, ReasonInvalidNew, Key(packet.FamilyIPv4, a), 2, true)
	l.Group(0).DropPacket(teardown, packet.FamilyIPv4, a, 3, true) // joined
	l.Group(0).DropPacket(teardown, packet.FamilyIPv4, b, 4, true) // live, but no message for b
	l.Group(0).Message(packet.FamilyIPv4, packet.ProtoTCP, ReasonInvalidRST, Key(packet.FamilyIPv4, b), 5, true)
	l.clock.Store(int64(2*time.Second + 2*time.Millisecond)) // the message is now older than two windows
	if l.live() {
		t.Fatal("live after the newest reason went stale")
	}
	l.Group(0).DropPacket(teardown, packet.FamilyIPv4, b, 6, true) // stale: none, as Drop would count it
	if got := drops(l, 0, teardown, ReasonInvalidNew); got != 1 {
		t.Errorf("invalid_new drops = %d, want 1", got)
	}
	if got := drops(l, 0, teardown, ReasonNone); got != 3 {
		t.Errorf("none drops = %d, want 3", got)
	}
	if got := drops(l, 0, teardown, ReasonInvalidRST); got != 0 {
		t.Errorf("invalid_rst drops = %d, want 0 (stale)", got)
	}
	// A fresh message makes the table live again.
	l.Group(0).Message(packet.FamilyIPv4, packet.ProtoTCP, ReasonInvalidRST, Key(packet.FamilyIPv4, b), 7, true)
	l.Group(0).DropPacket(teardown, packet.FamilyIPv4, b, 8, true)
	if got := drops(l, 0, teardown, ReasonInvalidRST); got != 1 {
		t.Errorf("invalid_rst drops = %d, want 1", got)
	}
}

// Drops on the reasons group with nothing to join allocate nothing and
// never touch the sequence number other groups wait on when there are none.
func TestDropPacketAllocatesNothing(t *testing.T) {
	l := newLog(t, []classify.Group{0}, time.Second)
	a := pkt(1)
	if n := testing.AllocsPerRun(100, func() { l.Group(0).DropPacket(teardown, packet.FamilyIPv4, a, 1, true) }); n != 0 {
		t.Errorf("%v allocations per drop, want 0", n)
	}
	if v := l.lastSeq.Load(); v != 0 {
		t.Errorf("lastSeq = %#x with no other group, want untouched", v)
	}
}

func TestKeyDistinguishesEveryWord(t *testing.T) {
	base := make([]byte, KeyBytes)
	base[0], base[9] = 0x45, 6
	k0 := Key(packet.FamilyIPv4, base)
	for i := 0; i < KeyBytes; i++ {
		if i == 8 || i == 10 || i == 11 {
			continue // masked hop fields
		}
		b := append([]byte(nil), base...)
		b[i] ^= 0x01
		if Key(packet.FamilyIPv4, b) == k0 {
			t.Errorf("byte %d does not change the key", i)
		}
	}
	for n := 1; n < KeyBytes; n++ {
		if Key(packet.FamilyIPv4, base[:n]) == Key(packet.FamilyIPv4, base[:n+1]) {
			t.Errorf("lengths %d and %d (zero padded) give one key", n, n+1)
		}
	}
}

// TestResolverSleepsWhenNothingWaits: drops of the reasons group never wait,
// so the resolver never wakes for them; a drop of another group wakes it,
// is settled within its window, and then the resolver sleeps again.
func TestResolverSleepsWhenNothingWaits(t *testing.T) {
	l := newLog(t, []classify.Group{0, 7}, 50*time.Millisecond)
	l.Start()
	defer l.Stop()
	for i := range 1000 {
		l.Group(0).Drop(teardown, Key(packet.FamilyIPv4, pkt(byte(i))), uint32(i), true)
	}
	time.Sleep(100 * time.Millisecond)
	if n := l.runs.Load(); n != 0 {
		t.Fatalf("the resolver ran %d times while no drop waited", n)
	}
	l.Group(7).Drop(teardown, Key(packet.FamilyIPv4, pkt(1)), 0, false)
	e2e.WaitFor(t, 2*time.Second, "the waiting drop to be settled", func() bool { return drops(l, 7, teardown, ReasonNone) == 1 })
	time.Sleep(50 * time.Millisecond)
	settled := l.runs.Load()
	time.Sleep(200 * time.Millisecond)
	if n := l.runs.Load(); n == 0 || n != settled {
		t.Errorf("the resolver ran %d times, then %d more once nothing waited; want some, then none", settled, n-settled)
	}
}

// TestWaitingNeverWraps reads the waiting count while one goroutine queues
// drops and another settles them: read in the wrong order (tail, then a
// head that has moved past it) the difference wraps to ~1.8e19.
func TestWaitingNeverWraps(t *testing.T) {
	l := newLog(t, []classify.Group{0, 5}, time.Nanosecond)
	gl := l.Group(5)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { // the reader of group 5, and the resolver, taking turns
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			gl.Drop(teardown, uint64(i)|1, 0, false)
			if i%4 == 0 {
				l.resolve()
			}
		}
	}()
	deadline := time.Now().Add(300 * time.Millisecond)
	for n := 0; time.Now().Before(deadline); n++ {
		if w := gl.waiting(); w > pendingSlots {
			close(stop)
			<-done
			t.Fatalf("waiting = %d after %d reads, want at most %d", w, n, pendingSlots)
		}
	}
	close(stop)
	<-done
}
