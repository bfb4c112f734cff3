package capture

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
)

// TestPcapngFields reads hand-made sections in both byte orders: every
// record block kind, timestamp units and offsets, a skipped block, and a
// second section with its own interfaces.
func TestPcapngFields(t *testing.T) {
	for _, big := range []bool{false, true} {
		o := order(big)
		spb := ngBlock(big, ngSPB, append(o.AppendUint32(nil, 6), 1, 2, 3, 4, 5, 6, 0, 0))
		pbBody := o.AppendUint16(nil, 1) // interface 1
		pbBody = o.AppendUint16(pbBody, 0)
		const pbTime = 1700000000*1024 + 512 // 2^-10 s units: .5 s
		pbBody = o.AppendUint32(pbBody, pbTime>>32)
		pbBody = o.AppendUint32(pbBody, pbTime&0xffffffff)
		pbBody = o.AppendUint32(pbBody, 2)
		pbBody = o.AppendUint32(pbBody, 2)
		pbBody = append(pbBody, 9, 9, 0, 0)
		pb := ngBlock(big, ngPB, pbBody)
		file := cat(
			ngSection(big),
			ngBlock(big, 0x40000bad, []byte{1, 2, 3, 4}), // a custom block: skipped
			ngInterfaceBlock(big, LinkTypeNFLOG, 4, ngOption(big, 2, []byte("nflog")), ngOption(big, optTSResol, []byte{9})),
			ngInterfaceBlock(big, LinkTypeNFLOG, 0, ngOption(big, optTSResol, []byte{0x80 | 10}), ngOption(big, optTSOffset, o.AppendUint64(nil, 100))),
			ngPacket(big, 0, 1700000000123456789, 3, []byte{7, 7, 7}),
			spb, // cut to interface 0's snapshot length, 4
			pb,
			ngBlock(big, 5, make([]byte, 12)), // interface statistics: skipped
			ngSection(!big),                   // a new section, the other byte order
			ngInterfaceBlock(!big, LinkTypeNFLOG, 0),
			ngPacket(!big, 0, 1700000001000000, 1, []byte{8}), // microseconds, the default
		)
		r, got, ts := readAll(t, file)
		if r.Format() != "pcapng" || r.LinkType() != LinkTypeNFLOG {
			t.Errorf("big-endian %v: format %s link type %d", big, r.Format(), r.LinkType())
		}
		want := [][]byte{{7, 7, 7}, {1, 2, 3, 4}, {9, 9}, {8}}
		wantTS := []time.Time{
			time.Unix(1700000000, 123456789),
			{},
			time.Unix(1700000000+100, 500000000),
			time.Unix(1700000001, 0),
		}
		if len(got) != len(want) {
			t.Fatalf("big-endian %v: %d records, want %d", big, len(got), len(want))
		}
		for i := range want {
			if !bytes.Equal(got[i], want[i]) || !ts[i].Equal(wantTS[i]) {
				t.Errorf("big-endian %v record %d: % x at %v, want % x at %v", big, i, got[i], ts[i], want[i], wantTS[i])
			}
		}
	}
}

func TestResolution(t *testing.T) {
	for v, want := range map[byte]uint64{0: 1, 6: 1e6, 9: 1e9, 19: 1e19, 0x80: 1, 0x80 | 10: 1024, 0x80 | 63: 1 << 63} {
		if got, err := resolution(v); err != nil || got != want {
			t.Errorf("resolution(%#x) = %d, %v; want %d", v, got, err, want)
		}
	}
	for _, v := range []byte{20, 0x7f, 0x80 | 64, 0xc0, 0xff} {
		if _, err := resolution(v); err == nil {
			t.Errorf("resolution(%#x): no error", v)
		}
	}
	// Units finer than nanoseconds round down; 2^-63 s units need 128-bit arithmetic.
	ifc := ngInterface{perSecond: 1e12}
	if got := ifc.time(5*1e12 + 999999999999); !got.Equal(time.Unix(5, 999999999)) {
		t.Errorf("picoseconds: %v", got)
	}
	ifc = ngInterface{perSecond: 1 << 63}
	if got := ifc.time(1<<63 + 1<<62); !got.Equal(time.Unix(1, 500000000)) {
		t.Errorf("2^-63 s: %v", got)
	}
}

