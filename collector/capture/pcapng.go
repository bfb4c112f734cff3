package capture

import (
	"encoding/binary"
	"fmt"
	"io"
	"math/bits"
	"time"
)

// pcapng (the IETF pcapng draft): a sequence of blocks, each
//
//	type (4) | total length (4) | body | total length (4)
//
// in the byte order its section header gives. Records are enhanced packet
// blocks, simple packet blocks and the obsolete packet blocks; interface
// description blocks give their link type, snapshot length and timestamp
// unit. Every other block is skipped by its length.

const (
	ngIDB = 1 // interface description
	ngPB  = 2 // packet block, obsolete
	ngSPB = 3 // simple packet block
	ngEPB = 6 // enhanced packet block

	optEnd      = 0
	optTSResol  = 9  // if_tsresol: the timestamp unit, 10^-n or 2^-n s
	optTSOffset = 14 // if_tsoffset: seconds added to every timestamp

	// maxInterfaces bounds the interface table of one section: real
	// captures have a handful; a file of tiny descriptions must not grow it
	// without end.
	maxInterfaces = 4096
)

type ngInterface struct {
	linkType  LinkType
	snaplen   uint32
	perSecond uint64 // timestamp units per second
	offset    int64  // if_tsoffset
}

func (r *Reader) openPcapng() error {
	r.format = "pcapng"
	if _, err := r.block(); err != nil {
		return unexpected(err)
	}
	if err := r.sectionHeader(); err != nil {
		return err
	}
	for {
		typ, err := r.block()
		if err == io.EOF {
			return fmt.Errorf("pcapng: the file ends before its first interface description: %w", io.ErrUnexpectedEOF)
		}
		if err != nil {
			return err
		}
		switch typ {
		case ngSHB:
			err = r.sectionHeader()
		case ngIDB:
			if err := r.interfaceDescription(); err != nil {
				return err
			}
			r.linkType = r.ifaces[0].linkType
			r.next = r.nextPcapng
			return nil
		case ngEPB, ngPB, ngSPB:
			return corrupt("pcapng block at byte %d: a record before any interface description", r.blockStart)
		default:
			err = r.endBlock()
		}
		if err != nil {
			return err
		}
	}
}

func (r *Reader) nextPcapng() ([]byte, time.Time, error) {
	for {
		typ, err := r.block()
		if err == io.EOF {
			return nil, time.Time{}, io.EOF
		}
		if err != nil {
			return nil, time.Time{}, r.failed(err)
		}
		switch typ {
		case ngEPB, ngPB, ngSPB:
			data, ts, err := r.packet(typ)
			if err != nil {
				return nil, time.Time{}, r.failed(err)
			}
			return data, ts, nil
		case ngSHB:
			err = r.sectionHeader()
		case ngIDB:
			err = r.interfaceDescription()
		default:
			err = r.endBlock()
		}
		if err != nil {
			return nil, time.Time{}, r.failed(err)
		}
	}
}

// block reads the next block's type and total length (and, for a section
// header, the byte order it sets). io.EOF means no block began.
func (r *Reader) block() (uint32, error) {
	r.blockStart = r.off
	h := r.hdr[:8]
	if err := r.readFull(h); err != nil {
		return 0, err
	}
	typ := r.u32(h) // a section header's type reads the same in either order
	minLen := uint32(12)
	if typ == ngSHB {
		if err := r.readFull(r.hdr[8:12]); err != nil {
			return 0, unexpected(err)
		}
		switch ngByteOrder {
		case binary.LittleEndian.Uint32(r.hdr[8:]):
			r.big = false
		case binary.BigEndian.Uint32(r.hdr[8:]):
			r.big = true
		default:
			return 0, corrupt("pcapng section header at byte %d: no byte-order magic", r.blockStart)
		}
		minLen = 28
	}
	r.blockLen = r.u32(h[4:])
	if r.blockLen < minLen || r.blockLen%4 != 0 {
		return 0, corrupt("pcapng block at byte %d: total length %d (at least %d and a multiple of 4)", r.blockStart, r.blockLen, minLen)
	}
	r.body = int64(r.blockLen) - int64(r.off-r.blockStart) - 4
	return typ, nil
}

