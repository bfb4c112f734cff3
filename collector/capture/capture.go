// Package capture reads pcap and pcapng files record by record, with
// gopacket's pcapgo, and names the link types the exporter's inputs use.
// It is the one place that knows capture formats: NFLOG replay, explain and
// the conntrack event recordings all read through it.
package capture

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
)

// LinkType is a capture's link type (www.tcpdump.org/linktypes.html). It is
// not gopacket's layers.LinkType, which has 8 bits: Linux cooked v2 is 276.
type LinkType uint32

// The link types the exporter reads; gopacket names those below 256.
const (
	LinkTypeEthernet = LinkType(layers.LinkTypeEthernet)
	LinkTypeRaw      = LinkType(layers.LinkTypeRaw) // raw IP: the version nibble tells the family
	LinkTypeLinuxSLL = LinkType(layers.LinkTypeLinuxSLL)
	LinkTypeIPv4     = LinkType(layers.LinkTypeIPv4)
	LinkTypeIPv6     = LinkType(layers.LinkTypeIPv6)
	// LinkTypeNFLOG: a Linux NFLOG message per record (tcpdump -i nflog:N):
	// a 4-byte header (family, version, group) and TLVs.
	LinkTypeNFLOG LinkType = 239
	// LinkTypeNetlink: netlink messages as a socket received them (nlmon,
	// and the conntrack event recordings of this project).
	LinkTypeNetlink LinkType = 253
	// LinkTypeLinuxSLL2: Linux cooked capture v2 (tcpdump -i any, libpcap 1.10+).
	LinkTypeLinuxSLL2 LinkType = 276
)

// widen undoes pcapgo's cut of a link type to 8 bits for the one we read
// that needs more.
func widen(lt layers.LinkType) LinkType {
	if LinkType(lt) == LinkTypeLinuxSLL2&0xff {
		return LinkTypeLinuxSLL2
	}
	return LinkType(lt)
}

// MaxRecord bounds a record's captured length: larger claims are corrupt files.
const MaxRecord = 1 << 18

// ErrNotCapture is returned for input that is neither pcap nor pcapng.
var ErrNotCapture = errors.New("not a pcap or pcapng capture")

// Reader reads the records of one capture. The data a call to Next
// returns is valid until the next call.
type Reader struct {
	next     func() ([]byte, time.Time, error)
	linkType LinkType
	format   string
}

// Open reads the file header of a pcap or pcapng capture from br. When br
// does not start with one it returns ErrNotCapture and has consumed nothing,
// so the caller can read br as something else.
func Open(br *bufio.Reader) (*Reader, error) {
	head, _ := br.Peek(br.Size())
	// pcapgo knows the magic numbers: ask it, on a copy of the head.
	if _, err := pcapgo.NewReader(bytes.NewReader(head)); err == nil {
		r, err := pcapgo.NewReader(br)
		if err != nil {
			return nil, err
		}
		// pcapgo rejects records longer than the header's snaplen; tcpdump
		// and Wireshark read them. Bound them by MaxRecord instead.
		r.SetSnaplen(MaxRecord)
		return &Reader{linkType: pcapLinkType(head), format: "pcap", next: func() ([]byte, time.Time, error) {
			data, ci, err := r.ZeroCopyReadPacketData()
			return data, ci.Timestamp, err
		}}, nil
	}
	opts := pcapgo.NgReaderOptions{ErrorOnMismatchingLinkType: true, SkipUnknownVersion: true}
	if _, err := pcapgo.NewNgReader(bytes.NewReader(head), opts); err != nil {
		return nil, ErrNotCapture
	}
	r, err := pcapgo.NewNgReader(br, opts)
	if err != nil {
		return nil, err
	}
	return &Reader{linkType: widen(r.LinkType()), format: "pcapng", next: func() ([]byte, time.Time, error) {
		data, ci, err := r.ZeroCopyReadPacketData()
		if err == nil && len(data) > MaxRecord {
			err = fmt.Errorf("pcapng record of %d bytes: corrupt file", len(data))
		}
		return data, ci.Timestamp, err
	}}, nil
}

// LinkType is the capture's link type (its first interface's, in pcapng,
// where every other interface must have the same).
func (r *Reader) LinkType() LinkType { return r.linkType }

// pcapLinkType reads all 32 bits of the link type field of a pcap file
// header that pcapgo accepted. Its major version, which pcapgo checked to
// be 2, tells the writer's byte order.
func pcapLinkType(head []byte) LinkType {
	var order binary.ByteOrder = binary.BigEndian
	if binary.LittleEndian.Uint16(head[4:]) == 2 {
		order = binary.LittleEndian
	}
	return LinkType(order.Uint32(head[20:]) & 0x0fffffff) // the upper bits say whether frames carry an FCS
}

// Format is "pcap" or "pcapng".
func (r *Reader) Format() string { return r.format }

// Next returns the next record and its capture time. It returns io.EOF at
// the end and io.ErrUnexpectedEOF for a cut record.
func (r *Reader) Next() (data []byte, ts time.Time, err error) {
	data, ts, err = r.next()
	if err == io.EOF && len(data) > 0 {
		err = io.ErrUnexpectedEOF
	}
	return data, ts, err
}
