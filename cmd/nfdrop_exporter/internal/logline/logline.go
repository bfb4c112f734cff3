// Package logline parses the lines the kernel's LOG target (iptables/ip6tables
// -j LOG) and nftables' `log` statement write, in whatever wrapper they reach
// the operator: a syslog file, `journalctl -k` (short, short-iso, short-precise,
// short-monotonic, -o json), `dmesg` (with or without timestamps, -T, -x,
// --time-format=iso) or /dev/kmsg records.
//
// A line becomes a packet.Packet with exactly the fields the classifier reads,
// so offline reports use the exporter's own classification. Parsing never
// allocates (the only buffer, for JSON unescaping, is reused) and never panics.
//
// The outcomes are kept apart so that nothing is dropped silently:
// NotFirewall (a line that is not a LOG line: ignored and counted), NotKernel
// (a line with the "IN=... OUT=" head that another program wrote), OK,
// Unparsed (a LOG line, recognised by its "IN=... OUT=" head, that ends early or
// has a field the kernel never writes), and the lines journalctl writes about
// the journal itself: NoEntries ("-- No entries --") and JournalMeta (boot
// separators, "-- Logs begin at ...").
//
// Only the kernel's own lines count as packets. A syslog line tagged
// "name[pid]:" (sshd[123]:, ulogd[812]:, anything logger(1) writes) and a
// journal entry whose _TRANSPORT is not "kernel" are NotKernel: any local
// user can write such a line, so it is no evidence of a dropped packet.
package logline

import (
	"time"

	"github.com/nfdrop/nfdrop_exporter/collector/packet"
)

// Status is the outcome of parsing one line.
type Status uint8

const (
	NotFirewall Status = iota // not a kernel LOG line
	OK                        // Record is filled
	Unparsed                  // a LOG line that could not be understood; see Reason
	NotKernel                 // looks like a LOG line, but another program wrote it
	NoEntries                 // journalctl's "-- No entries --": nothing matched its filter
	JournalMeta               // another line journalctl writes about the journal: "-- Boot <id> --", ...
)

// Reason says why a LOG line was not understood.
type Reason uint8

const (
	ReasonNone      Reason = iota
	ReasonNoProto          // no PROTO= field and nothing else that identifies the packet
	ReasonBadProto         // PROTO= value the kernel never writes
	ReasonBadNumber        // a numeric field (LEN, SPT, DPT, FRAG) is not a number in range
	ReasonNoPorts          // TCP/UDP without SPT=/DPT= and without INCOMPLETE
	ReasonNoFlags          // TCP without the RES= ... URGP= flag section
	ReasonBadFlag          // an unknown word between RES= and URGP=
	ReasonBadJSON          // a journal JSON object whose MESSAGE cannot be decoded
	NumReasons
)

var reasonNames = [NumReasons]string{
	ReasonNone:      "none",
	ReasonNoProto:   "no PROTO= field",
	ReasonBadProto:  "unknown PROTO= value",
	ReasonBadNumber: "bad number",
	ReasonNoPorts:   "TCP/UDP line without SPT=/DPT= (cut short?)",
	ReasonNoFlags:   "TCP line without the RES= ... URGP= flags (cut short?)",
	ReasonBadFlag:   "unknown TCP flag word",
	ReasonBadJSON:   "undecodable journal JSON MESSAGE",
}

func (r Reason) String() string {
	if int(r) < len(reasonNames) {
		return reasonNames[r]
	}
	return "unknown"
}

// TimeKind says what Record's time means; lines from different tools carry
// different clocks, and only like can be compared.
type TimeKind uint8

const (
	TimeNone   TimeKind = iota
	TimeUptime          // seconds since boot: dmesg "[ 12.345]", /dev/kmsg, kern.log's bracket
	TimeNoYear          // traditional syslog "Nov 25 13:34:54": Time has year 0, local clock
	TimeWall            // a complete wall-clock time
)

// Format is the wrapper a line came in, so that a report names its input's
// real format.
type Format uint8

const (
	FormatBare        Format = iota // the kernel message alone, or a shape not recognised
	FormatSyslog                    // a syslog file: "Nov 25 13:34:54 host kernel: ..." (or an ISO time)
	FormatLOGEMU                    // ulogd2's LOGEMU file: a syslog time and host, no tag
	FormatDmesg                     // dmesg / journalctl -k with a bracketed uptime or ctime
	FormatKmsg                      // /dev/kmsg records
	FormatJournalJSON               // journalctl -o json
	FormatUlogdJSON                 // ulogd2's JSON output plugin
	NumFormats
)