// field reads n bytes (at most len(r.hdr)) of the current block's body.
func (r *Reader) field(n int, what string) ([]byte, error) {
	if int64(n) > r.body {
		return nil, corrupt("pcapng block at byte %d: %s runs past the block's end", r.blockStart, what)
	}
	b := r.hdr[:n]
	if err := r.readFull(b); err != nil {
		return nil, unexpected(err)
	}
	r.body -= int64(n)
	return b, nil
}

// skipBody discards n bytes of the current block's body.
func (r *Reader) skipBody(n int64, what string) error {
	if n > r.body {
		return corrupt("pcapng block at byte %d: %s runs past the block's end", r.blockStart, what)
	}
	for n > 0 {
		step := min(n, 1<<30)
		if err := r.skip(int(step)); err != nil {
			return err
		}
		n -= step
		r.body -= step
	}
	return nil
}

// endBlock skips what is left of the body and checks the trailing length.
func (r *Reader) endBlock() error {
	if err := r.skipBody(r.body, "the body"); err != nil {
		return err
	}
	t := r.hdr[:4]
	if err := r.readFull(t); err != nil {
		return unexpected(err)
	}
	if n := r.u32(t); n != r.blockLen {
		return corrupt("pcapng block at byte %d: total length %d at its start, %d at its end", r.blockStart, r.blockLen, n)
	}
	return nil
}

// sectionHeader reads a section header's body (the byte order is read) and
// starts a section: no interfaces yet.
func (r *Reader) sectionHeader() error {
	b, err := r.field(12, "the section header")
	if err != nil {
		return err
	}
	// 1.2 was written by early tools and means 1.0, as libpcap reads it.
	if major, minor := r.u16(b), r.u16(b[2:]); major != 1 || minor != 0 && minor != 2 {
		return fmt.Errorf("pcapng section at byte %d: version %d.%d is not read (1.0 is)", r.blockStart, major, minor)
	}
	r.ifaces = r.ifaces[:0]
	return r.endBlock()
}

// interfaceDescription adds the interface a block describes.
func (r *Reader) interfaceDescription() error {
	if len(r.ifaces) == maxInterfaces {
		return corrupt("pcapng interface description at byte %d: more than %d interfaces in one section", r.blockStart, maxInterfaces)
	}
	b, err := r.field(8, "the interface description")
	if err != nil {
		return err
	}
	ifc := ngInterface{linkType: LinkType(r.u16(b)), snaplen: r.u32(b[4:]), perSecond: 1e6}
	for r.body >= 4 {
		o, err := r.field(4, "an option header")
		if err != nil {
			return err
		}
		code, n := r.u16(o), int64(r.u16(o[2:]))
		if code == optEnd {
			break
		}
		padded := (n + 3) &^ 3
		if padded > r.body {
			return corrupt("pcapng interface description at byte %d: option %d of %d bytes runs past the block's end", r.blockStart, code, n)
		}
		var read int64 // of the option's value; the rest is skipped
		switch code {
		case optTSResol:
			if n != 1 {
				return corrupt("pcapng interface description at byte %d: if_tsresol of %d bytes, not 1", r.blockStart, n)
			}
			v, err := r.field(1, "if_tsresol")
			if err != nil {
				return err
			}
			if ifc.perSecond, err = resolution(v[0]); err != nil {
				return corrupt("pcapng interface description at byte %d: %v", r.blockStart, err)
			}
			read = 1
		case optTSOffset:
			if n != 8 {
				return corrupt("pcapng interface description at byte %d: if_tsoffset of %d bytes, not 8", r.blockStart, n)
			}
			v, err := r.field(8, "if_tsoffset")
			if err != nil {
				return err
			}
			ifc.offset = int64(r.u64(v))
			read = 8
		}
		if err := r.skipBody(padded-read, "an option"); err != nil {
			return err
		}
	}
	r.ifaces = append(r.ifaces, ifc)
	return r.endBlock()
}

