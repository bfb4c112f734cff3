package logline

import "time"

// stripHeader removes what syslog, journalctl, dmesg or /dev/kmsg put in front
// of the kernel's message and records the time it finds there. It removes only
// shapes it recognises exactly; anything else stays in front of "IN=" and so
// becomes part of the prefix, which is visible in the report rather than lost.
// other is true when the syslog tag names a program other than the kernel.
func (p *Parser) stripHeader(b []byte, r *Record) (msg []byte, other bool) {
	// /dev/kmsg: "PRI,SEQ,USEC,FLAGS[,...];message"
	if n, us, ok := kmsgHeader(b); ok {
		r.TimeKind, r.Uptime = TimeUptime, time.Duration(us)*time.Microsecond
		r.Format = FormatKmsg
		return b[n:], false
	}
	// dmesg -r / raw printk level: "<4>"
	if len(b) > 2 && b[0] == '<' {
		j := 1
		for j < len(b) && j < 5 && isDigit(b[j]) {
			j++
		}
		if j > 1 && j < len(b) && b[j] == '>' {
			b = b[j+1:]
		}
	}
	// dmesg -x: "kern  :warn  : "
	if n := dmesgFacility(b); n > 0 {
		b = b[n:]
	}
	syslogStamp := false
	if n, t, ok := p.isoTime(b); ok {
		r.TimeKind, r.Time = TimeWall, t
		// dmesg --time-format=iso writes a comma before the fraction and no host
		b, syslogStamp = b[n:], !(len(b) > 19 && b[19] == ',')
		r.Format = FormatDmesg
	} else if n, t, ok := p.syslogTime(b); ok {
		r.TimeKind, r.Time = TimeNoYear, t
		b, syslogStamp = b[n:], true
	} else if n, t, ok := ctimeBracket(b); ok { // dmesg -T
		r.TimeKind, r.Time = TimeWall, t
		b = b[n:]
		r.Format = FormatDmesg
	} else if n, d, ok := uptimeBracket(b); ok { // dmesg, journalctl -o short-monotonic
		r.TimeKind, r.Uptime = TimeUptime, d
		b = b[n:]
		r.Format = FormatDmesg
	}
	b = b[skipSpace(b, 0):]
	if syslogStamp {
		// "host tag: " always follows a syslog timestamp.
		_, rest := token(b)
		b = rest
		r.Format = FormatLOGEMU // ulogd2 writes no tag
		if tok, rest := token(b); isTag(tok) {
			b, other = rest, !isKernelTag(tok)
			r.Format = FormatSyslog
		}
	} else if host, rest := token(b); len(host) > 0 && !isTag(host) {
		// journalctl -o short-monotonic: "[ 12.3] host kernel: msg"
		if tok, rest2 := token(rest); isKernelTag(tok) {
			b = rest2
		} else if isProgramTag(tok) {
			b, other = rest2, true
		}
	} else if isKernelTag(host) {
		b = rest
	}
	// kern.log via rsyslog imklog keeps the printk time: "kernel: [ 12.345] msg"
	if n, d, ok := uptimeBracket(b); ok {
		if r.TimeKind == TimeNone {
			r.TimeKind, r.Uptime = TimeUptime, d
		}
		b = b[n:]
		b = b[skipSpace(b, 0):]
	}
	return b, other
}

// token returns the first space-separated token of b and the rest after the
// spaces that follow it.
func token(b []byte) (tok, rest []byte) {
	i := 0
	for i < len(b) && b[i] != ' ' {
		i++
	}
	return b[:i], b[skipSpace(b, i):]
}

func isKernelTag(t []byte) bool { return string(t) == "kernel:" }

// isTag matches the syslog tag of a kernel line, "kernel:", or of a program,
// "name[pid]:". A bare "name:" is not taken: ulogd's LOGEMU file writes
// "time host PREFIX IN=...", and a prefix such as "DROP:" must stay the
// prefix.
func isTag(t []byte) bool { return isKernelTag(t) || isProgramTag(t) }

// isProgramTag matches "name[pid]:", the tag syslog(3) writes for a program.
func isProgramTag(t []byte) bool {
	if len(t) < 5 || t[len(t)-1] != ':' || t[len(t)-2] != ']' {
		return false
	}
	t = t[:len(t)-2]
	j := len(t) - 1
	for j >= 0 && isDigit(t[j]) {
		j--
	}
	if j < 1 || t[j] != '[' || j == len(t)-1 {
		return false
	}
	for _, c := range t[:j] {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || isDigit(c) || c == '-' || c == '_' || c == '.' || c == '/') {
			return false
		}
	}
	return true
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// num parses b[i:i+n] as exactly n decimal digits.
func num(b []byte, i, n int) (int, bool) {
	if i < 0 || i+n > len(b) {
		return 0, false
	}
	v := 0
	for _, c := range b[i : i+n] {
		if !isDigit(c) {
			return 0, false
		}
		v = v*10 + int(c-'0')
	}
	return v, true
}

