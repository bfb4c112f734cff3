package nlmsg

import (
	"encoding/binary"
	"testing"

	"github.com/mdlayher/netlink"
)

func attr(b []byte, typ uint16, v []byte) []byte {
	b = binary.NativeEndian.AppendUint16(b, uint16(4+len(v)))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = append(b, v...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func msg(b []byte, typ uint16, seq uint32, data []byte) []byte {
	b = binary.NativeEndian.AppendUint32(b, uint32(HeaderLen+len(data)))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = binary.NativeEndian.AppendUint16(b, 0)
	b = binary.NativeEndian.AppendUint32(b, seq)
	b = binary.NativeEndian.AppendUint32(b, 0)
	b = append(b, data...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func TestMessages(t *testing.T) {
	for _, tc := range []struct {
		name  string
		b     []byte
		types []uint16
		bad   bool
	}{
		{"empty", nil, nil, false},
		{"two", msg(msg(nil, 1, 7, []byte{1, 2, 3}), 2, 8, nil), []uint16{1, 2}, false},
		{"short trailer ignored", append(msg(nil, 1, 7, nil), 1, 2, 3), []uint16{1}, false},
		{"length past the end", append(msg(nil, 1, 7, nil), msg(nil, 2, 8, []byte{1})[:HeaderLen]...), []uint16{1}, true},
		{"length below the header", binary.NativeEndian.AppendUint32(make([]byte, 0, 16), 3), nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.b
			if tc.name == "length below the header" {
				b = append(b, make([]byte, 12)...)
				tc.bad = true
			}
			m := NewMessages(b)
			var got []uint16
			for m.Next() {
				got = append(got, m.Type)
			}
			if len(got) != len(tc.types) || m.Bad != tc.bad {
				t.Fatalf("types %v bad %v, want %v %v", got, m.Bad, tc.types, tc.bad)
			}
			for i := range got {
				if got[i] != tc.types[i] {
					t.Fatalf("types %v, want %v", got, tc.types)
				}
			}
		})
	}
}

func TestPrefix(t *testing.T) {
	// Messages of 20, 24 (21 bytes padded) and 16 bytes.
	b := msg(nil, 1, 1, []byte{1, 2, 3, 4})
	b = msg(b, 2, 2, []byte{1, 2, 3, 4, 5})
	b = msg(b, 3, 3, nil)
	if len(b) != 60 {
		t.Fatalf("test datagram of %d bytes, want 60", len(b))
	}
	for _, c := range []struct{ max, want int }{
		{0, 0}, {19, 0}, {20, 20}, {43, 20}, {44, 44}, {59, 44}, {60, 60}, {1000, 60},
	} {
		if got := len(Prefix(b, c.max)); got != c.want {
			t.Errorf("Prefix(60 bytes, %d): %d bytes, want %d", c.max, got, c.want)
		}
	}
	if got := Prefix(b[:50], 1000); len(got) != 44 {
		t.Errorf("Prefix of a datagram cut inside its third message: %d bytes, want 44", len(got))
	}
}

func TestAttrs(t *testing.T) {
	b := attr(attr(nil, 0x8000|3, []byte{1, 2, 3, 4, 5}), 10, []byte("x\x00"))
	a := NewAttrs(b)
	if !a.Next() || a.Type != 3 || len(a.Data) != 5 || a.Off != 0 {
		t.Fatalf("first: type %d data %v off %d", a.Type, a.Data, a.Off)
	}
	if !a.Next() || a.Type != 10 || string(a.Data) != "x\x00" || a.Off != 12 {
		t.Fatalf("second: type %d data %q off %d", a.Type, a.Data, a.Off)
	}
	if a.Next() || a.Bad || a.Trailing {
		t.Fatalf("end: bad %v trailing %v", a.Bad, a.Trailing)
	}

	a = NewAttrs(append(b[:len(b):len(b)], 1, 2))
	for a.Next() {
	}
	if a.Bad || !a.Trailing {
		t.Errorf("2 trailing bytes: bad %v trailing %v", a.Bad, a.Trailing)
	}
	a = NewAttrs(b[:len(b)-4])
	for a.Next() {
	}
	if !a.Bad {
		t.Error("a cut attribute is not Bad")
	}

	// The same attributes written by a host of the other byte order.
	sw := append([]byte(nil), b...)
	for _, off := range []int{0, 12} {
		sw[off], sw[off+1], sw[off+2], sw[off+3] = sw[off+1], sw[off], sw[off+3], sw[off+2]
	}
	a = Attrs{b: sw, Swapped: true}
	n := 0
	for a.Next() {
		n++
	}
	if n != 2 || a.Bad {
		t.Errorf("swapped: %d attributes, bad %v", n, a.Bad)
	}
}

func benchAttrs() []byte {
	var b []byte
	b = attr(b, 1, []byte{8, 0, 1, 0})
	b = attr(b, 2, []byte{0, 0, 0, 0})
	b = attr(b, 4, []byte{0, 0, 0, 1})
	b = attr(b, 3, make([]byte, 16))
	b = attr(b, 10, []byte("nfdrop-drop\x00"))
	b = attr(b, 11, []byte{0, 0, 0, 0})
	b = attr(b, 12, []byte{0, 0, 0, 9})
	b = attr(b, 9, make([]byte, 60))
	return b
}

func BenchmarkAttrs(b *testing.B) {
	buf := benchAttrs()
	b.ReportAllocs()
	var sum int
	for b.Loop() {
		a := NewAttrs(buf)
		for a.Next() {
			sum += len(a.Data)
		}
	}
	_ = sum
}

func BenchmarkAttributeDecoder(b *testing.B) {
	buf := benchAttrs()
	b.ReportAllocs()
	var sum int
	for b.Loop() {
		ad, err := netlink.NewAttributeDecoder(buf)
		if err != nil {
			b.Fatal(err)
		}
		for ad.Next() {
			sum += len(ad.Bytes())
		}
	}
	_ = sum
}

func FuzzAttrs(f *testing.F) {
	f.Add(benchAttrs(), false)
	f.Fuzz(func(t *testing.T, b []byte, swapped bool) {
		a := Attrs{b: b, Swapped: swapped}
		for a.Next() {
			if a.Off < 0 || a.Off+4+len(a.Data) > len(b) {
				t.Fatalf("attribute at %d of %d bytes outside %d", a.Off, len(a.Data), len(b))
			}
		}
	})
}
