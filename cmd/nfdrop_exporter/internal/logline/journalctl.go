package logline

import "bytes"

// journalctl writes lines of its own among the messages, in every short
// output mode (the strings of systemd's journalctl):
//
//	-- No entries --                                   nothing matched
//	-- Boot 0123456789abcdef0123456789abcdef --        between boots ("-- Reboot --" in older versions)
//	-- Logs begin at <time>, end at <time>. --         at the top, older versions
//	-- Journal begins at <time>, ends at <time>. --    at the top, later versions
//	-- cursor: s=...;i=...                             with --show-cursor
//
// On a terminal (or with SYSTEMD_COLORS) the boot line is wrapped in
// colour escapes.
var (
	noEntries      = []byte("-- No entries --")
	reboot         = []byte("-- Reboot --")
	bootPrefix     = []byte("-- Boot ")
	logsBegin      = []byte("-- Logs begin at ")
	journalBegins  = []byte("-- Journal begins at ")
	cursorPrefix   = []byte("-- cursor: ")
	journalctlTail = []byte(" --")
)

// journalctlLine returns NoEntries or JournalMeta for a line journalctl
// wrote about the journal, and ok false for any other line.
func journalctlLine(line []byte) (st Status, ok bool) {
	b := stripColour(line)
	if len(b) < 3 || b[0] != '-' || b[1] != '-' || b[2] != ' ' {
		return NotFirewall, false
	}
	switch {
	case bytes.Equal(b, noEntries):
		return NoEntries, true
	case bytes.Equal(b, reboot):
		return JournalMeta, true
	case len(b) == len(bootPrefix)+32+len(journalctlTail) && bytes.HasPrefix(b, bootPrefix) && bytes.HasSuffix(b, journalctlTail) &&
		isBootID(b[len(bootPrefix):len(b)-len(journalctlTail)]):
		return JournalMeta, true
	case (bytes.HasPrefix(b, logsBegin) || bytes.HasPrefix(b, journalBegins)) && bytes.HasSuffix(b, journalctlTail):
		return JournalMeta, true
	case bytes.HasPrefix(b, cursorPrefix) && !bytes.ContainsAny(b[len(cursorPrefix):], " \t"):
		return JournalMeta, true
	}
	return NotFirewall, false
}

// isBootID: 32 lower-case hex digits (SD_ID128_FORMAT_STR).
func isBootID(b []byte) bool {
	if len(b) != 32 {
		return false
	}
	for _, c := range b {
		if !isDigit(c) && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// stripColour removes SGR escapes ("\x1b[0;1;39m", "\x1b[0m") at both ends.
func stripColour(b []byte) []byte {
	for len(b) > 2 && b[0] == 0x1b && b[1] == '[' {
		i := 2
		for i < len(b) && (isDigit(b[i]) || b[i] == ';') {
			i++
		}
		if i == len(b) || b[i] != 'm' {
			break
		}
		b = b[i+1:]
	}
	for len(b) > 2 && b[len(b)-1] == 'm' {
		i := len(b) - 2
		for i >= 0 && (isDigit(b[i]) || b[i] == ';') {
			i--
		}
		if i < 1 || b[i] != '[' || b[i-1] != 0x1b {
			break
		}
		b = b[:i-1]
	}
	return b
}