// TestPcapngErrors: what breaks the format is an error that says where and
// what, never a panic, and nothing is read after it.
func TestPcapngErrors(t *testing.T) {
	le := binary.LittleEndian
	shb, idb := ngSection(false), ngInterfaceBlock(false, LinkTypeNFLOG, 0)
	rec := ngPacket(false, 0, 0, 1, []byte{1})
	badTrailer := bytes.Clone(rec)
	le.PutUint32(badTrailer[len(badTrailer)-4:], 40)
	oddLength := bytes.Clone(rec)
	le.PutUint32(oddLength[4:], 34)
	tooShort := bytes.Clone(rec)
	le.PutUint32(tooShort[4:], 8)
	newVersion := bytes.Clone(shb)
	le.PutUint16(newVersion[12:], 2)
	for _, tc := range []struct {
		name, want string
		file       []byte
		corrupt    bool
		records    int
	}{
		{"record before an interface", "a record before any interface description", cat(shb, rec), true, 0},
		{"unknown interface", "interface 1, but the section describes 1", cat(shb, idb, ngPacket(false, 1, 0, 1, []byte{1})), true, 0},
		{"interfaces reset by a new section", "interface 0, but the section describes 0", cat(shb, idb, rec, shb, rec), true, 1},
		{"mixed link types", "interface 1 has link type 1, the capture's first interface 239", cat(shb, idb, ngInterfaceBlock(false, LinkTypeEthernet, 0), rec, ngPacket(false, 1, 0, 1, []byte{1})), false, 1},
		{"trailing length differs", "total length 36 at its start, 40 at its end", cat(shb, idb, badTrailer), true, 0},
		{"length not a multiple of 4", "total length 34", cat(shb, idb, oddLength), true, 0},
		{"length below the header", "total length 8", cat(shb, idb, tooShort), true, 0},
		{"captured bytes past the block", "5 captured bytes run past the block's end", cat(shb, idb, ngPacket(false, 0, 0, 5, []byte{1})), true, 0},
		{"record above MaxRecord", "claims 262145 bytes", cat(shb, idb, ngPacket(false, 0, 0, MaxRecord+1, []byte{1})), true, 0},
		{"option past the block", "option 2 of 64 bytes runs past", cat(shb, ngBlock(false, ngIDB, []byte{239, 0, 0, 0, 0, 0, 0, 0, 2, 0, 64, 0, 'a', 'b', 'c', 'd'})), true, 0},
		{"if_tsresol of 0 bytes", "if_tsresol of 0 bytes", cat(shb, ngInterfaceBlock(false, LinkTypeNFLOG, 0, ngOption(false, optTSResol, nil))), true, 0},
		{"if_tsoffset of 4 bytes", "if_tsoffset of 4 bytes", cat(shb, ngInterfaceBlock(false, LinkTypeNFLOG, 0, ngOption(false, optTSOffset, []byte{1, 2, 3, 4}))), true, 0},
		{"if_tsresol 10^-20", "if_tsresol 0x14", cat(shb, ngInterfaceBlock(false, LinkTypeNFLOG, 0, ngOption(false, optTSResol, []byte{20}))), true, 0},
		{"interface description too short", "the interface description runs past", cat(shb, ngBlock(false, ngIDB, []byte{239, 0, 0, 0})), true, 0},
		{"version 2.0", "version 2.0 is not read", cat(newVersion, idb), false, 0},
		{"no interface before the end", "ends before its first interface description", shb, false, 0},
		{"section header without byte-order magic", "no byte-order magic", cat(shb, idb, rec, ngBlock(false, ngSHB, make([]byte, 16))), true, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := readCapture(tc.file)
			if err == nil || !strings.Contains(err.Error(), tc.want) || errors.Is(err, ErrCorrupt) != tc.corrupt || n != tc.records {
				t.Errorf("%d records, err %v; want %d records and an error with %q (corrupt %v)", n, err, tc.records, tc.want, tc.corrupt)
			}
		})
	}
}

