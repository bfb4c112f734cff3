package conntrack

import (
	"encoding/binary"
	"errors"
	"syscall"
	"testing"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// nlDatagram lays netlink messages (type, seq, payload) out as the kernel
// sends them in one datagram.
func nlDatagram(msgs ...netlink.Message) []byte {
	var b []byte
	for _, m := range msgs {
		m.Header.Length = uint32(16 + len(m.Data))
		mb, err := m.MarshalBinary()
		if err != nil {
			panic(err)
		}
		b = append(b, mb...)
	}
	return b
}

func errAnswer(seq uint32, code int32) netlink.Message {
	data := binary.NativeEndian.AppendUint32(nil, uint32(code))
	return netlink.Message{Header: netlink.Header{Type: unix.NLMSG_ERROR, Sequence: seq}, Data: append(data, make([]byte, 16)...)}
}

func TestParseGetReply(t *testing.T) {
	entry := eventMessage(t, 0, false, 6, "10.99.0.2", 40000, "10.99.0.1", 443, time.Time{})
	entry.Header.Sequence = 7
	for _, tc := range []struct {
		name              string
		b                 []byte
		state             uint8
		found, mine       bool
		err               error
		wantErrNotErrorIs bool
	}{
		{"entry", nlDatagram(entry), tcpTimeWait, true, true, nil, false},
		{"entry after an ack of another request", nlDatagram(errAnswer(6, 0), entry), tcpTimeWait, true, true, nil, false},
		{"not found", nlDatagram(errAnswer(7, -int32(unix.ENOENT))), 0, false, true, nil, false},
		{"kernel error", nlDatagram(errAnswer(7, -int32(unix.EPERM))), 0, false, true, syscall.EPERM, false},
		{"answer to another request", nlDatagram(errAnswer(3, -int32(unix.ENOENT))), 0, false, false, nil, false},
		{"malformed", append(nlDatagram(errAnswer(3, 0)), 0xff, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), 0, false, true, errMalformedAnswer, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			state, found, err, mine := parseGetReply(tc.b, 7)
			if state != tc.state || found != tc.found || mine != tc.mine || !errors.Is(err, tc.err) {
				t.Errorf("state %d found %v err %v mine %v; want %d %v %v %v", state, found, err, mine, tc.state, tc.found, tc.err, tc.mine)
			}
		})
	}
}

// FuzzParseGetReply: no datagram panics the reply parser, and an answer
// it takes for an entry is one it says is ours.
func FuzzParseGetReply(f *testing.F) {
	entry := eventMessage(f, 0, false, 6, "10.99.0.2", 40000, "10.99.0.1", 443, time.Time{})
	entry.Header.Sequence = 7
	f.Add(nlDatagram(entry), uint32(7))
	f.Add(nlDatagram(errAnswer(7, -int32(unix.ENOENT))), uint32(7))
	f.Fuzz(func(t *testing.T, b []byte, seq uint32) {
		_, found, err, mine := parseGetReply(b, seq)
		if (found || err != nil) && !mine {
			t.Fatalf("found %v err %v for an answer that is not ours", found, err)
		}
	})
}

// oneDatagram is an Events that delivers one datagram, then fails.
type oneDatagram struct{ b []byte }

func (o *oneDatagram) Receive() ([]byte, error) {
	if o.b == nil {
		return nil, errors.New("done")
	}
	b := o.b
	o.b = nil
	return b, nil
}
func (o *oneDatagram) Drops() (uint64, error) { return 0, nil }
func (o *oneDatagram) Close() error           { return nil }

// FuzzEventDatagram drives the event receive loop with an arbitrary
// datagram: nothing panics, and every message in it is either a decoded
// event or counted undecodable.
func FuzzEventDatagram(f *testing.F) {
	d := destroyMessage(f, 6, "10.99.0.2", 40000, "10.99.0.1", 443, time.Time{})
	f.Add(nlDatagram(d, d))
	f.Add(nlDatagram(d)[:40])
	f.Fuzz(func(t *testing.T, b []byte) {
		tr, err := New(testConfig(), nopLogger())
		if err != nil {
			t.Fatal(err)
		}
		if err := tr.receive(&oneDatagram{b: b}); err == nil {
			t.Fatal("receive returned without the stream's error")
		}
		var msgs, bad uint64
		for len(b) >= 16 {
			l := int(binary.NativeEndian.Uint32(b))
			if l < 16 || l > len(b) {
				bad = 1
				break
			}
			msgs++
			b = b[min(len(b), (l+3)&^3):]
		}
		// NEW events are decoded and dropped; DESTROYs are counted.
		if got := tr.destroys.Load() + tr.undecodable.Load(); got > msgs+bad || tr.undecodable.Load() < bad {
			t.Fatalf("%d destroys + %d undecodable for %d messages (malformed tail %d)", tr.destroys.Load(), tr.undecodable.Load(), msgs, bad)
		}
	})
}
