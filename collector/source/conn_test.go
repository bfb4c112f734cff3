package source

import (
	"context"
	"encoding/binary"
	"errors"
	"log/slog"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

var errBroken = errors.New("broken socket")

// fakeConn is a conn over byte slices: recv hands out ready, then fails with
// failWith (if set), or waits until the read deadline passes; recvQueued
// hands out queued. send answers the i-th request with an acknowledgement
// carrying refuse[i] (0, or past its end: accepted).
type fakeConn struct {
	mu       sync.Mutex
	ready    [][]byte
	queued   [][]byte
	failWith error
	expired  chan struct{}
	closed   bool
	refuse   []syscall.Errno
	sent     []netlink.Message
	deadline time.Time // the read deadline last set
}

func newFakeConn(ready, queued [][]byte, failWith error) *fakeConn {
	return &fakeConn{ready: ready, queued: queued, failWith: failWith, expired: make(chan struct{})}
}

func fill(b, d []byte) int { copy(b, d); return len(d) }

func (f *fakeConn) recv(b []byte) (int, error) {
	f.mu.Lock()
	if len(f.ready) > 0 {
		d := f.ready[0]
		f.ready = f.ready[1:]
		f.mu.Unlock()
		return fill(b, d), nil
	}
	fail := f.failWith
	f.mu.Unlock()
	if fail != nil {
		return 0, fail
	}
	<-f.expired
	return 0, errors.New("i/o timeout")
}

func (f *fakeConn) recvQueued(b []byte) (int, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.queued) == 0 {
		return 0, false, nil
	}
	d := f.queued[0]
	f.queued = f.queued[1:]
	return fill(b, d), true, nil
}

func (f *fakeConn) setReadDeadline(t time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.deadline = t
	if !t.IsZero() && t.Before(time.Now()) {
		select {
		case <-f.expired:
		default:
			close(f.expired)
		}
	}
	return nil
}

func (f *fakeConn) close() error { f.closed = true; return nil }

func (f *fakeConn) send(m netlink.Message) (netlink.Message, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	m.Header.Sequence = uint32(len(f.sent) + 1)
	var code int32
	if i := len(f.sent); i < len(f.refuse) {
		code = -int32(f.refuse[i])
	}
	f.sent = append(f.sent, m)
	f.ready = append(f.ready, nlAck(m.Header.Sequence, code))
	return m, nil
}

// nlAck is the kernel's NLMSG_ERROR answer to request seq: code 0 accepts
// it, -errno refuses it.
func nlAck(seq uint32, code int32) []byte {
	b := binary.NativeEndian.AppendUint32(nil, 16+4+16)
	b = binary.NativeEndian.AppendUint16(b, unix.NLMSG_ERROR)
	b = binary.NativeEndian.AppendUint16(b, 0)
	b = binary.NativeEndian.AppendUint32(b, seq)
	b = binary.NativeEndian.AppendUint32(b, 0)
	b = binary.NativeEndian.AppendUint32(b, uint32(code))
	return append(b, make([]byte, 16)...) // the request's header, not read
}

// nlPacket is one netlink NFULNL_MSG_PACKET message carrying an NFLOG record
// (nfgenmsg + TLVs in host order).
func nlPacket(group uint16, seq uint32) []byte {
	rec := nflogRecord(binary.NativeEndian, 2, group, "p", []byte{0x45, 0, 0, 20}, &seq)
	b := binary.NativeEndian.AppendUint32(nil, uint32(16+len(rec)))
	b = binary.NativeEndian.AppendUint16(b, nfnlSubsysULOG<<8|nfulnlMsgPacket)
	b = append(b, make([]byte, 10)...)
	return append(b, rec...)
}

func datagram(msgs ...[]byte) []byte {
	var b []byte
	for _, m := range msgs {
		b = append(b, m...)
		for len(b)%4 != 0 {
			b = append(b, 0)
		}
	}
	return b
}

// TestLiveRunDrainsBeforeRebind: after a receive error the reader takes what
// the old socket still holds before it closes it, counts the re-bind, and
// reads the new binding from sequence number 0 without a false gap.
func TestLiveRunDrainsBeforeRebind(t *testing.T) {
	first := newFakeConn(
		[][]byte{datagram(nlPacket(3, 0), nlPacket(3, 1))},
		[][]byte{datagram(nlPacket(3, 2)), datagram(nlPacket(3, 3), nlPacket(3, 4))},
		errBroken)
	second := newFakeConn([][]byte{datagram(nlPacket(3, 0))}, nil, nil)
	conns := []*fakeConn{first, second}
	l := NewLive(3, Config{}, slog.New(slog.DiscardHandler))
	rec := &syncRecorder{r: newRecorder()}
	dials := 0
	l.dial = func(Handler) (conn, error) {
		c := conns[dials]
		dials++
		return c, nil
	}
	if err := l.Open(rec); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- l.Run(ctx, rec) }()
	deadline := time.Now().Add(5 * time.Second)
	for n, _, _, _ := rec.snapshot(); n < 6 && time.Now().Before(deadline); n, _, _, _ = rec.snapshot() {
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	r := rec.r
	if len(r.packets) != 6 || r.errors[ReasonOther] != 1 || r.rebinds[3] != 1 || r.lost[3] != 0 || dials != 2 || !first.closed || !second.closed {
		t.Errorf("packets %d, other errors %d, rebinds %d, lost %d, dials %d, closed %v %v; want 6, 1, 1, 0, 2, true true",
			len(r.packets), r.errors[ReasonOther], r.rebinds[3], r.lost[3], dials, first.closed, second.closed)
	}
}

