// Package explain implements `nfdrop_exporter explain`: it classifies the
// drops already recorded in kernel LOG lines (iptables LOG, nftables log, in
// syslog files, journalctl -k output, dmesg) and in packet captures (NFLOG
// captures from `tcpdump -i nflog:N -w`, plain Ethernet/raw IP/Linux cooked
// captures) with the exporter's own classifier, and reports counts, shares and
// a plain-language verdict as a table or as JSON (schema in doc.go).
package explain

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop_exporter/internal/logline"
	"github.com/nfdrop/nfdrop_exporter/collector/capture"
	"github.com/nfdrop/nfdrop_exporter/collector/classify"
	"github.com/nfdrop/nfdrop_exporter/collector/packet"
	"github.com/nfdrop/nfdrop_exporter/collector/source"
)

// Options are the explain command's flags and arguments.
type Options struct {
	Format      string   // "table" (default) or "json"
	Ports       string   // --ports, the --collector.ports list; "" = classify.DefaultPorts
	MaxPrefixes int      // distinct prefix label values before "(other)"; 0 = classify.DefaultMaxPrefixes
	Files       []string // no file or "-" = stdin
	Width       int      // the verdict wraps at this many columns; 0 = 80
}

// maxExamples is how many unparsed lines are shown, with their line numbers.
const maxExamples = 5

// Run reads every input, classifies every packet and writes the report to
// stdout. An input that cannot be read (to the end) does not stop the
// others: the report covers them, says which input failed and why, and Run
// returns an error naming it. When no input could be read at all, the table
// format writes nothing and the returned error alone says why, once.
func Run(opts Options, stdin io.Reader, stdout io.Writer) error {
	switch opts.Format {
	case "", "table", "json":
	default:
		return fmt.Errorf("unknown --format %q: use table or json", opts.Format)
	}
	portList := opts.Ports
	if portList == "" {
		portList = classify.DefaultPorts
	}
	ports, err := classify.ParsePorts(portList)
	if err != nil {
		return fmt.Errorf("--ports: %w", err)
	}
	maxPrefixes := opts.MaxPrefixes
	if maxPrefixes == 0 {
		maxPrefixes = classify.DefaultMaxPrefixes
	}
	if err := classify.CheckMaxPrefixes("--max-prefixes", maxPrefixes); err != nil {
		return err
	}
	a := newAggregator(classify.NewClassifier(ports), maxPrefixes)

	files := opts.Files
	if len(files) == 0 {
		files = []string{"-"}
	}
	var failed []*input
	for _, name := range files {
		in := &input{name: displayName(name), format: "text"}
		a.inputs = append(a.inputs, in)
		if err := a.readInput(in, name, stdin); err != nil {
			in.err = err
			failed = append(failed, in)
		}
	}
	rep := a.report()
	width := opts.Width
	if width <= 0 {
		width = 80
	}
	nothingRead := len(failed) == len(files) && rep.Total == 0
	switch {
	case opts.Format == "json":
		err = writeJSON(stdout, rep)
	case nothingRead:
		// no empty table: the returned error says what went wrong
	default:
		err = writeTable(stdout, rep, width)
	}
	if err != nil {
		return err
	}
	if nothingRead {
		var reasons []string
		for _, in := range failed {
			reasons = append(reasons, in.name+": "+in.err.Error())
		}
		return errors.New(strings.Join(reasons, "; "))
	}
	if len(failed) > 0 {
		var names []string
		for _, in := range failed {
			names = append(names, in.name)
		}
		return fmt.Errorf("not all inputs could be read (%s); the report says why and covers the rest", strings.Join(names, ", "))
	}
	return nil
}

func displayName(name string) string {
	if name == "-" {
		return "(stdin)"
	}
	return name
}

// readInput opens one input and reads it as a capture or as text, by its
// first bytes (gzip-compressed inputs, such as rotated kern.log.2.gz, are
// decompressed first).
func (a *aggregator) readInput(in *input, name string, stdin io.Reader) error {
	var r io.Reader
	if name == "-" {
		// A terminal's end of input (Ctrl-D) is not sticky: the next read
		// would wait for more. Sniffing the format reads more than once.
		r = &stickyEOF{r: stdin}
	} else {
		f, err := os.Open(name)
		if err != nil {
			return withoutPath(err, name)
		}
		defer f.Close()
		r = f
	}
	br := bufio.NewReaderSize(r, 1<<16)
	magic, _ := br.Peek(4)
	if len(magic) >= 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return withoutPath(err, name)
		}
		defer zr.Close()
		br = bufio.NewReaderSize(zr, 1<<16)
		magic, _ = br.Peek(4)
	}
	cr, err := capture.Open(br)
	switch {
	case err == nil:
		in.format = cr.Format()
		return withoutPath(a.readCapture(in, cr), name)
	case !errors.Is(err, capture.ErrNotCapture):
		return withoutPath(err, name)
	}
	// the first 64 KiB decide whether this is text at all
	head, err := br.Peek(br.Size())
	if len(head) == 0 && err != nil && err != io.EOF {
		return withoutPath(err, name)
	}
	if what := binaryKind(head); what != "" {
		return fmt.Errorf("%w (%s)", errNotLog, what)
	}
	in.format = "text"
	return withoutPath(a.readText(in, br), name)
}

