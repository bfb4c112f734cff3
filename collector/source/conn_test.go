package source

import (
	"context"
	"encoding/binary"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"
)

var errBroken = errors.New("broken socket")

// fakeConn is a conn over byte slices: recv hands out ready, then fails with
// failWith (if set), or waits until the read deadline passes; recvQueued
// hands out queued.
type fakeConn struct {
	mu       sync.Mutex
	ready    [][]byte
	queued   [][]byte
	failWith error
	expired  chan struct{}
	closed   bool
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