var formatNames = [NumFormats]string{
	FormatBare:        "text",
	FormatSyslog:      "syslog",
	FormatLOGEMU:      "ulogd-logemu",
	FormatDmesg:       "dmesg",
	FormatKmsg:        "kmsg",
	FormatJournalJSON: "journal-json",
	FormatUlogdJSON:   "ulogd-json",
}

func (f Format) String() string {
	if f < NumFormats {
		return formatNames[f]
	}
	return "unknown"
}

// Record is the result of parsing one LOG line. Prefix, In and Out alias the
// line (or the parser's JSON buffer) and are valid until the next Parse call.
type Record struct {
	Packet packet.Packet // Src is filled from SRC= (zero when the line has none)
	Prefix []byte        // the rule's log prefix, untrimmed; may be empty
	In     []byte        // input interface (IN=), empty when none
	Out    []byte        // output interface (OUT=), empty when none
	// Repeat is how many packets the line stands for: N for rsyslog's
	// "message repeated N times: [...]", else 1.
	Repeat   uint32
	Format   Format
	TimeKind TimeKind
	Time     time.Time     // TimeNoYear, TimeWall
	Uptime   time.Duration // TimeUptime
}

// Parser holds the reusable buffer for journal JSON lines. The zero value is
// ready to use; a Parser is not safe for concurrent use.
type Parser struct {
	buf []byte

	haveMinute  bool
	minute      minuteKey
	minuteStart time.Time
}

// Parse parses one line (with or without its trailing newline) into r.
// r is fully overwritten when the status is OK; otherwise its content is
// unspecified. Reason is ReasonNone unless the status is Unparsed.
func (p *Parser) Parse(line []byte, r *Record) (Status, Reason) {
	line = trimEOL(line)
	r.Prefix, r.In, r.Out = nil, nil, nil
	r.Repeat = 1
	r.Format = FormatBare
	r.TimeKind = TimeNone
	r.Time = time.Time{}
	r.Uptime = 0

	i := skipSpace(line, 0)
	if i < len(line) && line[i] == '{' {
		msg, ok, isJSON, kernel := p.journalJSON(line[i:], r)
		if !isJSON {
			return NotFirewall, ReasonNone
		}
		if !ok {
			// no MESSAGE: ulogd2's JSON output has the packet's fields instead
			if st, reason, isUlogd := p.ulogdJSON(line[i:], r); isUlogd {
				r.Format = FormatUlogdJSON
				return st, reason
			}
			if looksLikeFirewall(line) {
				return Unparsed, ReasonBadJSON
			}
			return NotFirewall, ReasonNone
		}
		r.Format = FormatJournalJSON
		if !kernel {
			return notKernel(msg)
		}
		return parseMessage(p.repeated(msg, r), r)
	}
	if st, ok := journalctlLine(line); ok {
		return st, ReasonNone
	}
	msg, other := p.stripHeader(line, r)
	if other {
		return notKernel(msg)
	}
	return parseMessage(p.repeated(msg, r), r)
}

var repeatedKey = []byte("message repeated ")

// repeated unwraps rsyslog's duplicate suppression, "message repeated N
// times: [ msg]": the line stands for N packets. The kernel's uptime
// bracket may follow inside.
func (p *Parser) repeated(msg []byte, r *Record) []byte {
	if len(msg) < len(repeatedKey) || string(msg[:len(repeatedKey)]) != string(repeatedKey) {
		return msg
	}
	b := msg[len(repeatedKey):]
	j := 0
	for j < len(b) && isDigit(b[j]) {
		j++
	}
	n, ok := atou(b[:j], 1<<31)
	const times = " times: ["
	if !ok || n == 0 || len(b) < j+len(times) || string(b[j:j+len(times)]) != times {
		return msg
	}
	b = b[j+len(times):]
	if len(b) > 0 && b[len(b)-1] == ']' {
		b = b[:len(b)-1]
	}
	b = b[skipSpace(b, 0):]
	if k, d, ok := uptimeBracket(b); ok {
		if r.TimeKind == TimeNone {
			r.TimeKind, r.Uptime = TimeUptime, d
		}
		b = b[k:]
		b = b[skipSpace(b, 0):]
	}
	r.Repeat = n
	return b
}

// notKernel sorts a line another program wrote: NotKernel when it has the
// LOG head (so that the report can say why it was not counted), else
// NotFirewall like any other line.
func notKernel(msg []byte) (Status, Reason) {
	if looksLikeFirewall(msg) {
		return NotKernel, ReasonNone
	}
	return NotFirewall, ReasonNone
}

func trimEOL(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t') {
		i++
	}
	return i
}

// looksLikeFirewall is the cheap test for "this would have been a LOG line".
func looksLikeFirewall(b []byte) bool {
	_, ok := findIN(b)
	return ok
}
