package capture

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// Hand-made pcapng blocks, so that every field can be set to what no writer
// would write.

func order(big bool) binary.AppendByteOrder {
	if big {
		return binary.BigEndian
	}
	return binary.LittleEndian
}

func ngBlock(big bool, typ uint32, body []byte) []byte {
	o := order(big)
	n := uint32(12 + len(body))
	b := o.AppendUint32(nil, typ)
	b = o.AppendUint32(b, n)
	b = append(b, body...)
	return o.AppendUint32(b, n)
}

func ngSection(big bool) []byte {
	o := order(big)
	body := o.AppendUint32(nil, ngByteOrder)
	body = o.AppendUint16(body, 1)
	body = o.AppendUint16(body, 0)
	body = o.AppendUint64(body, ^uint64(0)) // section length: not given
	return ngBlock(big, ngSHB, body)
}

func ngOption(big bool, code uint16, value []byte) []byte {
	o := order(big)
	b := o.AppendUint16(nil, code)
	b = o.AppendUint16(b, uint16(len(value)))
	b = append(b, value...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func ngInterfaceBlock(big bool, lt LinkType, snaplen uint32, opts ...[]byte) []byte {
	o := order(big)
	body := o.AppendUint16(nil, uint16(lt))
	body = o.AppendUint16(body, 0)
	body = o.AppendUint32(body, snaplen)
	for _, opt := range opts {
		body = append(body, opt...)
	}
	if len(opts) > 0 {
		body = append(body, 0, 0, 0, 0) // end of options
	}
	return ngBlock(big, ngIDB, body)
}

func ngPacket(big bool, ifID uint32, ts uint64, caplen uint32, data []byte) []byte {
	o := order(big)
	body := o.AppendUint32(nil, ifID)
	body = o.AppendUint32(body, uint32(ts>>32))
	body = o.AppendUint32(body, uint32(ts))
	body = o.AppendUint32(body, caplen)
	body = o.AppendUint32(body, uint32(len(data)))
	body = append(body, data...)
	for len(body)%4 != 0 {
		body = append(body, 0)
	}
	return ngBlock(big, ngEPB, body)
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// tsresolOverflow is 60 bytes: a section header and an interface whose
// if_tsresol 0xc0 asks for 2^-64 s units. gopacket's pcapgo computed the
// units per second as 1<<64, which wraps to 0, and divided by it: every
// input of explain and the exporter's --nflog.replay-file panicked.
func tsresolOverflow() []byte {
	return cat(ngSection(false), ngInterfaceBlock(false, LinkTypeNFLOG, 0, ngOption(false, optTSResol, []byte{0xc0})))
}

// recordClaims4GiB is 84 bytes: an interface, then a record that claims
// 0xfffffffc captured bytes and holds 4. pcapgo allocated the claim before
// any check: 4 GiB for one record.
func recordClaims4GiB() []byte {
	return cat(ngSection(false), ngInterfaceBlock(false, LinkTypeNFLOG, 0), ngPacket(false, 0, 0, 0xfffffffc, []byte{2, 0, 0, 5}))
}

// snaplen4GiB: an interface with a 4 GiB snapshot length and a record of 4
// bytes. pcapgo allocated the larger of the two.
func snaplen4GiB() []byte {
	return cat(ngSection(false), ngInterfaceBlock(false, LinkTypeNFLOG, 0xffffffff), ngPacket(false, 0, 0, 4, []byte{2, 0, 0, 5}))
}

// readCapture reads a whole capture and returns the records' count and the
// error that ended it (nil at a clean end), recovering a panic as an error.
func readCapture(file []byte) (n int, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v", p)
		}
	}()
	r, err := Open(bufio.NewReader(bytes.NewReader(file)))
	if err != nil {
		return 0, err
	}
	for {
		_, _, err := r.Next()
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		n++
	}
}

func TestTimestampResolutionOverflow(t *testing.T) {
	file := tsresolOverflow()
	if len(file) != 60 {
		t.Fatalf("%d bytes, want the 60 of the report", len(file))
	}
	_, err := readCapture(file)
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "if_tsresol 0xc0") {
		t.Fatalf("err %v, want a corrupt-capture error naming if_tsresol 0xc0", err)
	}
}

// allocated returns the bytes f allocates on the heap.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

func TestRecordClaimAllocatesLittle(t *testing.T) {
	for _, tc := range []struct {
		name    string
		file    []byte
		records int
		wantErr string
	}{
		{"record claims 4 GiB", recordClaims4GiB(), 0, "claims 4294967292 bytes, more than the 262144"},
		{"snapshot length 4 GiB", snaplen4GiB(), 1, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "record claims 4 GiB" && len(tc.file) != 84 {
				t.Fatalf("%d bytes, want the 84 of the report", len(tc.file))
			}
			var (
				n   int
				err error
			)
			alloc := allocated(func() { n, err = readCapture(tc.file) })
			// The bufio.Reader (4 KiB) and the reader itself; a record of 4
			// bytes needs no more.
			if alloc > 64<<10 {
				t.Errorf("reading %d bytes allocated %d bytes", len(tc.file), alloc)
			}
			if n != tc.records {
				t.Errorf("%d records, want %d", n, tc.records)
			}
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (!errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Errorf("err %v, want %q", err, tc.wantErr)
			}
		})
	}
}

// TestWriteCorruptSeeds keeps the hand-made files as fuzz seeds, in the
// corpus format, so that FuzzCapture starts from them (go test reruns them).
func TestWriteCorruptSeeds(t *testing.T) {
	for name, file := range map[string][]byte{"tsresol-0xc0": tsresolOverflow(), "record-claims-4GiB": recordClaims4GiB(), "snaplen-4GiB": snaplen4GiB()} {
		seed := "go test fuzz v1\n[]byte(" + quoteBytes(file) + ")\n"
		path := filepath.Join("testdata", "fuzz", "FuzzCapture", name)
		got, err := os.ReadFile(path)
		if err == nil && string(got) == seed {
			continue
		}
		if os.Getenv("NFDROP_WRITE_SEEDS") != "1" {
			t.Errorf("%s is missing or stale: run NFDROP_WRITE_SEEDS=1 go test -run TestWriteCorruptSeeds ./collector/capture/", path)
			continue
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(seed), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func quoteBytes(b []byte) string {
	var s strings.Builder
	s.WriteByte('"')
	for _, c := range b {
		s.WriteString(`\x`)
		s.WriteByte("0123456789abcdef"[c>>4])
		s.WriteByte("0123456789abcdef"[c&15])
	}
	s.WriteByte('"')
	return s.String()
}
