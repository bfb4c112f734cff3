package logline

import (
	"time"
	"unicode/utf16"
	"unicode/utf8"
)

// journalJSON reads one `journalctl -o json` object: the MESSAGE field (a JSON
// string, or an array of byte values when journald considered the message
// binary), __REALTIME_TIMESTAMP (microseconds since the epoch, as a string)
// and _TRANSPORT. isJSON is false when b is not a JSON object at all; ok is
// false when it is one but has no decodable MESSAGE; kernel is true when
// _TRANSPORT is "kernel" (journald sets it; no client can). The message is
// decoded into p.buf.
func (p *Parser) journalJSON(b []byte, r *Record) (msg []byte, ok, isJSON, kernel bool) {
	i := skipWS(b, 0)
	if i >= len(b) || b[i] != '{' {
		return nil, false, false, false
	}
	i++
	found := false
	for {
		i = skipWS(b, i)
		if i >= len(b) {
			return nil, false, true, false
		}
		if b[i] == '}' {
			break
		}
		if b[i] == ',' {
			i++
			continue
		}
		if b[i] != '"' {
			return nil, false, true, false
		}
		ks, ke, next, good := rawString(b, i)
		if !good {
			return nil, false, true, false
		}
		key := b[ks:ke]
		i = skipWS(b, next)
		if i >= len(b) || b[i] != ':' {
			return nil, false, true, false
		}
		i = skipWS(b, i+1)
		if i >= len(b) {
			return nil, false, true, false
		}
		switch string(key) {
		case "MESSAGE":
			var good bool
			i, good = p.message(b, i)
			if !good {
				return nil, false, true, false
			}
			found = true
			continue
		case "_TRANSPORT":
			if b[i] == '"' {
				if vs, ve, _, good := rawString(b, i); good {
					kernel = string(b[vs:ve]) == "kernel"
				}
			}
		case "__REALTIME_TIMESTAMP":
			if b[i] == '"' {
				vs, ve, _, good := rawString(b, i)
				if good {
					if us, good := atou64(b[vs:ve]); good {
						r.TimeKind = TimeWall
						r.Time = time.UnixMicro(int64(us))
					}
				}
			}
		}
		var good2 bool
		i, good2 = skipValue(b, i, 0)
		if !good2 {
			return nil, false, true, false
		}
	}
	if !found {
		return nil, false, true, false
	}
	return p.buf, true, true, kernel
}

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

func atou64(v []byte) (uint64, bool) {
	if len(v) == 0 || len(v) > 19 {
		return 0, false
	}
	return digits(v)
}

// rawString finds the JSON string starting at b[i] == '"': the raw content
// b[s:e] (escapes not decoded) and the index after the closing quote.
func rawString(b []byte, i int) (s, e, next int, ok bool) {
	i++
	s = i
	for i < len(b) {
		switch b[i] {
		case '\\':
			i += 2
			continue
		case '"':
			return s, i, i + 1, true
		}
		i++
	}
	return 0, 0, 0, false
}

// skipValue skips any JSON value starting at b[i]; depth bounds nesting so a
// hostile line cannot recurse deeply.
func skipValue(b []byte, i, depth int) (int, bool) {
	if i >= len(b) || depth > 32 {
		return 0, false
	}
	switch b[i] {
	case '"':
		_, _, next, ok := rawString(b, i)
		return next, ok
	case '{', '[':
		closing := byte('}')
		if b[i] == '[' {
			closing = ']'
		}
		i++
		for {
			i = skipWS(b, i)
			if i >= len(b) {
				return 0, false
			}
			switch b[i] {
			case closing:
				return i + 1, true
			case ',', ':':
				i++
				continue
			}
			var ok bool
			i, ok = skipValue(b, i, depth+1)
			if !ok {
				return 0, false
			}
		}
	}
	// number, true, false, null
	s := i
	for i < len(b) && b[i] != ',' && b[i] != '}' && b[i] != ']' && b[i] != ' ' && b[i] != '\n' {
		i++
	}
	return i, i > s
}

// message decodes the MESSAGE value at b[i] into p.buf.
func (p *Parser) message(b []byte, i int) (int, bool) {
	p.buf = p.buf[:0]
	switch b[i] {
	case '"':
		s, e, next, ok := rawString(b, i)
		if !ok {
			return 0, false
		}
		if !p.unescape(b[s:e]) {
			return 0, false
		}
		return next, true
	case '[':
		i++
		for {
			i = skipWS(b, i)
			if i >= len(b) {
				return 0, false
			}
			switch b[i] {
			case ']':
				return i + 1, true
			case ',':
				i++
				continue
			}
			s := i
			for i < len(b) && isDigit(b[i]) {
				i++
			}
			n, ok := atou(b[s:i], 255)
			if !ok {
				return 0, false
			}
			p.buf = append(p.buf, byte(n))
		}
	}
	return 0, false
}

func (p *Parser) unescape(s []byte) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' {
			p.buf = append(p.buf, c)
			continue
		}
		i++
		if i >= len(s) {
			return false
		}
		switch s[i] {
		case '"', '\\', '/':
			p.buf = append(p.buf, s[i])
		case 'b':
			p.buf = append(p.buf, '\b')
		case 'f':
			p.buf = append(p.buf, '\f')
		case 'n':
			p.buf = append(p.buf, '\n')
		case 'r':
			p.buf = append(p.buf, '\r')
		case 't':
			p.buf = append(p.buf, '\t')
		case 'u':
			r, ok := hex4(s, i+1)
			if !ok {
				return false
			}
			i += 4
			if utf16.IsSurrogate(r) {
				if r2, ok := hex4(s, i+3); ok && i+2 < len(s) && s[i+1] == '\\' && s[i+2] == 'u' {
					if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
						r = d
						i += 6
					}
				}
			}
			p.buf = utf8.AppendRune(p.buf, r)
		default:
			return false
		}
	}
	return true
}

func hex4(s []byte, i int) (rune, bool) {
	if i < 0 || i+4 > len(s) {
		return 0, false
	}
	var r rune
	for _, c := range s[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			r = r*16 + rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r*16 + rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r*16 + rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}
