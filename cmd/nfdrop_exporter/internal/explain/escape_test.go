package explain

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// hostile carries terminal controls in an unparsed line and in a prefix: ESC
// sequences (clear screen, set title), an 8-bit CSI (U+009B), DEL, a
// right-to-left override and invalid UTF-8.
const hostile = "Nov 25 13:34:54 web1 kernel: \x1b[2J\x1b]0;owned\x07 IN=eth0 OUT= SRC=1.2.3.4 TTL=1 PROTO=TCP SPT=1 \u009b31m\x7f\u202e\xff\n" +
	"Nov 25 13:34:54 web1 kernel: \x1b[31mDROP\u202e IN=eth0 OUT= SRC=1.2.3.4 DST=5.6.7.8 LEN=40 TTL=1 PROTO=TCP SPT=1 DPT=2 WINDOW=0 RES=0x00 RST URGP=0\n"

// unsafeRune reports a rune that must not reach a terminal unescaped.
func unsafeRune(r rune) bool {
	return r != '\n' && r != '\t' && (r == utf8.RuneError || !strconv.IsPrint(r) && r != ' ')
}

func TestOutputEscapesControlCharacters(t *testing.T) {
	t.Run("table", func(t *testing.T) {
		var out bytes.Buffer
		if err := Run(Options{}, strings.NewReader(hostile), &out); err != nil {
			t.Fatal(err)
		}
		for i, r := range out.String() {
			if unsafeRune(r) {
				t.Fatalf("table output carries %U at byte %d:\n%q", r, i, out.String())
			}
		}
		for _, want := range []string{`\x1b[2J\x1b]0;owned\a`, `\u009b31m\x7f\u202e\xff`, `"\x1b[31mDROP\u202e"`} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("table output lacks the escaped form %s:\n%s", want, out.String())
			}
		}
	})
	t.Run("json", func(t *testing.T) {
		var out bytes.Buffer
		if err := Run(Options{Format: "json"}, strings.NewReader(hostile), &out); err != nil {
			t.Fatal(err)
		}
		var r Report
		if err := json.Unmarshal(out.Bytes(), &r); err != nil {
			t.Fatal(err)
		}
		if len(r.UnparsedLines) != 1 || r.Total != 1 {
			t.Fatalf("unparsed examples %d, total %d; want 1 and 1", len(r.UnparsedLines), r.Total)
		}
		for _, c := range r.UnparsedLines[0].Text {
			if unsafeRune(c) {
				t.Errorf("unparsed_lines text carries %U: %q", c, r.UnparsedLines[0].Text)
			}
		}
		// The prefix is the label value the exporter would export: kept
		// exactly (JSON escapes it), not rewritten.
		if len(r.Prefixes) != 1 || r.Prefixes[0].Prefix != "\x1b[31mDROP\u202e" {
			t.Errorf("prefixes %+v, want the raw prefix", r.Prefixes)
		}
	})
}

func TestEscape(t *testing.T) {
	for in, want := range map[string]string{
		"plain text: IN=eth0 OUT=": "plain text: IN=eth0 OUT=",
		"tab\there":                `tab\there`,
		"\x00\x1b\x7f":             `\x00\x1b\x7f`,
		"\u0085\u009b":             `\u0085\u009b`,
		"\u202e\u2066":             `\u202e\u2066`,
		"\xff\xc3":                 `\xff\xc3`,
		`back\slash`:               `back\\slash`,
		"Grüße ä 日本":               "Grüße ä 日本",
	} {
		if got := escape([]byte(in)); got != want {
			t.Errorf("escape(%q) = %s, want %s", in, got, want)
		}
	}
}
