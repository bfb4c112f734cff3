package source

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"os"

	"github.com/nfdrop/nfdrop_exporter/collector/capture"
	"github.com/nfdrop/nfdrop_exporter/collector/classify"
	"github.com/nfdrop/nfdrop_exporter/collector/internal/nlmsg"
)

// ParseNFLOGRecord decodes a capture.LinkTypeNFLOG record (nflog_hdr + TLVs)
// into m. TLV types and lengths are in the writer's byte order, values in
// network order. m is reset first, whatever the record holds: a record too
// short for its header leaves nothing of the previous one behind.
func ParseNFLOGRecord(data []byte, m *Message) error {
	if len(data) < 4 {
		*m = Message{}
		return errBadAttribute
	}
	resetMessage(m, classify.NFLOGGroup(binary.BigEndian.Uint16(data[2:])), data[0])
	return parseAttrs(data[4:], writtenSwapped(data[4:]), m, nil)
}

// NFULA_IFINDEX_INDEV and NFULA_IFINDEX_OUTDEV: the interfaces a logged
// packet came in on and was to leave by.
const (
	attrIndev  = 4
	attrOutdev = 5
)

// NFLOGRecordInterfaces returns the input and output interface indexes of an
// NFLOG record as ParseNFLOGRecord reads it (0 when absent). They are not
// part of Message: the exporter's counters never use them.
func NFLOGRecordInterfaces(data []byte) (in, out uint32) {
	if len(data) < 4 {
		return 0, 0
	}
	a := nlmsg.NewAttrs(data[4:])
	a.Swapped = writtenSwapped(data[4:])
	for a.Next() {
		if len(a.Data) < 4 {
			continue
		}
		switch a.Type {
		case attrIndev:
			in = binary.BigEndian.Uint32(a.Data)
		case attrOutdev:
			out = binary.BigEndian.Uint32(a.Data)
		}
	}
	return in, out
}

// writtenSwapped tells whether the TLV headers of an NFLOG record were
// written in the other byte order than the host's. Every NFULA_* type is
// below 256, so a first type field that reads 256 or more is swapped (libpcap
// swaps these headers on reading for this reason; pcapgo does not). It
// decides per record, so a capture needs no state.
func writtenSwapped(tlvs []byte) bool {
	return len(tlvs) >= 4 && binary.NativeEndian.Uint16(tlvs[2:])&nlmsg.TypeMask > 0xff
}

// Replay is the file-backed twin of Live: it feeds the messages of an NFLOG
// capture (tcpdump -i nflog:N -w FILE; pcap or pcapng) to the handler, in
// file order, for the groups it was asked for, then returns.
type Replay struct {
	Path   string
	Groups []uint16

	f  *os.File
	cr *capture.Reader
}

// Open opens the capture and reads its header, and reports the groups bound.
func (r *Replay) Open(h Handler) error {
	f, err := os.Open(r.Path)
	if err != nil {
		return err
	}
	cr, err := capture.Open(bufio.NewReaderSize(f, 1<<16))
	if err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", r.Path, err)
	}
	if cr.LinkType() != capture.LinkTypeNFLOG {
		f.Close()
		return fmt.Errorf("%s: link type %d, want %d (NFLOG: capture with tcpdump -i nflog:N)", r.Path, cr.LinkType(), capture.LinkTypeNFLOG)
	}
	r.f, r.cr = f, cr
	for _, g := range r.Groups {
		h.Bound(classify.NFLOGGroup(g), true)
	}
	return nil
}

// Run replays the whole file. Sequence gaps are counted as on a live socket.
// A record too short to name its group is counted as a bad message of the
// first group.
func (r *Replay) Run(ctx context.Context, h Handler) error {
	if r.cr == nil {
		return fmt.Errorf("%s: replay not opened", r.Path)
	}
	seqs := map[classify.Group]*seqTracker{}
	for _, g := range r.Groups {
		seqs[classify.NFLOGGroup(g)] = &seqTracker{}
	}
	var m Message
	for ctx.Err() == nil {
		data, _, err := r.cr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: %w", r.Path, err)
		}
		perr := ParseNFLOGRecord(data, &m)
		if len(data) < 4 {
			if len(r.Groups) > 0 {
				h.ReceiveError(classify.NFLOGGroup(r.Groups[0]), ReasonMessage)
			}
			continue
		}
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

// Close closes the capture.
func (r *Replay) Close() error {
	if r.f == nil {
		return nil
	}
	err := r.f.Close()
	r.f, r.cr = nil, nil
	return err
}
