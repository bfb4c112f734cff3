package conntrack

import (
	"testing"
	"time"

	"github.com/mdlayher/netlink"
	"github.com/ti-mo/conntrack"
)

func TestDecodeEvent(t *testing.T) {
	stop := time.Date(2026, 11, 25, 12, 0, 0, 123456789, time.UTC)
	for _, tc := range []struct {
		name      string
		msg       netlink.Message
		ok        bool
		want      destroyEvent
		libraryOK bool // ti-mo/conntrack decodes it too (and agrees)
	}{
		{
			name:      "tcp ipv4 destroy with timestamp",
			msg:       destroyMessage(t, 6, "10.99.0.2", 40000, "10.99.0.1", 443, stop),
			ok:        true,
			want:      destroyEvent{destroy: true, proto: 6, tuple: tup(t, "10.99.0.2", 40000, "10.99.0.1", 443), stop: stop.UnixNano()},
			libraryOK: true,
		},
		{
			name:      "tcp ipv6 destroy without timestamp",
			msg:       destroyMessage(t, 6, "fd99::2", 40000, "fd99::1", 80, time.Time{}),
			ok:        true,
			want:      destroyEvent{destroy: true, proto: 6, tuple: tup(t, "fd99::2", 40000, "fd99::1", 80)},
			libraryOK: true,
		},
		{
			name:      "udp destroy",
			msg:       destroyMessage(t, 17, "10.99.0.2", 5353, "10.99.0.1", 53, stop),
			ok:        true,
			want:      destroyEvent{destroy: true, proto: 17, tuple: tup(t, "10.99.0.2", 5353, "10.99.0.1", 53), stop: stop.UnixNano()},
			libraryOK: true,
		},
		{
			name:      "new event is not a destroy",
			msg:       eventMessage(t, 0, false, 6, "10.99.0.2", 40000, "10.99.0.1", 443, time.Time{}),
			ok:        true,
			want:      destroyEvent{proto: 6, tuple: tup(t, "10.99.0.2", 40000, "10.99.0.1", 443)},
			libraryOK: true,
		},
		{
			// The library rejects the whole event for one unknown
			// CTA_PROTOINFO_TCP child; the tracker must not lose it.
			name: "attributes of a newer kernel are skipped",
			msg:  eventMessage(t, 2, true, 6, "10.99.0.2", 40000, "10.99.0.1", 443, stop),
			ok:   true,
			want: destroyEvent{destroy: true, proto: 6, tuple: tup(t, "10.99.0.2", 40000, "10.99.0.1", 443), stop: stop.UnixNano()},
		},
		{
			name: "truncated attribute",
			msg: func() netlink.Message {
				m := destroyMessage(t, 6, "10.99.0.2", 40000, "10.99.0.1", 443, stop)
				m.Data = append(m.Data, 8, 0, 99, 0) // claims 8 bytes, has 4
				return m
			}(),
		},
		// The library accepts an empty flow; without a tuple there is
		// nothing to remember.
		{name: "no tuple", msg: netlink.Message{Header: netlink.Header{Type: 1<<8 | 2}, Data: []byte{2, 0, 0, 0}}, libraryOK: true},
		{name: "no nfgenmsg", msg: netlink.Message{Header: netlink.Header{Type: 1<<8 | 2}, Data: []byte{2, 0}}},
		{name: "expectation subsystem", msg: netlink.Message{Header: netlink.Header{Type: 2<<8 | 2}, Data: []byte{2, 0, 0, 0}}},
		{name: "get reply is not an event", msg: netlink.Message{Header: netlink.Header{Type: 1<<8 | 1}, Data: []byte{2, 0, 0, 0}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got destroyEvent
			ok := decodeEvent(uint16(tc.msg.Header.Type), tc.msg.Data, &got)
			if ok != tc.ok {
				t.Fatalf("ok %v, want %v", ok, tc.ok)
			}
			if ok && got != tc.want {
				t.Errorf("decoded %+v\nwant    %+v", got, tc.want)
			}
			var lib conntrack.Event
			err := lib.Unmarshal(tc.msg)
			if libOK := err == nil && lib.Flow != nil; libOK != tc.libraryOK {
				t.Fatalf("ti-mo/conntrack decodes it: %v (%v), want %v", libOK, err, tc.libraryOK)
			}
			if !tc.libraryOK || !ok {
				return
			}
			o := lib.Flow.TupleOrig
			libTuple, _ := tupleFromAddrs(o.IP.SourceAddress, o.IP.DestinationAddress, o.Proto.SourcePort, o.Proto.DestinationPort)
			var libStop int64
			if !lib.Flow.Timestamp.Stop.IsZero() {
				libStop = lib.Flow.Timestamp.Stop.UnixNano()
			}
			if libTuple != got.tuple || o.Proto.Protocol != got.proto || libStop != got.stop || (lib.Type == conntrack.EventDestroy) != got.destroy {
				t.Errorf("ti-mo/conntrack reads %v proto %d stop %d type %v; ours %+v", libTuple, o.Proto.Protocol, libStop, lib.Type, got)
			}
		})
	}
}

func TestDecodeEventDoesNotAllocate(t *testing.T) {
	m := destroyMessage(t, 6, "fd99::2", 40000, "fd99::1", 443, time.Now())
	var ev destroyEvent
	if a := testing.AllocsPerRun(100, func() { decodeEvent(uint16(m.Header.Type), m.Data, &ev) }); a != 0 {
		t.Errorf("decodeEvent allocates %v times, want 0", a)
	}
}

// FuzzDecodeEvent: no input panics the decoder.
func FuzzDecodeEvent(f *testing.F) {
	f.Add(uint16(1<<8|2), destroyMessage(f, 6, "10.99.0.2", 40000, "10.99.0.1", 443, time.Now()).Data)
	f.Add(uint16(1<<8|2), destroyMessage(f, 6, "fd99::2", 40000, "fd99::1", 443, time.Time{}).Data)
	f.Fuzz(func(t *testing.T, typ uint16, data []byte) {
		var ev destroyEvent
		m := netlink.Message{Header: netlink.Header{Type: netlink.HeaderType(typ)}, Data: data}
		if decodeEvent(uint16(m.Header.Type), m.Data, &ev) && ev.tuple.Family == 0 {
			t.Fatal("decoded an event without an address family")
		}
	})
}
