package ebpf

import (
	"encoding/binary"
	"reflect"
	"testing"
	"unsafe"

	"github.com/nfdrop/nfdrop_exporter/collector/packet"
)

// TestRecordLayout holds the decoder's offsets to struct drop_record as clang
// laid it out (bpf2go declares it from the object's BTF).
func TestRecordLayout(t *testing.T) {
	var r kfreeSkbDropRecord
	for _, f := range []struct {
		name      string
		got, want uintptr
	}{
		{"size", unsafe.Sizeof(r), recordSize},
		{"boot_ns", unsafe.Offsetof(r.BootNs), offBootNs},
		{"ifindex", unsafe.Offsetof(r.Ifindex), offIfindex},
		{"skb_len", unsafe.Offsetof(r.SkbLen), offSkbLen},
		{"mark", unsafe.Offsetof(r.Mark), offMark},
		{"copied", unsafe.Offsetof(r.Copied), offCopied},
		{"family", unsafe.Offsetof(r.Family), offFamily},
		{"ct", unsafe.Offsetof(r.Ct), offCt},
		{"payload", unsafe.Offsetof(r.Payload), offPayload},
		{"payload size", unsafe.Sizeof(r.Payload), PayloadMax},
	} {
		if f.got != f.want {
			t.Errorf("struct drop_record %s: %d in the object, %d in the decoder", f.name, f.got, f.want)
		}
	}
}

// rawRecord builds a sample as the program writes it.
func rawRecord(boot uint64, ifindex, skbLen, mark uint32, family, ct uint8, payload []byte) []byte {
	b := make([]byte, recordSize)
	binary.NativeEndian.PutUint64(b[offBootNs:], boot)
	binary.NativeEndian.PutUint32(b[offIfindex:], ifindex)
	binary.NativeEndian.PutUint32(b[offSkbLen:], skbLen)
	binary.NativeEndian.PutUint32(b[offMark:], mark)
	binary.NativeEndian.PutUint16(b[offCopied:], uint16(len(payload)))
	b[offFamily] = family
	b[offCt] = ct
	copy(b[offPayload:], payload)
	return b
}

// A SYN from 10.99.0.2:40000 to 10.99.0.1:22, as the kernel copies it.
var synV4 = []byte{
	0x45, 0, 0, 40, 0x12, 0x34, 0x40, 0, 64, 6, 0, 0, 10, 99, 0, 2, 10, 99, 0, 1,
	0x9c, 0x40, 0, 22, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xfa, 0xf0, 0, 0, 0, 0,
}

func TestDecodeRecord(t *testing.T) {
	full := make([]byte, PayloadMax)
	copy(full, synV4)
	for _, tc := range []struct {
		name string
		in   []byte
		ok   bool
		want Record
	}{
		{"ipv4 syn, new conntrack entry", rawRecord(5e9, 3, 40, 7, 4, 0x80|2, synV4), true,
			Record{Payload: synV4, Length: 40, Family: packet.FamilyIPv4, Ifindex: 3, HasConntrack: true, CtInfo: CtNew, Mark: 7, KernelTimeNs: 5e9}},
		{"ipv6, untracked", rawRecord(1, 0, 1500, 0, 6, 7, full), true,
			Record{Payload: full, Length: 1500, Family: packet.FamilyIPv6, CtInfo: CtUntracked, KernelTimeNs: 1}},
		{"nothing copied, no conntrack", rawRecord(2, 9, 0, 0, 4, 0, nil), true,
			Record{Payload: []byte{}, Family: packet.FamilyIPv4, Ifindex: 9, KernelTimeNs: 2}},
		{"family 0", rawRecord(1, 1, 1, 0, 0, 0, synV4), false, Record{}},
		{"family 10 (AF_INET6 is not what the program writes)", rawRecord(1, 1, 1, 0, 10, 0, synV4), false, Record{}},
		{"short sample", rawRecord(1, 1, 1, 0, 4, 0, synV4)[:recordSize-1], false, Record{}},
		{"long sample", append(rawRecord(1, 1, 1, 0, 4, 0, synV4), 0), false, Record{}},
		{"empty sample", nil, false, Record{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var r Record
			if ok := decodeRecord(tc.in, &r); ok != tc.ok {
				t.Fatalf("decodeRecord = %v, want %v", ok, tc.ok)
			}
			if !tc.ok {
				return
			}
			if string(r.Payload) != string(tc.want.Payload) || len(r.Payload) != len(tc.want.Payload) {
				t.Errorf("payload %x, want %x", r.Payload, tc.want.Payload)
			}
			if cap(r.Payload) != len(r.Payload) {
				t.Errorf("payload capacity %d reaches past the copied bytes (%d)", cap(r.Payload), len(r.Payload))
			}
			r.Payload, tc.want.Payload = nil, nil
			if !reflect.DeepEqual(r, tc.want) {
				t.Errorf("got %+v\nwant %+v", r, tc.want)
			}
		})
	}
	// A copy length over PayloadMax is not the program's.
	b := rawRecord(1, 1, 1, 0, 4, 0, synV4)
	binary.NativeEndian.PutUint16(b[offCopied:], PayloadMax+1)
	if decodeRecord(b, new(Record)) {
		t.Error("copied > PayloadMax decoded")
	}
}

