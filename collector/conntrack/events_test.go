package conntrack

import (
	"testing"
	"time"

	"github.com/mdlayher/netlink"
)

func TestHandleMessage(t *testing.T) {
	stop := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	arrival := stop.Add(3 * time.Second)
	for _, tc := range []struct {
		name         string
		msg          func(t *testing.T) netlink.Message
		destroys     uint64
		undecodable  uint64
		wantEnded    time.Time
		wantRemember int
	}{
		{
			name: "tcp destroy with kernel timestamp",
			msg: func(t *testing.T) netlink.Message {
				return destroyMessage(t, 6, "10.99.0.2", 40000, "10.99.0.1", 443, stop)
			},
			destroys: 1, wantEnded: stop, wantRemember: 1,
		},
		{
			name: "tcp destroy without timestamp (nf_conntrack_timestamp=0): arrival time",
			msg: func(t *testing.T) netlink.Message {
				return destroyMessage(t, 6, "fd99::2", 40000, "fd99::1", 443, time.Time{})
			},
			destroys: 1, wantEnded: arrival, wantRemember: 1,
		},
		{
			name: "udp destroy is counted, not remembered",
			msg: func(t *testing.T) netlink.Message {
				return destroyMessage(t, 17, "10.99.0.2", 5353, "10.99.0.1", 53, stop)
			},
			destroys: 1,
		},
		{
			name: "garbage is undecodable",
			msg: func(t *testing.T) netlink.Message {
				return netlink.Message{Header: netlink.Header{Type: netlink.HeaderType(1<<8 | 2)}, Data: []byte{2, 0, 0, 0, 0xff, 0xff, 1}}
			},
			undecodable: 1,
		},
		{
			name: "not a conntrack message",
			msg: func(t *testing.T) netlink.Message {
				return netlink.Message{Header: netlink.Header{Type: netlink.HeaderType(4<<8 | 0)}, Data: []byte{2, 0, 0, 0}}
			},
			undecodable: 1,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr, err := New(testConfig(), nopLogger())
			if err != nil {
				t.Fatal(err)
			}
			clk := &fakeClock{arrival}
			tr.now = clk.now
			m := tc.msg(t)
			tr.handleMessage(uint16(m.Header.Type), m.Data)
			if got := tr.destroys.Load(); got != tc.destroys {
				t.Errorf("destroys %d, want %d", got, tc.destroys)
			}
			if got := tr.undecodable.Load(); got != tc.undecodable {
				t.Errorf("undecodable %d, want %d", got, tc.undecodable)
			}
			if got := tr.mem.len(); got != tc.wantRemember {
				t.Fatalf("remembered %d flows, want %d", got, tc.wantRemember)
			}
			if tc.wantRemember == 0 {
				return
			}
			// Whichever direction the late packet takes, it finds the flow.
			var keys []flowKey
			for _, tp := range []Tuple{tup(t, "10.99.0.1", 443, "10.99.0.2", 40000), tup(t, "fd99::1", 443, "fd99::2", 40000)} {
				keys = append(keys, tp.key())
			}
			found := false
			for _, k := range keys {
				if ended, ok := tr.mem.lookup(k); ok {
					found = true
					if ended != tc.wantEnded.UnixNano() {
						t.Errorf("ended %v, want %v", time.Unix(0, ended).UTC(), tc.wantEnded)
					}
				}
			}
			if !found {
				t.Error("flow not found by the reply-direction tuple")
			}
		})
	}
}