// refCount walks a datagram independently of the reader: the NFLOG packet
// messages in it, those too short for their nfgenmsg, and whether a header
// was malformed.
func refCount(b []byte) (packets, short int, bad bool) {
	for len(b) >= 16 {
		l := int(binary.NativeEndian.Uint32(b))
		if l < 16 || l > len(b) {
			return packets, short, true
		}
		if binary.NativeEndian.Uint16(b[4:]) == nfnlSubsysULOG<<8|nfulnlMsgPacket {
			if l-16 < 4 {
				short++
			} else {
				packets++
			}
		}
		b = b[min(len(b), (l+3)&^3):]
	}
	return packets, short, false
}

// FuzzReceive drives the receive and dispatch loop over a fake connection
// with arbitrary datagrams: nothing panics, and every message is either
// handed to the handler or counted as a bad message.
func FuzzReceive(f *testing.F) {
	f.Add(datagram(nlPacket(1, 0), nlPacket(1, 1)), datagram(nlPacket(1, 2)))
	f.Add(datagram(nlPacket(1, 0))[:30], []byte{})
	f.Fuzz(func(t *testing.T, a, b []byte) {
		l := NewLive(1, Config{}, slog.New(slog.DiscardHandler))
		l.buf = make([]byte, 4096) // small, so that long inputs are truncated
		l.c = newFakeConn([][]byte{a, b}, nil, errBroken)
		rec := newRecorder()
		var wantPackets, wantBad int
		for _, d := range [][]byte{a, b} {
			if err := l.receive(rec); err != nil {
				t.Fatalf("receive: %v", err)
			}
			p, short, bad := refCount(d[:min(len(d), len(l.buf))])
			wantPackets += p
			wantBad += short
			if bad {
				wantBad++
			}
		}
		if err := l.receive(rec); !errors.Is(err, errBroken) {
			t.Fatalf("receive after the input: %v", err)
		}
		// A packet whose attributes are malformed is both delivered and counted.
		if len(rec.packets) != wantPackets || rec.errors[ReasonMessage] < wantBad || rec.errors[ReasonMessage] > wantBad+wantPackets {
			t.Fatalf("packets %d, bad messages %d; want %d and %d to %d", len(rec.packets), rec.errors[ReasonMessage], wantPackets, wantBad, wantBad+wantPackets)
		}
		if rec.flushes[1] != 2 {
			t.Fatalf("%d flushes for 2 datagrams", rec.flushes[1])
		}
	})
}

// TestConfigureLeavesNoReadDeadline: each configuration request waits for
// its acknowledgement under a read deadline, which must be gone once the
// request is answered, refused included. A deadline left behind (as a
// refused conntrack-attributes probe once left it) fails the receive loop
// 5 s after binding: the group is closed and bound again mid-flood, and what
// the rules log meanwhile is lost without a sequence gap to count it.
func TestConfigureLeavesNoReadDeadline(t *testing.T) {
	for _, tc := range []struct {
		name      string
		refuse    []syscall.Errno // answers to bind, probe, ...
		requests  int
		supported bool
	}{
		{"probe accepted", nil, 3, true}, // bind, probe, conntrack attributes off again
		{"probe refused", []syscall.Errno{0, unix.EOPNOTSUPP}, 2, false},
		{"module loaded, then refused", []syscall.Errno{0, unix.EAGAIN, unix.EOPNOTSUPP}, 3, false},
		{"turning them off refused", []syscall.Errno{0, 0, unix.EINVAL}, 3, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var reported []bool
			cfg := Config{ProbeConntrackAttrs: &ConntrackAttrsProbe{Group: 4, Report: func(ok bool) { reported = append(reported, ok) }}}
			l := NewLive(4, cfg, slog.New(slog.DiscardHandler))
			c := newFakeConn(nil, nil, nil)
			c.refuse = tc.refuse
			rec := newRecorder()
			if err := l.configure(c, rec); err != nil {
				t.Fatalf("configure: %v", err)
			}
			if len(c.sent) != tc.requests || len(reported) != 1 || reported[0] != tc.supported {
				t.Errorf("%d requests, reported %v; want %d, [%v]", len(c.sent), reported, tc.requests, tc.supported)
			}
			if !c.deadline.IsZero() {
				t.Errorf("configure left the read deadline %s set: the receive loop would fail then and re-bind the group", c.deadline.Format(time.RFC3339Nano))
			}
		})
	}
}