// errNotLog is the error for an input that is neither text nor a capture.
var errNotLog = errors.New("not a log or capture")

// binaryKind says what the start of an input is when it is not text: a
// compressed file explain does not decompress, or "binary data" when more
// than 1 in 100 bytes are control characters no log line has (executables,
// images, compressed data all have many). NUL bytes do not count: an
// unclean shutdown leaves runs of them in the middle of syslog files.
func binaryKind(head []byte) string {
	switch {
	case bytes.HasPrefix(head, []byte("\x28\xb5\x2f\xfd")):
		return "zstd-compressed; explain reads gzip: zstdcat FILE | nfdrop_exporter explain"
	case bytes.HasPrefix(head, []byte("\xfd7zXZ\x00")):
		return "xz-compressed; explain reads gzip: xzcat FILE | nfdrop_exporter explain"
	case len(head) >= 10 && string(head[:3]) == "BZh" && string(head[4:10]) == "1AY&SY":
		return "bzip2-compressed; explain reads gzip: bzcat FILE | nfdrop_exporter explain"
	}
	controls := 0
	for _, c := range head {
		if c < 0x20 && c != 0 && c != '\t' && c != '\n' && c != '\v' && c != '\f' && c != '\r' && c != '\b' && c != 0x1b || c == 0x7f {
			controls++
		}
	}
	if controls*100 > len(head) {
		return "binary data"
	}
	return ""
}

// withoutPath drops the operation and path that an *fs.PathError repeats
// ("open /x: no such file or directory"): the report and the error already
// name the input.
func withoutPath(err error, name string) error {
	if pe, ok := err.(*fs.PathError); ok && pe.Path == name {
		return pe.Err
	}
	return err
}

// maxLine bounds one text line; the kernel's own limit is 1 KiB, journal JSON
// objects are a few KiB. Longer lines are cut, not dropped.
const maxLine = 1 << 20

func (a *aggregator) readCapture(in *input, pr *capture.Reader) error {
	lt := pr.LinkType()
	if !supportedLinkType(lt) {
		return fmt.Errorf("%s link type %d is not supported (NFLOG %d, Ethernet %d, raw IP %d/%d/%d, Linux cooked %d/%d)", pr.Format(), lt,
			capture.LinkTypeNFLOG, capture.LinkTypeEthernet, capture.LinkTypeRaw, capture.LinkTypeIPv4, capture.LinkTypeIPv6, capture.LinkTypeLinuxSLL, capture.LinkTypeLinuxSLL2)
	}
	var (
		m   source.Message
		pkt packet.Packet
	)
	for {
		data, ts, err := pr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("record %d: %w", in.lines+1, err)
		}
		in.lines++
		var prefix, inDev, outDev []byte
		if lt == capture.LinkTypeNFLOG {
			if err := source.ParseNFLOGRecord(data, &m); err != nil {
				in.unparsed++
				a.unparsed(in, in.lines, "NFLOG record: "+err.Error(), nil)
				continue
			}
			packet.Decode(m.Payload, m.FamilyHint(), &pkt)
			prefix = m.Prefix
			if m.HasTimestamp {
				// the record time is libpcap's read time, up to a batch late
				ts = time.Unix(0, m.TimestampNs)
			}
			inDev, outDev = a.ifNames(data)
		} else {
			ip, fam, ok := frame(lt, data)
			if !ok {
				in.ignored++
				continue
			}
			packet.Decode(ip, fam, &pkt)
		}
		in.packets++
		a.add(&pkt, prefix, inDev, outDev, 1, ts)
		a.span.observe(logline.TimeWall, ts, 0)
	}
}

// input is what one file contributed.
type input struct {
	name     string
	format   string
	lines    uint64 // text lines or capture records
	packets  uint64
	ignored  uint64
	unparsed uint64
	// notKernel: lines with the LOG head that another program wrote
	notKernel uint64
	// journalMeta: lines journalctl wrote about the journal, not messages;
	// noEntries: one of them was "-- No entries --"
	journalMeta uint64
	noEntries   bool
	formats     [logline.NumFormats]uint64 // packets' lines by wrapper
	err         error                      // why the input could not be read (to the end)
}

// formatName is the input's format: a capture's, else the wrapper most of
// its packet lines came in, else "journalctl" for journalctl's output
// without a packet.
func (in *input) formatName() string {
	if in.format != "text" {
		return in.format
	}
	if in.packets == 0 && in.journalMeta > 0 {
		return "journalctl"
	}
	best := logline.FormatBare
	for f, n := range in.formats {
		if n > in.formats[best] {
			best = logline.Format(f)
		}
	}
	return best.String()
}