// frac parses an optional ".123456" / ",123456" fraction at b[i:] into
// nanoseconds; it returns the index after it.
func frac(b []byte, i int) (int, int) {
	if i >= len(b) || (b[i] != '.' && b[i] != ',') || i+1 >= len(b) || !isDigit(b[i+1]) {
		return i, 0
	}
	i++
	ns, scale := 0, 100000000
	for i < len(b) && isDigit(b[i]) {
		ns += int(b[i]-'0') * scale
		scale /= 10
		i++
	}
	return i, ns
}

func kmsgHeader(b []byte) (int, int64, bool) {
	// PRI
	i := 0
	for i < len(b) && isDigit(b[i]) {
		i++
	}
	if i == 0 || i >= len(b) || b[i] != ',' {
		return 0, 0, false
	}
	i++
	s := i // SEQ
	for i < len(b) && isDigit(b[i]) {
		i++
	}
	if i == s || i >= len(b) || b[i] != ',' {
		return 0, 0, false
	}
	i++
	s = i // USEC
	var us int64
	for i < len(b) && isDigit(b[i]) && i-s < 18 {
		us = us*10 + int64(b[i]-'0')
		i++
	}
	if i == s || i >= len(b) || b[i] != ',' {
		return 0, 0, false
	}
	for i < len(b) && b[i] != ';' && b[i] != ' ' {
		i++
	}
	if i >= len(b) || b[i] != ';' {
		return 0, 0, false
	}
	return i + 1, us, true
}

// dmesgFacility matches dmesg -x's "kern  :warn  : ".
func dmesgFacility(b []byte) int {
	if len(b) < 5 || string(b[:4]) != "kern" {
		return 0
	}
	i := skipSpace(b, 4)
	if i >= len(b) || b[i] != ':' {
		return 0
	}
	i++
	s := i
	for i < len(b) && b[i] >= 'a' && b[i] <= 'z' {
		i++
	}
	if i == s {
		return 0
	}
	i = skipSpace(b, i)
	if i >= len(b) || b[i] != ':' {
		return 0
	}
	return skipSpace(b, i+1)
}

func month(b []byte, i int) (time.Month, bool) {
	if i+3 > len(b) {
		return 0, false
	}
	switch string(b[i : i+3]) {
	case "Jan":
		return time.January, true
	case "Feb":
		return time.February, true
	case "Mar":
		return time.March, true
	case "Apr":
		return time.April, true
	case "May":
		return time.May, true
	case "Jun":
		return time.June, true
	case "Jul":
		return time.July, true
	case "Aug":
		return time.August, true
	case "Sep":
		return time.September, true
	case "Oct":
		return time.October, true
	case "Nov":
		return time.November, true
	case "Dec":
		return time.December, true
	}
	return 0, false
}

// clock parses "hh:mm:ss" at b[i:].
func clock(b []byte, i int) (h, m, s int, ok bool) {
	if i+8 > len(b) || b[i+2] != ':' || b[i+5] != ':' {
		return 0, 0, 0, false
	}
	h, ok1 := num(b, i, 2)
	m, ok2 := num(b, i+3, 2)
	s, ok3 := num(b, i+6, 2)
	return h, m, s, ok1 && ok2 && ok3 && h < 24 && m < 60 && s < 61
}

// syslogTime parses RFC 3164 "Nov 25 13:34:54" / "Nov  5 13:34:54" with an
// optional fraction (journalctl -o short-precise), followed by a space.
func (p *Parser) syslogTime(b []byte) (int, time.Time, bool) {
	mo, ok := month(b, 0)
	if !ok || len(b) < 16 || b[3] != ' ' {
		return 0, time.Time{}, false
	}
	var day int
	if b[4] == ' ' {
		day, ok = num(b, 5, 1)
	} else {
		day, ok = num(b, 4, 2)
	}
	if !ok || day < 1 || day > 31 || b[6] != ' ' {
		return 0, time.Time{}, false
	}
	h, m, s, ok := clock(b, 7)
	if !ok {
		return 0, time.Time{}, false
	}
	i, ns := frac(b, 15)
	if i >= len(b) || b[i] != ' ' {
		return 0, time.Time{}, false
	}
	return i + 1, p.date(0, mo, day, h, m, time.Local).Add(time.Duration(s)*time.Second + time.Duration(ns)), true
}

