// Package capture reads pcap and pcapng files record by record and names the
// link types the exporter's inputs use. It is the one place that knows
// capture formats: NFLOG replay, explain and the conntrack event recordings
// all read through it.
//
// The reader is its own, small and strict: every length is checked against
// the block that holds it and against MaxRecord before anything is read or
// allocated, every option against its own length, and a timestamp
// resolution that 64 bits cannot hold is an error. Whatever the bytes, it
// returns an error rather than panic, and it never holds more than one
// record of at most MaxRecord bytes.
package capture

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"
)

// LinkType is a capture's link type (www.tcpdump.org/linktypes.html): 16
// bits in pcapng, 28 in pcap.
type LinkType uint32

// The link types the exporter reads.
const (
	LinkTypeEthernet LinkType = 1
	LinkTypeRaw      LinkType = 101 // raw IP: the version nibble tells the family
	LinkTypeLinuxSLL LinkType = 113 // Linux cooked capture v1
	LinkTypeIPv4     LinkType = 228
	LinkTypeIPv6     LinkType = 229
	// LinkTypeNFLOG: a Linux NFLOG message per record (tcpdump -i nflog:N):
	// a 4-byte header (family, version, group) and TLVs.
	LinkTypeNFLOG LinkType = 239
	// LinkTypeNetlink: netlink messages as a socket received them (nlmon,
	// and the conntrack event recordings of this project).
	LinkTypeNetlink LinkType = 253
	// LinkTypeLinuxSLL2: Linux cooked capture v2 (tcpdump -i any, libpcap 1.10+).
	LinkTypeLinuxSLL2 LinkType = 276
)

// MaxRecord bounds a record's captured length: larger claims are corrupt
// files. It is libpcap's own largest snapshot length.
const MaxRecord = 1 << 18

// ErrNotCapture is returned for input that is neither pcap nor pcapng.
var ErrNotCapture = errors.New("not a pcap or pcapng capture")

// ErrCorrupt is wrapped by the errors for a capture whose header or a
// record breaks the format: the message says where and what.
var ErrCorrupt = errors.New("corrupt capture")

// Reader reads the records of one capture. The data a call to Next
// returns is valid until the next call.
type Reader struct {
	br       *bufio.Reader
	linkType LinkType
	format   string
	next     func() ([]byte, time.Time, error)
	buf      []byte // the current record; grows up to MaxRecord
	off      int64  // bytes consumed, for the positions in errors
	hdr      [24]byte
	big      bool // the writer's byte order (pcapng: the current section's)

	nsPerUnit int64 // pcap: 1000 for microsecond captures, 1 for nanosecond ones

	// pcapng: the current block and the current section's interfaces
	ifaces     []ngInterface
	blockStart int64  // offset of the current block
	blockLen   uint32 // its total length, header and trailer included
	body       int64  // bytes of its body not read yet
}

func (r *Reader) u16(b []byte) uint16 {
	if r.big {
		return binary.BigEndian.Uint16(b)
	}
	return binary.LittleEndian.Uint16(b)
}

func (r *Reader) u32(b []byte) uint32 {
	if r.big {
		return binary.BigEndian.Uint32(b)
	}
	return binary.LittleEndian.Uint32(b)
}

func (r *Reader) u64(b []byte) uint64 {
	if r.big {
		return binary.BigEndian.Uint64(b)
	}
	return binary.LittleEndian.Uint64(b)
}

// Magic numbers of the file headers, as the first four bytes read.
const (
	pcapMicroLE uint32 = 0xa1b2c3d4 // little-endian writer, microseconds
	pcapNanoLE  uint32 = 0xa1b23c4d
	pcapMicroBE uint32 = 0xd4c3b2a1 // big-endian writer, as read little-endian
	pcapNanoBE  uint32 = 0x4d3cb2a1
	ngSHB       uint32 = 0x0a0d0d0a // pcapng section header block (its own mirror image)
	ngByteOrder uint32 = 0x1a2b3c4d
)

// Open reads the file header of a pcap or pcapng capture from br (and, for
// pcapng, the blocks up to the first interface description, which holds the
// link type). When br does not start with either it returns ErrNotCapture
// and has consumed nothing, so the caller can read br as something else.
func Open(br *bufio.Reader) (*Reader, error) {
	head, _ := br.Peek(12)
	if len(head) < 4 {
		return nil, ErrNotCapture
	}
	r := &Reader{br: br}
	var err error
	switch binary.LittleEndian.Uint32(head) {
	case pcapMicroLE, pcapNanoLE, pcapMicroBE, pcapNanoBE:
		err = r.openPcap()
	case ngSHB:
		// The byte-order magic follows the block length; without it a text
		// that happens to start with "\n\r\r\n" would be taken for pcapng.
		if len(head) < 12 || binary.LittleEndian.Uint32(head[8:]) != ngByteOrder && binary.BigEndian.Uint32(head[8:]) != ngByteOrder {
			return nil, ErrNotCapture
		}
		err = r.openPcapng()
	default:
		return nil, ErrNotCapture
	}
	if err != nil {
		return nil, err
	}
	return r, nil
}

// LinkType is the capture's link type (its first interface's, in pcapng,
// where every interface a record names must have the same).
func (r *Reader) LinkType() LinkType { return r.linkType }

// Format is "pcap" or "pcapng".
func (r *Reader) Format() string { return r.format }

// Next returns the next record and its capture time (the zero time for a
// pcapng simple packet block, which has none). It returns io.EOF at the end,
// io.ErrUnexpectedEOF for a cut record, and an error wrapping ErrCorrupt for
// a broken one; after an error the capture cannot be read further.
func (r *Reader) Next() (data []byte, ts time.Time, err error) {
	return r.next()
}

// readFull reads len(p) bytes: io.EOF when there was none, else
// io.ErrUnexpectedEOF when there were fewer.
func (r *Reader) readFull(p []byte) error {
	n, err := io.ReadFull(r.br, p)
	r.off += int64(n)
	return err
}

// skip discards n bytes; running out is io.ErrUnexpectedEOF.
func (r *Reader) skip(n int) error {
	d, err := r.br.Discard(n)
	r.off += int64(d)
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// record reads n bytes of record data into the reader's buffer.
func (r *Reader) record(n int) ([]byte, error) {
	if cap(r.buf) < n {
		r.buf = make([]byte, n, max(n, 2*cap(r.buf)))
	}
	data := r.buf[:n]
	if err := r.readFull(data); err != nil {
		return nil, unexpected(err)
	}
	return data, nil
}

// unexpected turns io.EOF into io.ErrUnexpectedEOF, for reads that come
// after the first byte of a record.
func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, args...))
}

// failed makes every later Next return err: a capture is not read past a
// broken record, whose length cannot be trusted to find the next one.
func (r *Reader) failed(err error) error {
	r.next = func() ([]byte, time.Time, error) { return nil, time.Time{}, err }
	return err
}
