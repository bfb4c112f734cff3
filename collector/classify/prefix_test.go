package classify

import (
	"fmt"
	"strings"
	"testing"
)

func TestPrefixLabel(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"denied", "denied"},
		{"caf\xe4", "caf\uFFFD"},           // Latin-1 ä
		{"caf\xe4\xe4", "caf\uFFFD\uFFFD"}, // one U+FFFD per byte
		{"caf\xc3", "caf\uFFFD"},           // UTF-8 cut short, as a 64-byte iptables prefix may be
		{"café", "café"},                   // valid UTF-8 stays
		{"(other)", "((other))"},           // the overflow value is reserved
		{"((other))", "(((other)))"},       // and so every nesting of it
		{"(other", "(other"},               // not in parentheses
		{"(others)", "(others)"},           // not "other"
		{"(dmz) other", "(dmz) other"},     //
		{"(\xe4other)", "(\uFFFDother)"},   //
		{"", ""},                           //
		{"()", "()"},                       //
	} {
		if got := PrefixLabel([]byte(tc.in)); got != tc.want {
			t.Errorf("PrefixLabel(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestPrefixTableSanitizes(t *testing.T) {
	p := NewPrefixTable(3)
	for _, tc := range []struct {
		in   string
		want uint8
	}{
		{"caf\xe4", 1}, {"caf\xe5", 1}, // one label value, one index
		{"(other)", 2},   // a real prefix, not the overflow
		{"caf\uFFFD", 1}, // already the label value of index 1
		{"x", 3}, {"y", 0}, {"caf\xe4", 1}, {"(other)", 2},
	} {
		if got := p.Index([]byte(tc.in)); got != tc.want {
			t.Errorf("Index(%q) = %d, want %d", tc.in, got, tc.want)
		}
	}
	if got := strings.Join(p.Names(), "|"); got != "(other)|caf\uFFFD|((other))|x" {
		t.Errorf("names %q", got)
	}
	for _, in := range []string{"caf\xe4", "caf\xe5", "y"} { // seen before, sanitized or overflowed
		b := []byte(in)
		if n := testing.AllocsPerRun(100, func() { p.Index(b) }); n != 0 {
			t.Errorf("Index(%q) allocates %v times", in, n)
		}
	}
}

func TestCheckMaxPrefixes(t *testing.T) {
	for n, want := range map[int]string{
		0:     "--max-prefixes=0: want 1 to 254 distinct prefixes",
		1:     "",
		254:   "",
		255:   "--max-prefixes=255: want 1 to 254 distinct prefixes",
		65536: "--max-prefixes=65536: want 1 to 254 distinct prefixes",
	} {
		got := ""
		if err := CheckMaxPrefixes("--max-prefixes", n); err != nil {
			got = err.Error()
		}
		if got != want {
			t.Errorf("CheckMaxPrefixes(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestParseGroups(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		want string
	}{
		{[]string{"0", "65535"}, "[0 65535]"},
		{[]string{"1", "2", "1"}, "--nflog.group=1 is given twice: give each group once"},
		{[]string{"65536"}, "--nflog.group=65536: want a group number from 0 to 65535"},
		{nil, "--nflog.group: give at least one group"},
	} {
		g, err := ParseGroups("--nflog.group", tc.in)
		got := fmt.Sprint(g)
		if err != nil {
			got = err.Error()
		}
		if got != tc.want {
			t.Errorf("ParseGroups(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	if err := CheckGroups([]Group{3, 4, 3}); err == nil || err.Error() != "NFLOG group 3 is given twice: give each group once" {
		t.Errorf("CheckGroups: %v", err)
	}
}