func TestInterfaceLimit(t *testing.T) {
	parts := [][]byte{ngSection(false)}
	for range maxInterfaces + 1 {
		parts = append(parts, ngInterfaceBlock(false, LinkTypeNFLOG, 0))
	}
	parts = append(parts, ngPacket(false, 0, 0, 0, nil))
	if _, err := readCapture(cat(parts...)); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "more than 4096 interfaces") {
		t.Errorf("err %v", err)
	}
}

// TestCutAnywhere cuts a capture at every byte: the records before the cut
// are read, then io.EOF exactly at a record's end, else io.ErrUnexpectedEOF.
func TestCutAnywhere(t *testing.T) {
	for name, file := range map[string][]byte{"pcap": pcapFile(t, false), "pcapng": pcapngFile(t)} {
		var ends []int // where a complete record (or the header) ends
		r, err := Open(bufio.NewReader(bytes.NewReader(file)))
		if err != nil {
			t.Fatal(err)
		}
		ends = append(ends, int(r.off))
		for {
			if _, _, err := r.Next(); err != nil {
				break
			}
			ends = append(ends, int(r.off))
		}
		for cut := 4; cut < len(file); cut++ {
			r, err := Open(bufio.NewReader(bytes.NewReader(file[:cut])))
			if cut < ends[0] {
				// pcapng is recognised by its first 12 bytes
				if !errors.Is(err, io.ErrUnexpectedEOF) && !(name == "pcapng" && cut < 12 && err == ErrNotCapture) {
					t.Errorf("%s cut at %d in the header: %v", name, cut, err)
				}
				continue
			}
			if err != nil {
				t.Fatalf("%s cut at %d: %v", name, cut, err)
			}
			n := 0
			for err == nil {
				if _, _, err = r.Next(); err == nil {
					n++
				}
			}
			atEnd := ends[n] == cut
			if atEnd && err != io.EOF || !atEnd && err != io.ErrUnexpectedEOF {
				t.Errorf("%s cut at %d after %d records: %v", name, cut, n, err)
			}
			if _, _, again := r.Next(); again != err {
				t.Errorf("%s cut at %d: Next after %v returned %v", name, cut, err, again)
			}
		}
	}
}

func TestPcapHeader(t *testing.T) {
	be := pcapFile(t, true)
	// the same file as a big-endian writer writes it
	swap := func(b []byte, n int) { // reverses an n-byte field in place
		for i, j := 0, n-1; i < j; i, j = i+1, j-1 {
			b[i], b[j] = b[j], b[i]
		}
	}
	for _, f := range []struct{ off, n int }{{0, 4}, {4, 2}, {6, 2}, {8, 4}, {12, 4}, {16, 4}, {20, 4}} {
		swap(be[f.off:], f.n)
	}
	for off := 24; off < len(be); {
		for i := 0; i < 4; i++ {
			swap(be[off+4*i:], 4)
		}
		off += 16 + int(binary.BigEndian.Uint32(be[off+8:]))
	}
	_, got, ts := readAll(t, be)
	if len(got) != len(records) || !bytes.Equal(got[3], records[3]) || !ts[0].Equal(time.Unix(1700000000, 123456789)) {
		t.Errorf("big-endian pcap: %d records, first at %v", len(got), ts[0])
	}
	old := pcapFile(t, false)
	binary.LittleEndian.PutUint16(old[6:], 3)
	if _, err := readCapture(old); err == nil || !strings.Contains(err.Error(), "pcap version 2.3 is not read") {
		t.Errorf("pcap 2.3: %v", err)
	}
}

