package source

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
	"github.com/nfdrop/nfdrop_exporter/collector/capture"
	"github.com/nfdrop/nfdrop_exporter/collector/classify"
)

// recorder is a Handler that keeps everything it is told.
type recorder struct {
	bound   map[classify.Group]bool
	packets []string
	lost    map[classify.Group]uint64
	errors  map[ErrorReason]int
	flushes map[classify.Group]int
	rebinds map[classify.Group]int
}

func newRecorder() *recorder {
	return &recorder{bound: map[classify.Group]bool{}, lost: map[classify.Group]uint64{}, errors: map[ErrorReason]int{}, flushes: map[classify.Group]int{}, rebinds: map[classify.Group]int{}}
}

func (r *recorder) Bound(g classify.Group, up bool)              { r.bound[g] = up }
func (r *recorder) Lost(g classify.Group, n uint64)              { r.lost[g] += n }
func (r *recorder) ReceiveError(_ classify.Group, e ErrorReason) { r.errors[e]++ }
func (r *recorder) Flush(g classify.Group)                       { r.flushes[g]++ }
func (r *recorder) Rebind(g classify.Group)                      { r.rebinds[g]++ }
func (r *recorder) Packet(m *Message) {
	r.packets = append(r.packets, fmt.Sprintf("g=%d fam=%d prefix=%q payload=%x seq=%d/%v ts=%d/%v hw=%#x/%v hook=%d",
		m.Group, m.Family, m.Prefix, m.Payload, m.Seq, m.HasSeq, m.TimestampNs/1e3, m.HasTimestamp, m.HwProtocol, m.HasHwProto, m.Hook))
}

func TestSeqTracker(t *testing.T) {
	for _, tc := range []struct {
		name string
		seqs []uint32
		lost uint64
	}{
		{"no gaps", []uint32{0, 1, 2, 3}, 0},
		{"first batch lost", []uint32{5, 6}, 5},
		{"two gaps", []uint32{0, 3, 4, 10}, 2 + 5},
		{"wrap around", []uint32{0xfffffffe, 0xffffffff, 0, 2}, 1},
		{"restart we did not see", []uint32{0, 1, 2, 0, 1}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s seqTracker
			var lost uint64
			for i, q := range tc.seqs {
				if i == 0 && tc.name == "wrap around" {
					s.started, s.next = true, q
				}
				lost += s.observe(q)
			}
			if lost != tc.lost {
				t.Errorf("lost %d, want %d", lost, tc.lost)
			}
		})
	}
}