type example struct {
	input  string
	line   uint64
	reason string
	text   string
}

// aggregator counts packets per nfdrop_packets_total series minus group,
// keyed like the exporter's counter table, so that explain and the exporter
// label a packet alike.
type aggregator struct {
	classifier *classify.Classifier
	prefixes   *classify.PrefixTable
	counts     map[classify.Key]uint64
	inputs     []*input
	examples   []example
	span       span
	who        [numGroups]*who
	ifBuf      [2][16]byte // "if<index>" names of NFLOG captures
}

// newAggregator needs maxPrefixes checked by classify.CheckMaxPrefixes.
func newAggregator(c *classify.Classifier, maxPrefixes int) *aggregator {
	return &aggregator{
		classifier: c,
		prefixes:   classify.NewPrefixTable(maxPrefixes),
		counts:     make(map[classify.Key]uint64),
		who:        [numGroups]*who{newWho(), newWho()},
	}
}

// add counts n packets like p, logged with rawPrefix on interfaces in/out at ts.
func (a *aggregator) add(p *packet.Packet, rawPrefix, in, out []byte, n uint64, ts time.Time) {
	prefix := a.prefixes.Index(classify.TrimPrefix(rawPrefix))
	k := a.classifier.Key(p)
	a.counts[k.WithPrefix(prefix)] += n
	g := groupOther
	if k.Class() == classify.ClassTeardown {
		g = groupTeardown
	}
	a.who[g].observe(p, k.Class(), prefix, in, out, n, ts)
}

// syslogEpoch moves a year-less syslog time (year 0) to the year 2000, the
// same calendar 2000 years on, so that it fits the sketch's nanoseconds.
var syslogEpoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC).Unix() - time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC).Unix()

// stamp is the record's time for first/last seen, on its own clock: the
// report shows them on the clock of its time span.
func (a *aggregator) stamp(r *logline.Record) time.Time {
	switch r.TimeKind {
	case logline.TimeWall:
		return r.Time
	case logline.TimeNoYear:
		return time.Unix(r.Time.Unix()+syslogEpoch, int64(r.Time.Nanosecond())).In(r.Time.Location())
	case logline.TimeUptime:
		return time.Unix(0, int64(r.Uptime))
	}
	return noTime
}

// noTime marks a line without a time; renderStamp writes it as "".
var noTime = time.Unix(0, math.MinInt64)

func (a *aggregator) unparsed(in *input, line uint64, reason string, text []byte) {
	if len(a.examples) >= maxExamples {
		return
	}
	text = bytes.TrimRight(text, "\r\n")
	const maxText = 300
	s := escape(text[:min(len(text), maxText)])
	if len(text) > maxText {
		s += "..."
	}
	a.examples = append(a.examples, example{input: in.name, line: line, reason: reason, text: s})
}

// escape makes bytes from a log line safe to print: control characters
// (C0, DEL, C1), other unprintable runes such as bidirectional overrides, and
// invalid UTF-8 are written as Go escapes (\x1b, \u202e), and a backslash as
// \\, so a hostile line cannot drive the terminal that reads the report.
func escape(b []byte) string {
	var out strings.Builder
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(&out, `\x%02x`, b[0])
		case r == '\\':
			out.WriteString(`\\`)
		case strconv.IsPrint(r):
			out.Write(b[:n])
		default:
			q := strconv.QuoteRune(r) // '\x1b', '\u202e'
			out.WriteString(q[1 : len(q)-1])
		}
		b = b[n:]
	}
	return out.String()
}

// span tracks the first and last time seen per clock. Lines from different
// tools carry different clocks (wall, year-less syslog, uptime); the report
// uses the best one present.
type span struct {
	have        [4]bool
	first, last [4]time.Time
	firstUp     time.Duration
	lastUp      time.Duration
}

func (s *span) observe(k logline.TimeKind, t time.Time, up time.Duration) {
	if k == logline.TimeNone || int(k) >= len(s.have) {
		return
	}
	if k == logline.TimeUptime {
		if !s.have[k] || up < s.firstUp {
			s.firstUp = up
		}
		if !s.have[k] || up > s.lastUp {
			s.lastUp = up
		}
		s.have[k] = true
		return
	}
	if !s.have[k] || t.Before(s.first[k]) {
		s.first[k] = t
	}
	if !s.have[k] || t.After(s.last[k]) {
		s.last[k] = t
	}
	s.have[k] = true
}

// stickyEOF ends at the first end of input for good.
type stickyEOF struct {
	r   io.Reader
	eof bool
}

func (s *stickyEOF) Read(p []byte) (int, error) {
	if s.eof {
		return 0, io.EOF
	}
	n, err := s.r.Read(p)
	if err == io.EOF {
		s.eof = true
	}
	return n, err
}