// isoTime parses "2026-11-25T13:34:54[.frac][Z|+hh:mm|+hhmm]" followed by a
// space (rsyslog RFC 3339, journalctl -o short-iso[-precise], dmesg
// --time-format=iso which uses a comma before the fraction).
func (p *Parser) isoTime(b []byte) (int, time.Time, bool) {
	if len(b) < 20 || b[4] != '-' || b[7] != '-' || (b[10] != 'T' && b[10] != ' ') {
		return 0, time.Time{}, false
	}
	y, ok1 := num(b, 0, 4)
	mo, ok2 := num(b, 5, 2)
	d, ok3 := num(b, 8, 2)
	h, m, s, ok4 := clock(b, 11)
	if !(ok1 && ok2 && ok3 && ok4) || mo < 1 || mo > 12 || d < 1 || d > 31 {
		return 0, time.Time{}, false
	}
	i, ns := frac(b, 19)
	loc, off := time.Local, 0
	if i < len(b) && b[i] == 'Z' {
		loc = time.UTC
		i++
	} else if i < len(b) && (b[i] == '+' || b[i] == '-') {
		sign := 1
		if b[i] == '-' {
			sign = -1
		}
		oh, ok := num(b, i+1, 2)
		if !ok {
			return 0, time.Time{}, false
		}
		j := i + 3
		if j < len(b) && b[j] == ':' {
			j++
		}
		om, ok := num(b, j, 2)
		if !ok {
			return 0, time.Time{}, false
		}
		off = sign * (oh*3600 + om*60)
		loc = time.UTC
		i = j + 2
	}
	if i >= len(b) || b[i] != ' ' {
		return 0, time.Time{}, false
	}
	t := p.date(y, time.Month(mo), d, h, m, loc).Add(time.Duration(s)*time.Second + time.Duration(ns))
	if loc == time.UTC {
		t = t.Add(-time.Duration(off) * time.Second)
	}
	return i + 1, t, true
}

// ctimeBracket parses dmesg -T's "[Wed Nov 25 13:34:54 2026] ".
func ctimeBracket(b []byte) (int, time.Time, bool) {
	if len(b) < 26 || b[0] != '[' || b[4] != ' ' || b[8] != ' ' {
		return 0, time.Time{}, false
	}
	mo, ok := month(b, 5)
	if !ok {
		return 0, time.Time{}, false
	}
	var day int
	if b[9] == ' ' {
		day, ok = num(b, 10, 1)
	} else {
		day, ok = num(b, 9, 2)
	}
	if !ok || day < 1 || day > 31 || b[11] != ' ' {
		return 0, time.Time{}, false
	}
	h, m, s, ok := clock(b, 12)
	if !ok || b[20] != ' ' || b[25] != ']' {
		return 0, time.Time{}, false
	}
	y, ok := num(b, 21, 4)
	if !ok {
		return 0, time.Time{}, false
	}
	return 26, time.Date(y, mo, day, h, m, s, 0, time.Local), true
}

// uptimeBracket parses the printk time "[ 1485.392167]" (seconds since boot).
func uptimeBracket(b []byte) (int, time.Duration, bool) {
	if len(b) < 4 || b[0] != '[' {
		return 0, 0, false
	}
	i := skipSpace(b, 1)
	s := i
	var sec int64
	for i < len(b) && isDigit(b[i]) && i-s < 12 {
		sec = sec*10 + int64(b[i]-'0')
		i++
	}
	if i == s || i >= len(b) || b[i] != '.' {
		return 0, 0, false
	}
	i, ns := frac(b, i)
	if i >= len(b) || b[i] != ']' {
		return 0, 0, false
	}
	return i + 1, time.Duration(sec)*time.Second + time.Duration(ns), true
}

// minuteKey identifies the minute of a parsed timestamp.
type minuteKey struct {
	y, d, h, m int
	mo         time.Month
	loc        *time.Location
}

// date returns the start of the given minute. Consecutive log lines almost
// always share it, so the result of time.Date (the costly part of reading a
// timestamp) is kept for the next line.
func (p *Parser) date(y int, mo time.Month, d, h, m int, loc *time.Location) time.Time {
	k := minuteKey{y, d, h, m, mo, loc}
	if p.haveMinute && k == p.minute {
		return p.minuteStart
	}
	p.minute, p.minuteStart, p.haveMinute = k, time.Date(y, mo, d, h, m, 0, 0, loc), true
	return p.minuteStart
}
