package capture

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
)

var records = [][]byte{{1, 2, 3, 4, 5}, {6}, {}, bytes.Repeat([]byte{7}, 300)}

func pcapFile(t testing.TB, nano bool) []byte {
	t.Helper()
	var b bytes.Buffer
	w := pcapgo.NewWriter(&b)
	if nano {
		w = pcapgo.NewWriterNanos(&b)
	}
	if err := w.WriteFileHeader(65535, layers.LinkType(LinkTypeNFLOG)); err != nil {
		t.Fatal(err)
	}
	for i, r := range records {
		ci := gopacket.CaptureInfo{Timestamp: time.Unix(1700000000+int64(i), 123456789), CaptureLength: len(r), Length: len(r)}
		if err := w.WritePacket(ci, r); err != nil {
			t.Fatal(err)
		}
	}
	return b.Bytes()
}

func pcapngFile(t testing.TB) []byte {
	t.Helper()
	var b bytes.Buffer
	w, err := pcapgo.NewNgWriter(&b, layers.LinkType(LinkTypeNFLOG))
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range records {
		ci := gopacket.CaptureInfo{Timestamp: time.Unix(1700000000+int64(i), 123456789), CaptureLength: len(r), Length: len(r)}
		if err := w.WritePacket(ci, r); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func readAll(t *testing.T, file []byte) (*Reader, [][]byte, []time.Time) {
	t.Helper()
	r, err := Open(bufio.NewReader(bytes.NewReader(file)))
	if err != nil {
		t.Fatal(err)
	}
	var got [][]byte
	var ts []time.Time
	for {
		d, when, err := r.Next()
		if err == io.EOF {
			return r, got, ts
		}
		if err != nil {
			t.Fatal(err)
		}
		got, ts = append(got, append([]byte{}, d...)), append(ts, when)
	}
}

func TestFormats(t *testing.T) {
	for _, tc := range []struct {
		name, format string
		file         []byte
		res          time.Duration
	}{
		{"pcap microseconds", "pcap", pcapFile(t, false), time.Microsecond},
		{"pcap nanoseconds", "pcap", pcapFile(t, true), time.Nanosecond},
		{"pcapng", "pcapng", pcapngFile(t), time.Nanosecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, got, ts := readAll(t, tc.file)
			if r.Format() != tc.format || r.LinkType() != LinkTypeNFLOG {
				t.Errorf("format %s link type %d, want %s %d", r.Format(), r.LinkType(), tc.format, LinkTypeNFLOG)
			}
			if len(got) != len(records) {
				t.Fatalf("%d records, want %d", len(got), len(records))
			}
			for i := range records {
				if !bytes.Equal(got[i], records[i]) {
					t.Errorf("record %d: % x, want % x", i, got[i], records[i])
				}
				want := time.Unix(1700000000+int64(i), 123456789).Truncate(tc.res)
				if !ts[i].Equal(want) {
					t.Errorf("record %d at %v, want %v", i, ts[i], want)
				}
			}
		})
	}
}

// TestLinkTypeAbove255 reads a link type above 8 bits (Linux cooked v2) in
// both formats.
func TestLinkTypeAbove255(t *testing.T) {
	file := pcapFile(t, false)                                                     // written on this little-endian host
	binary.LittleEndian.PutUint32(file[20:], uint32(LinkTypeLinuxSLL2)|0x10000000) // and an FCS flag
	r, _, _ := readAll(t, file)
	if r.LinkType() != LinkTypeLinuxSLL2 {
		t.Errorf("pcap link type %d, want %d", r.LinkType(), LinkTypeLinuxSLL2)
	}
	r, _, _ = readAll(t, cat(ngSection(false), ngInterfaceBlock(false, LinkTypeLinuxSLL2, 0)))
	if r.LinkType() != LinkTypeLinuxSLL2 {
		t.Errorf("pcapng link type %d, want %d", r.LinkType(), LinkTypeLinuxSLL2)
	}
}

func TestNotACaptureConsumesNothing(t *testing.T) {
	for _, in := range []string{"", "Nov 25 kernel: IN=eth0\n", "\n\r\r\nnot really pcapng"} {
		br := bufio.NewReader(strings.NewReader(in))
		if _, err := Open(br); !errors.Is(err, ErrNotCapture) {
			t.Errorf("%q: err %v, want ErrNotCapture", in, err)
		}
		rest, _ := io.ReadAll(br)
		if string(rest) != in {
			t.Errorf("%q: %q left to read", in, rest)
		}
	}
}

func TestCutAndCorruptRecords(t *testing.T) {
	file := pcapFile(t, false)
	// The last record cut in its body, then in its header.
	for _, cut := range []int{len(file) - 10, len(file) - 300 - 8} {
		r, err := Open(bufio.NewReader(bytes.NewReader(file[:cut])))
		if err != nil {
			t.Fatal(err)
		}
		var err2 error
		for err2 == nil {
			_, _, err2 = r.Next()
		}
		if err2 != io.ErrUnexpectedEOF {
			t.Errorf("cut at %d: %v, want io.ErrUnexpectedEOF", cut, err2)
		}
	}
	// A record that claims more than MaxRecord bytes.
	var b bytes.Buffer
	w := pcapgo.NewWriter(&b)
	w.WriteFileHeader(65535, layers.LinkTypeEthernet)
	big := make([]byte, MaxRecord+1)
	w.WritePacket(gopacket.CaptureInfo{CaptureLength: len(big), Length: len(big)}, big)
	r, err := Open(bufio.NewReader(&b))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.Next(); err == nil {
		t.Error("a record above MaxRecord was read")
	}
}

func FuzzCapture(f *testing.F) {
	f.Add(pcapFile(f, false))
	f.Add(pcapFile(f, true))
	f.Add(pcapngFile(f))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := Open(bufio.NewReader(bytes.NewReader(b)))
		if err != nil {
			return
		}
		for i := 0; i < 1000; i++ {
			d, _, err := r.Next()
			if cap(r.buf) > MaxRecord || len(r.ifaces) > maxInterfaces {
				t.Fatalf("record buffer of %d bytes, %d interfaces", cap(r.buf), len(r.ifaces))
			}
			if err != nil {
				return
			}
			if len(d) > MaxRecord {
				t.Fatalf("record of %d bytes", len(d))
			}
		}
	})
}