// TestDecodedPayload decodes a record's payload with collector/packet, as the
// exporter will.
func TestDecodedPayload(t *testing.T) {
	var r Record
	if !decodeRecord(rawRecord(1, 2, 40, 0, 4, 0, synV4), &r) {
		t.Fatal("not decoded")
	}
	var p packet.Packet
	packet.Decode(r.Payload, r.Family, &p)
	if p.Err != packet.ErrNone || p.Proto != packet.ProtoTCP || p.SrcPort != 40000 || p.DstPort != 22 || p.TCPFlags != packet.FlagSYN {
		t.Errorf("decoded %+v", p)
	}
}

func TestAddressFamily(t *testing.T) {
	if got := (&Record{Family: packet.FamilyIPv4}).AddressFamily(); got != 2 {
		t.Errorf("IPv4: %d, want AF_INET 2", got)
	}
	if got := (&Record{Family: packet.FamilyIPv6}).AddressFamily(); got != 10 {
		t.Errorf("IPv6: %d, want AF_INET6 10", got)
	}
}

func TestCtInfoString(t *testing.T) {
	for c, want := range map[CtInfo]string{CtEstablished: "established", CtRelated: "related", CtNew: "new",
		CtEstablishedReply: "established_reply", CtRelatedReply: "related_reply", CtUntracked: "untracked", 5: "ctinfo_5"} {
		if got := c.String(); got != want {
			t.Errorf("CtInfo(%d) = %q, want %q", c, got, want)
		}
	}
}

// TestDecodeAllocs: the per-record path (decode and the clock conversion)
// allocates nothing.
func TestDecodeAllocs(t *testing.T) {
	in := rawRecord(5e9, 3, 40, 0, 4, 0x82, synV4)
	c := newWallClock()
	var r Record
	if n := testing.AllocsPerRun(1000, func() {
		if !decodeRecord(in, &r) {
			t.Fatal("not decoded")
		}
		r.TimestampNs = c.wall(r.KernelTimeNs)
	}); n != 0 {
		t.Errorf("%v allocations per record, want 0", n)
	}
}

func BenchmarkDecodeRecord(b *testing.B) {
	in := rawRecord(5e9, 3, 40, 0, 4, 0x82, synV4)
	c := newWallClock()
	var r Record
	b.ReportAllocs()
	for b.Loop() {
		decodeRecord(in, &r)
		r.TimestampNs = c.wall(r.KernelTimeNs)
	}
}

func FuzzDecodeRecord(f *testing.F) {
	full := make([]byte, PayloadMax)
	copy(full, synV4)
	f.Add(rawRecord(5e9, 3, 40, 7, 4, 0x82, synV4))
	f.Add(rawRecord(1, 0, 1500, 0, 6, 7, full))
	f.Add(rawRecord(2, 9, 0, 0, 4, 0, nil))
	f.Add([]byte{})
	f.Add(make([]byte, recordSize))
	f.Fuzz(func(t *testing.T, b []byte) {
		var r Record
		if !decodeRecord(b, &r) {
			return
		}
		if len(b) != recordSize {
			t.Fatalf("decoded a %d-byte sample", len(b))
		}
		n := int(binary.NativeEndian.Uint16(b[offCopied:]))
		if len(r.Payload) != n || n > PayloadMax || cap(r.Payload) != n {
			t.Fatalf("payload len %d cap %d for copied %d", len(r.Payload), cap(r.Payload), n)
		}
		if n > 0 && &r.Payload[0] != &b[offPayload] {
			t.Fatal("payload does not alias the sample")
		}
		if r.Family != packet.FamilyIPv4 && r.Family != packet.FamilyIPv6 {
			t.Fatalf("family %d", r.Family)
		}
		if r.CtInfo > 7 || r.HasConntrack != (b[offCt]&0x80 != 0) {
			t.Fatalf("ct %d/%v from %#x", r.CtInfo, r.HasConntrack, b[offCt])
		}
		// What the exporter does next must hold for any record.
		var p packet.Packet
		packet.Decode(r.Payload, r.Family, &p)
	})
}
