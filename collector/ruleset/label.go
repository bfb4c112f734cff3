package ruleset

import (
	"strings"
	"unicode/utf8"
)

// LabelValue turns a table or chain name into valid UTF-8: a valid name is
// returned as it is, and each byte of an invalid sequence becomes \xNN.
// Distinct names can map to the same value (the bytes ff and the text
// "\xff"): whoever makes label values from them must sum such series.
func LabelValue(s string) string {
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