// resolution is the number of timestamp units per second that an
// if_tsresol value gives: 10^n, or 2^n when the high bit is set. Units
// finer than 64 bits can count in a second are an error.
func resolution(v byte) (uint64, error) {
	n := v & 0x7f
	if v&0x80 != 0 {
		if n > 63 {
			return 0, fmt.Errorf("if_tsresol %#x: 2^-%d s units do not fit 64 bits", v, n)
		}
		return 1 << n, nil
	}
	if n > 19 {
		return 0, fmt.Errorf("if_tsresol %#x: 10^-%d s units do not fit 64 bits", v, n)
	}
	p := uint64(1)
	for range n {
		p *= 10
	}
	return p, nil
}

// time converts a timestamp in the interface's units.
func (ifc *ngInterface) time(ts uint64) time.Time {
	frac := ts % ifc.perSecond
	// frac*1e9 needs 128 bits; its high word is below perSecond, as Div64 wants.
	hi, lo := bits.Mul64(frac, 1e9)
	ns, _ := bits.Div64(hi, lo, ifc.perSecond)
	return time.Unix(int64(ts/ifc.perSecond)+ifc.offset, int64(ns)).UTC()
}

// packet reads a record block: its interface, time and captured bytes.
func (r *Reader) packet(typ uint32) ([]byte, time.Time, error) {
	var (
		ifID   uint32
		ts     uint64
		caplen uint32
		stamp  = true
	)
	switch typ {
	case ngSPB: // original length, then the bytes: as many as fit the block and the snapshot length
		b, err := r.field(4, "the simple packet header")
		if err != nil {
			return nil, time.Time{}, err
		}
		caplen = uint32(min(int64(r.u32(b)), r.body))
		stamp = false
	default: // EPB: interface (32 bits), time high, time low, captured, original length; PB: interface (16 bits) and drops first
		b, err := r.field(20, "the packet header")
		if err != nil {
			return nil, time.Time{}, err
		}
		ifID = r.u32(b)
		if typ == ngPB {
			ifID = uint32(r.u16(b))
		}
		ts = uint64(r.u32(b[4:]))<<32 | uint64(r.u32(b[8:]))
		caplen = r.u32(b[12:])
	}
	if int(ifID) >= len(r.ifaces) {
		return nil, time.Time{}, corrupt("pcapng record at byte %d: interface %d, but the section describes %d", r.blockStart, ifID, len(r.ifaces))
	}
	ifc := &r.ifaces[ifID]
	if ifc.linkType != r.linkType {
		return nil, time.Time{}, fmt.Errorf("pcapng record at byte %d: interface %d has link type %d, the capture's first interface %d: captures of mixed link types are not read", r.blockStart, ifID, ifc.linkType, r.linkType)
	}
	if !stamp && ifc.snaplen != 0 {
		caplen = min(caplen, ifc.snaplen)
	}
	if caplen > MaxRecord {
		return nil, time.Time{}, corrupt("pcapng record at byte %d claims %d bytes, more than the %d a record may have", r.blockStart, caplen, MaxRecord)
	}
	if int64(caplen) > r.body {
		return nil, time.Time{}, corrupt("pcapng record at byte %d: %d captured bytes run past the block's end", r.blockStart, caplen)
	}
	data, err := r.record(int(caplen))
	if err != nil {
		return nil, time.Time{}, err
	}
	r.body -= int64(caplen)
	if err := r.endBlock(); err != nil {
		return nil, time.Time{}, err
	}
	if !stamp {
		return data, time.Time{}, nil
	}
	return data, ifc.time(ts), nil
}
