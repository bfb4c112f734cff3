package capture

import (
	"encoding/binary"
	"fmt"
	"io"
	"time"
)

// pcap, libpcap's classic format: a 24-byte file header (magic, version,
// zone, accuracy, snapshot length, link type), then per record a 16-byte
// header (seconds, micro- or nanoseconds, captured length, original length)
// and the captured bytes.

func (r *Reader) openPcap() error {
	h := r.hdr[:24]
	if err := r.readFull(h); err != nil {
		return fmt.Errorf("pcap file header: %w", unexpected(err))
	}
	magic := binary.LittleEndian.Uint32(h)
	r.big = magic == pcapMicroBE || magic == pcapNanoBE
	r.nsPerUnit = 1000
	if magic == pcapNanoLE || magic == pcapNanoBE {
		r.nsPerUnit = 1
	}
	if major, minor := r.u16(h[4:]), r.u16(h[6:]); major != 2 || minor != 4 {
		return fmt.Errorf("pcap version %d.%d is not read (2.4 is, as every libpcap since 1998 writes)", major, minor)
	}
	// The header's snapshot length is not a bound: tcpdump and Wireshark
	// read longer records, and so does this reader, up to MaxRecord.
	r.linkType = LinkType(r.u32(h[20:]) & 0x0fffffff) // the upper bits say whether frames carry an FCS
	r.format = "pcap"
	r.next = r.nextPcap
	return nil
}

func (r *Reader) nextPcap() ([]byte, time.Time, error) {
	start := r.off
	h := r.hdr[:16]
	if err := r.readFull(h); err != nil {
		if err == io.EOF {
			return nil, time.Time{}, io.EOF
		}
		return nil, time.Time{}, r.failed(err)
	}
	caplen := r.u32(h[8:])
	if caplen > MaxRecord {
		return nil, time.Time{}, r.failed(corrupt("pcap record at byte %d claims %d bytes, more than the %d a record may have", start, caplen, MaxRecord))
	}
	data, err := r.record(int(caplen))
	if err != nil {
		return nil, time.Time{}, r.failed(err)
	}
	ts := time.Unix(int64(r.u32(h)), int64(r.u32(h[4:]))*r.nsPerUnit).UTC()
	return data, ts, nil
}
