package source

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

// Link types of the captures we read.
const (
	LinkTypeEthernet = 1
	LinkTypeRaw      = 101
	LinkTypeNFLOG    = 239
	LinkTypeIPv4     = 228
	LinkTypeIPv6     = 229
)

// maxRecord bounds a record's captured length: larger claims are corrupt files.
const maxRecord = 1 << 18

// PcapReader reads a classic pcap file (microsecond or nanosecond, either byte
// order) record by record, reusing one buffer.
type PcapReader struct {
	r        *bufio.Reader
	order    binary.ByteOrder
	nano     bool
	linkType uint32
	hdr      [16]byte
	buf      []byte
}

// ErrNotPcap is returned for input that does not start with a pcap magic number.
var ErrNotPcap = errors.New("not a pcap file")

// NewPcapReader reads the global header.
func NewPcapReader(r io.Reader) (*PcapReader, error) {
	p := &PcapReader{r: bufio.NewReaderSize(r, 1<<16), buf: make([]byte, 0, 4096)}
	var gh [24]byte
	if _, err := io.ReadFull(p.r, gh[:]); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotPcap, err)
	}
	switch m := binary.LittleEndian.Uint32(gh[:]); m {
	case 0xa1b2c3d4:
		p.order = binary.LittleEndian
	case 0xa1b23c4d:
		p.order, p.nano = binary.LittleEndian, true
	case 0xd4c3b2a1:
		p.order = binary.BigEndian
	case 0x4d3cb2a1:
		p.order, p.nano = binary.BigEndian, true
	default:
		return nil, fmt.Errorf("%w: magic %#x (pcapng is not supported: convert with 'editcap -F pcap')", ErrNotPcap, m)
	}
	p.linkType = p.order.Uint32(gh[20:]) & 0x0fffffff
	return p, nil
}

// LinkType is the capture's link type (239 for tcpdump -i nflog:N).
func (p *PcapReader) LinkType() uint32 { return p.linkType }

// ByteOrder is the byte order of the host that wrote the file; NFLOG TLV
// headers in the records use it.
func (p *PcapReader) ByteOrder() binary.ByteOrder { return p.order }

// Next returns the next record; data is valid until the next call. It returns
// io.EOF at the end and io.ErrUnexpectedEOF for a cut record.
func (p *PcapReader) Next() (data []byte, ts time.Time, err error) {
	if _, err := io.ReadFull(p.r, p.hdr[:]); err != nil {
		return nil, time.Time{}, err // io.EOF between records, io.ErrUnexpectedEOF inside one
	}
	sec, frac := p.order.Uint32(p.hdr[0:]), p.order.Uint32(p.hdr[4:])
	incl := p.order.Uint32(p.hdr[8:])
	if incl > maxRecord {
		return nil, time.Time{}, fmt.Errorf("pcap record of %d bytes: corrupt file", incl)
	}
	if cap(p.buf) < int(incl) {
		p.buf = make([]byte, incl)
	}
	p.buf = p.buf[:incl]
	if _, err := io.ReadFull(p.r, p.buf); err != nil {
		return nil, time.Time{}, io.ErrUnexpectedEOF
	}
	if !p.nano {
		frac *= 1000
	}
	return p.buf, time.Unix(int64(sec), int64(frac)), nil
}

// ParseNFLOGRecord decodes a LINKTYPE_NFLOG record (nflog_hdr + TLVs) into m.
// TLV types and lengths are in the writer's byte order, values in network order.
func ParseNFLOGRecord(data []byte, order binary.ByteOrder, m *Message) error {
	if len(data) < 4 {
		return errBadAttribute
	}
	resetMessage(m, binary.BigEndian.Uint16(data[2:]), data[0])
	return parseAttrs(data[4:], order.Uint16([]byte{1, 0}) != binary.NativeEndian.Uint16([]byte{1, 0}), m, nil)
}

// Replay is the file-backed twin of Live: it feeds the messages of an NFLOG
// capture (tcpdump -i nflog:N -w FILE) to the handler, in file order, for the
// groups it was asked for, then reports the groups bound and returns.
type Replay struct {
	Path   string
	Groups []uint16
}

// Run replays the whole file. Sequence gaps are counted as on a live socket.
func (r *Replay) Run(ctx context.Context, h Handler) error {
	f, err := os.Open(r.Path)
	if err != nil {
		return err
	}
	defer f.Close()
	pr, err := NewPcapReader(f)
	if err != nil {
		return fmt.Errorf("%s: %w", r.Path, err)
	}
	if pr.LinkType() != LinkTypeNFLOG {
		return fmt.Errorf("%s: link type %d, want %d (NFLOG: capture with tcpdump -i nflog:N)", r.Path, pr.LinkType(), LinkTypeNFLOG)
	}
	seqs := map[uint16]*seqTracker{}
	for _, g := range r.Groups {
		seqs[g] = &seqTracker{}
		h.Bound(g, true)
	}
	var m Message
	for ctx.Err() == nil {
		data, _, err := pr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: %w", r.Path, err)
		}
		perr := ParseNFLOGRecord(data, pr.ByteOrder(), &m)
		st, ok := seqs[m.Group]
		if !ok {
			continue // another group: a live socket for this group would not see it either
		}
		if perr != nil {
			h.ReceiveError(m.Group, ReasonMessage)
		}
		if m.HasSeq {
			if lost := st.observe(m.Seq); lost > 0 {
				h.Lost(m.Group, lost)
			}
		}
		h.Packet(&m)
		h.Flush(m.Group) // each record stands for a datagram of its own
	}
	return nil
}