// BenchmarkNext reads records of 100 bytes: no allocation per record.
func BenchmarkNext(b *testing.B) {
	rec := bytes.Repeat([]byte{1}, 100)
	var parts [][]byte
	parts = append(parts, ngSection(false), ngInterfaceBlock(false, LinkTypeNFLOG, 0))
	for range 1000 {
		parts = append(parts, ngPacket(false, 0, 1700000000123456, uint32(len(rec)), rec))
	}
	pcapng := cat(parts...)
	var pcap bytes.Buffer
	w := pcapgo.NewWriterNanos(&pcap)
	w.WriteFileHeader(65535, layers.LinkType(LinkTypeNFLOG))
	for range 1000 {
		w.WritePacket(gopacket.CaptureInfo{Timestamp: time.Unix(1700000000, 1), CaptureLength: len(rec), Length: len(rec)}, rec)
	}
	for _, tc := range []struct {
		name string
		file []byte
	}{{"pcap", pcap.Bytes()}, {"pcapng", pcapng}} {
		b.Run(tc.name, func(b *testing.B) {
			src := bytes.NewReader(tc.file)
			br := bufio.NewReader(src)
			r, err := Open(br)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.SetBytes(int64(len(rec)))
			for b.Loop() {
				if _, _, err := r.Next(); err == io.EOF {
					b.StopTimer()
					src.Reset(tc.file)
					br.Reset(src)
					if r, err = Open(br); err != nil {
						b.Fatal(err)
					}
					b.StartTimer()
				} else if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestRealCaptures reads pcapng files that Wireshark 4.0's tools wrote and
// requires the records and times of the same packets in pcap:
// dumpcap-lo.pcapng is `dumpcap -i lo` in a namespace while connections to
// closed ports were refused (section and interface options, nanosecond
// if_tsresol, an interface statistics block at the end), and
// dumpcap-lo.tcpdump.pcap is libpcap's reading of it (`tcpdump -r -w`,
// microseconds); nflog.editcap.pcapng is `editcap -F pcapng nflog.pcap`.
func TestRealCaptures(t *testing.T) {
	for _, tc := range []struct {
		ng, pcap string
		lt       LinkType
		records  int
	}{
		{"testdata/dumpcap-lo.pcapng", "testdata/dumpcap-lo.tcpdump.pcap", LinkTypeEthernet, 8},
		{"testdata/nflog.editcap.pcapng", "testdata/nflog.pcap", LinkTypeNFLOG, 55},
	} {
		read := func(name string) (*Reader, [][]byte, []time.Time) {
			b, err := os.ReadFile(name)
			if err != nil {
				t.Fatal(err)
			}
			return readAll(t, b)
		}
		rn, ng, ngTS := read(tc.ng)
		rp, pc, pcTS := read(tc.pcap)
		if rn.LinkType() != tc.lt || rp.LinkType() != tc.lt || len(ng) != tc.records || len(pc) != tc.records {
			t.Fatalf("%s: link types %d/%d, %d/%d records; want %d, %d", tc.ng, rn.LinkType(), rp.LinkType(), len(ng), len(pc), tc.lt, tc.records)
		}
		for i := range ng {
			if !bytes.Equal(ng[i], pc[i]) || !ngTS[i].Truncate(time.Microsecond).Equal(pcTS[i]) {
				t.Errorf("%s record %d: %d bytes at %v, pcap %d bytes at %v", tc.ng, i, len(ng[i]), ngTS[i], len(pc[i]), pcTS[i])
			}
		}
		if ngTS[0].Nanosecond()%1000 == 0 && tc.lt == LinkTypeEthernet {
			t.Errorf("%s: nanosecond timestamps read as %v", tc.ng, ngTS[0])
		}
	}
}
