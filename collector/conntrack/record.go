package conntrack

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
	"github.com/nfdrop/nfdrop_exporter/collector/capture"
)

// A recording of conntrack events is a pcap (or pcapng) capture of link
// type LINKTYPE_NETLINK (capture.LinkTypeNetlink), one record per datagram
// exactly as the event socket received it: netlink messages with their
// headers in the recording host's byte order, which is also what tcpdump
// writes on an nlmon device and what Wireshark decodes. RecordEvents writes
// one; ReplayEvents plays one back.

// ReplayEvents opens the recording at path as an event stream: it delivers
// the recorded datagrams in order, then io.EOF. It reports no drops.
func ReplayEvents(path string) (Events, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	r, err := capture.Open(bufio.NewReader(f))
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if r.LinkType() != capture.LinkTypeNetlink {
		f.Close()
		return nil, fmt.Errorf("%s: link type %d, want %d (netlink)", path, r.LinkType(), capture.LinkTypeNetlink)
	}
	return &replayEvents{f: f, r: r}, nil
}

type replayEvents struct {
	f *os.File
	r *capture.Reader
}

func (e *replayEvents) Receive() ([]byte, error) {
	b, _, err := e.r.Next()
	return b, err
}

func (e *replayEvents) Drops() (uint64, error) { return 0, nil }
func (e *replayEvents) Close() error           { return e.f.Close() }

// RecordEvents returns a stream that hands on what e delivers and writes
// every datagram to w as a record of a recording ReplayEvents reads.
func RecordEvents(e Events, w io.Writer) (Events, error) {
	pw := pcapgo.NewWriterNanos(w)
	if err := pw.WriteFileHeader(capture.MaxRecord, layers.LinkType(capture.LinkTypeNetlink)); err != nil {
		return nil, err
	}
	return &recordEvents{Events: e, w: pw}, nil
}

type recordEvents struct {
	Events
	w *pcapgo.Writer
}

func (r *recordEvents) Receive() ([]byte, error) {
	b, err := r.Events.Receive()
	if err == nil {
		ci := gopacket.CaptureInfo{Timestamp: time.Now(), CaptureLength: len(b), Length: len(b)}
		if werr := r.w.WritePacket(ci, b); werr != nil {
			return nil, fmt.Errorf("recording conntrack events: %w", werr)
		}
	}
	return b, err
}