// tlv appends one NFLOG TLV with header fields in order.
func tlv(b []byte, order binary.ByteOrder, typ uint16, v []byte) []byte {
	var h [4]byte
	order.PutUint16(h[:], uint16(4+len(v)))
	order.PutUint16(h[2:], typ)
	b = append(append(b, h[:]...), v...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func be32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

// nflogRecord builds a LINKTYPE_NFLOG record as libpcap writes it.
func nflogRecord(order binary.ByteOrder, family uint8, group uint16, prefix string, payload []byte, seq *uint32) []byte {
	b := []byte{family, 0, byte(group >> 8), byte(group)}
	b = tlv(b, order, attrPacketHdr, []byte{0x08, 0x00, 1, 0})
	ts := binary.BigEndian.AppendUint64(nil, 1700000000)
	ts = binary.BigEndian.AppendUint64(ts, 250000)
	b = tlv(b, order, attrTimestamp, ts)
	b = tlv(b, order, attrPrefix, append([]byte(prefix), 0))
	if seq != nil {
		b = tlv(b, order, attrSeq, be32(*seq))
	}
	return tlv(b, order, attrPayload, payload)
}

// pcapFile writes records as a classic pcap of linkType.
func pcapFile(t testing.TB, linkType capture.LinkType, records ...[]byte) []byte {
	t.Helper()
	var b bytes.Buffer
	w := pcapgo.NewWriter(&b)
	if err := w.WriteFileHeader(65535, layers.LinkType(linkType)); err != nil {
		t.Fatal(err)
	}
	for i, r := range records {
		if err := w.WritePacket(gopacket.CaptureInfo{Timestamp: time.Unix(1700000000+int64(i), 7000), CaptureLength: len(r), Length: len(r)}, r); err != nil {
			t.Fatal(err)
		}
	}
	return b.Bytes()
}

// captureFile writes a pcap (or pcapng) file of records to a temporary directory.
func captureFile(t testing.TB, ng bool, linkType capture.LinkType, records ...[]byte) string {
	t.Helper()
	var b bytes.Buffer
	if ng {
		w, err := pcapgo.NewNgWriter(&b, layers.LinkType(linkType))
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range records {
			if err := w.WritePacket(gopacket.CaptureInfo{Timestamp: time.Unix(1700000000, 0), CaptureLength: len(r), Length: len(r)}, r); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
	} else {
		b.Write(pcapFile(t, linkType, records...))
	}
	path := filepath.Join(t.TempDir(), "c.pcap")
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// replay runs a Replay of path for groups into a new recorder.
func replay(t testing.TB, path string, groups ...uint16) (*recorder, error) {
	t.Helper()
	rec := newRecorder()
	r := &Replay{Path: path, Groups: groups}
	if err := r.Open(rec); err != nil {
		return rec, err
	}
	defer r.Close()
	return rec, r.Run(context.Background(), rec)
}

func u32(v uint32) *uint32 { return &v }

func TestReplayBothByteOrdersAndFormats(t *testing.T) {
	for _, order := range []binary.ByteOrder{binary.LittleEndian, binary.BigEndian} {
		for _, ng := range []bool{false, true} {
			t.Run(fmt.Sprint(order, " pcapng=", ng), func(t *testing.T) {
				path := captureFile(t, ng, capture.LinkTypeNFLOG,
					nflogRecord(order, 2, 5, "denied ", []byte{0x45, 1, 2}, u32(0)),
					nflogRecord(order, 2, 6, "other group", []byte{0x45}, u32(0)),
					nflogRecord(order, 10, 5, "", []byte{0x60}, u32(3)),
				)
				rec, err := replay(t, path, 5)
				if err != nil {
					t.Fatal(err)
				}
				want := []string{
					`g=5 fam=2 prefix="denied " payload=450102 seq=0/true ts=1700000000250000/true hw=0x800/true hook=1`,
					`g=5 fam=10 prefix="" payload=60 seq=3/true ts=1700000000250000/true hw=0x800/true hook=1`,
				}
				if fmt.Sprint(rec.packets) != fmt.Sprint(want) {
					t.Errorf("packets\n got %q\nwant %q", rec.packets, want)
				}
				if rec.lost[5] != 2 || !rec.bound[5] || len(rec.errors) != 0 {
					t.Errorf("lost %v bound %v errors %v", rec.lost, rec.bound, rec.errors)
				}
			})
		}
	}
}

// TestReplayShortRecordIsNotRedelivered: a record shorter than the NFLOG
// header is a bad message, not the previous packet once more.
func TestReplayShortRecordIsNotRedelivered(t *testing.T) {
	le := binary.LittleEndian
	for _, short := range [][]byte{{}, {2}, {2, 0, 0}} {
		path := captureFile(t, false, capture.LinkTypeNFLOG,
			nflogRecord(le, 2, 0, "a", []byte{0x45}, u32(0)),
			short,
			nflogRecord(le, 2, 0, "b", []byte{0x45}, u32(1)),
		)
		rec, err := replay(t, path, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(rec.packets) != 2 || rec.errors[ReasonMessage] != 1 || rec.lost[0] != 0 {
			t.Errorf("record of %d bytes: packets %q, errors %v, lost %v; want 2 packets, 1 bad_message, 0 lost",
				len(short), rec.packets, rec.errors, rec.lost)
		}
	}
}

func TestReplayRejectsWrongInput(t *testing.T) {
	dir := t.TempDir()
	cut, err := os.ReadFile(captureFile(t, false, capture.LinkTypeNFLOG, nflogRecord(binary.LittleEndian, 2, 0, "", []byte{0x45}, nil)))
	if err != nil {
		t.Fatal(err)
	}
	eth, err := os.ReadFile(captureFile(t, false, capture.LinkTypeEthernet))
	if err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string][]byte{
		"ethernet.pcap": eth,
		"text.log":      []byte("Nov 25 kernel: denied IN=eth0 OUT= ...\n"),
		"cut.pcap":      cut[:40],
	} {
		path := filepath.Join(dir, name)
		os.WriteFile(path, content, 0o600)
		if _, err := replay(t, path, 0); err == nil {
			t.Errorf("%s: replay accepted it", name)
		}
	}
}

func TestParseAttrsMalformed(t *testing.T) {
	order := binary.LittleEndian
	good := nflogRecord(order, 2, 1, "p", []byte{0x45}, u32(9))
	for _, tc := range []struct {
		name    string
		data    []byte
		wantErr bool
	}{
		{"good", good, false},
		{"length past the end", append(append([]byte{}, good[:4]...), 0xff, 0x00, 0x01, 0x00), true},
		{"length below header", append(append([]byte{}, good[:4]...), 0x02, 0x00, 0x01, 0x00), true},
		{"trailing bytes ignored", append(append([]byte{}, good...), 0x01, 0x02), false},
		{"header only", good[:4], false},
		{"too short", good[:3], true},
	} {
		var m Message
		err := ParseNFLOGRecord(tc.data, &m)
		if (err != nil) != tc.wantErr {
			t.Errorf("%s: err %v, wantErr %v", tc.name, err, tc.wantErr)
		}
	}
}

func FuzzParseNFLOGRecord(f *testing.F) {
	f.Add(nflogRecord(binary.LittleEndian, 2, 1, "denied", []byte{0x45, 0, 0, 40}, u32(1)))
	f.Add(nflogRecord(binary.BigEndian, 10, 0, "", nil, nil))
	f.Fuzz(func(t *testing.T, data []byte) {
		var m Message
		if err := ParseNFLOGRecord(data, &m); err == nil && len(data) >= 4 {
			if len(m.Payload) > len(data) || len(m.Prefix) > len(data) {
				t.Fatalf("slices larger than the input")
			}
		}
	})
}

// TestReplayCorruptCapture: the two pcapng files that crashed the replay
// through gopacket's pcapgo (collector/capture's corrupt_test.go builds
// them) are errors that say what is wrong, and the one whose record claims
// 4 GiB costs little memory.
func TestReplayCorruptCapture(t *testing.T) {
	const (
		shb = "\x0a\x0d\x0d\x0a\x1c\x00\x00\x00\x4d\x3c\x2b\x1a\x01\x00\x00\x00\xff\xff\xff\xff\xff\xff\xff\xff\x1c\x00\x00\x00"
		// if_tsresol 0xc0: 2^-64 s units, a divide by zero in pcapgo
		tsresol = shb + "\x01\x00\x00\x00\x20\x00\x00\x00\xef\x00\x00\x00\x00\x00\x00\x00\x09\x00\x01\x00\xc0\x00\x00\x00\x00\x00\x00\x00\x20\x00\x00\x00"
		// a record that claims 0xfffffffc bytes: pcapgo allocated them
		claim = shb + "\x01\x00\x00\x00\x14\x00\x00\x00\xef\x00\x00\x00\x00\x00\x00\x00\x14\x00\x00\x00" +
			"\x06\x00\x00\x00\x24\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\xfc\xff\xff\xff\x04\x00\x00\x00\x02\x00\x00\x05\x24\x00\x00\x00"
	)
	dir := t.TempDir()
	for name, tc := range map[string]struct{ file, want string }{
		"tsresol.pcapng": {tsresol, "if_tsresol 0xc0"},
		"claim.pcapng":   {claim, "claims 4294967292 bytes"},
	} {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(tc.file), 0o600); err != nil {
			t.Fatal(err)
		}
		var (
			rec *recorder
			err error
			ms  [2]runtime.MemStats
		)
		runtime.GC()
		runtime.ReadMemStats(&ms[0])
		rec, err = replay(t, path, 0)
		runtime.ReadMemStats(&ms[1])
		if !errors.Is(err, capture.ErrCorrupt) || !strings.Contains(err.Error(), tc.want) || len(rec.packets) != 0 {
			t.Errorf("%s: err %v, %d packets; want an error with %q", name, err, len(rec.packets), tc.want)
		}
		if n := ms[1].TotalAlloc - ms[0].TotalAlloc; n > 1<<20 {
			t.Errorf("%s: allocated %d bytes", name, n)
		}
	}
}
