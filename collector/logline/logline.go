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
// Four outcomes are kept apart so that nothing is dropped silently:
// NotFirewall (a line that is not a LOG line: ignored and counted), NotKernel
// (a line with the "IN=... OUT=" head that another program wrote), OK, and
// Unparsed (a LOG line, recognised by its "IN=... OUT=" head, that ends early or
// has a field the kernel never writes).
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

// Record is the result of parsing one LOG line. Prefix aliases the line (or
// the parser's JSON buffer) and is valid until the next Parse call.
type Record struct {
	Packet   packet.Packet
	Prefix   []byte // the rule's log prefix, untrimmed; may be empty
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
	r.Prefix = nil
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
			if looksLikeFirewall(line) {
				return Unparsed, ReasonBadJSON
			}
			return NotFirewall, ReasonNone
		}
		if !kernel {
			return notKernel(msg)
		}
		return parseMessage(msg, r)
	}
	msg, other := p.stripHeader(line, r)
	if other {
		return notKernel(msg)
	}
	return parseMessage(msg, r)
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
