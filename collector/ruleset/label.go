package ruleset

import (
	"strings"
	"unicode/utf8"
)

// Printable turns a table, chain or set name into valid UTF-8 for messages
// and commands: a valid name is returned as it is, and each byte of an
// invalid sequence becomes \xNN. (Label values are made by
// classify.LabelText.)
func Printable(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	for len(s) > 0 {
		r, n := utf8.DecodeRuneInString(s)
		if r == utf8.RuneError && n <= 1 {
			const digits = "0123456789abcdef"
			b.WriteString(`\x`)
			b.WriteByte(digits[s[0]>>4])
			b.WriteByte(digits[s[0]&0xf])
			s = s[1:]
			continue
		}
		b.WriteString(s[:n])
		s = s[n:]
	}
	return b.String()
}
