package classify

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"unicode/utf8"
)

// OtherPrefix is the prefix label value of packets whose prefix came after
// the table was full, and of the overflow series of a full counter table.
const OtherPrefix = "(other)"

// OtherPrefixIndex is OtherPrefix's index in every PrefixTable.
const OtherPrefixIndex = 0

// DefaultMaxPrefixes is the default --collector.max-prefixes.
const DefaultMaxPrefixes = 32

// PrefixLimit is the largest --collector.max-prefixes: a prefix index is
// one byte of the series key, and index 0 is OtherPrefix.
const PrefixLimit = 254

// CheckMaxPrefixes validates a --collector.max-prefixes value; flag names
// the flag in the error.
func CheckMaxPrefixes(flag string, n int) error {
	if n < 1 || n > PrefixLimit {
		return fmt.Errorf("%s=%d: want 1 to %d distinct prefixes", flag, n, PrefixLimit)
	}
	return nil
}

// TrimPrefix trims surrounding whitespace from a raw rule prefix: LOG
// prefixes usually end in a space or ": " for the syslog line's sake.
func TrimPrefix(b []byte) []byte { return bytes.TrimSpace(b) }

// PrefixLabel turns a trimmed rule prefix into its label value: each byte
// that is not part of a UTF-8 character becomes U+FFFD (a label value must
// be UTF-8, or the whole scrape fails), and a prefix that reads like the
// overflow value gets one more pair of parentheses.
func PrefixLabel(p []byte) string {
	s := LabelText(string(p))
	if isOtherPrefix(s) {
		s = "(" + s + ")"
	}
	return s
}

// LabelText makes a name from outside (a rule prefix, a chain or table
// name) a valid label value: each byte that is not part of a UTF-8
// character becomes U+FFFD. A label value must be UTF-8, or the whole
// scrape fails.
func LabelText(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	for len(s) > 0 {
		r, n := utf8.DecodeRuneInString(s)
		b.WriteRune(r) // utf8.RuneError, U+FFFD, for a byte that is not UTF-8
		s = s[n:]
	}
	return b.String()
}

// isOtherPrefix reports whether s is "other" in one or more pairs of
// parentheses. Adding a pair to all of them, not only to "(other)", keeps
// distinct rule prefixes distinct.
func isOtherPrefix(s string) bool {
	n := 0
	for n < len(s)/2 && s[n] == '(' && s[len(s)-1-n] == ')' {
		n++
	}
	return n > 0 && s[n:len(s)-n] == "other"
}

// PrefixTable maps trimmed rule prefixes to small indexes, bounded by max
// distinct label values. Readers take an immutable snapshot with one atomic
// load, so the per-packet path takes no lock; a prefix not seen before (a
// rare event, bounded by maxRaw) copies the snapshot under mu.
type PrefixTable struct {
	max  int
	mu   sync.Mutex
	snap atomic.Pointer[prefixSnapshot]
}

type prefixSnapshot struct {
	names []string   // label value per index; index 0 is OtherPrefix
	raw   []rawEntry // prefixes as received, with their index
}

// rawEntry remembers a received prefix apart from its label value, because
// the two differ for prefixes that are not UTF-8 or read like OtherPrefix,
// and several prefixes may share one label value (or OtherPrefix once the
// table is full): looking up what was received needs no conversion.
type rawEntry struct {
	raw   string
	index uint8
}

// NewPrefixTable returns an empty table of at most max label values besides
// OtherPrefix; max must pass CheckMaxPrefixes.
func NewPrefixTable(max int) *PrefixTable {
	t := &PrefixTable{max: max}
	t.snap.Store(&prefixSnapshot{names: []string{OtherPrefix}})
	return t
}

// maxRaw bounds the remembered raw prefixes: past it, a prefix that is not
// remembered is looked up under the lock, which stays correct.
func (t *PrefixTable) maxRaw() int { return 2*t.max + 16 }

// Index returns the label index of a trimmed prefix, adding it if room is
// left, else OtherPrefixIndex. It does not allocate for a prefix seen before.
func (t *PrefixTable) Index(p []byte) uint8 {
	for _, e := range t.snap.Load().raw {
		if e.raw == string(p) {
			return e.index
		}
	}
	return t.add(p)
}

func (t *PrefixTable) add(p []byte) uint8 {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.snap.Load()
	for _, e := range s.raw {
		if e.raw == string(p) {
			return e.index
		}
	}
	label := PrefixLabel(p)
	index, names := -1, s.names
	for i := 1; i < len(names); i++ {
		if names[i] == label {
			index = i
			break
		}
	}
	if index < 0 {
		if len(names)-1 >= t.max {
			index = OtherPrefixIndex
		} else {
			names = append(names[:len(names):len(names)], label)
			index = len(names) - 1
		}
	}
	next := &prefixSnapshot{names: names, raw: s.raw}
	if len(s.raw) < t.maxRaw() {
		next.raw = append(s.raw[:len(s.raw):len(s.raw)], rawEntry{string(p), uint8(index)})
	}
	t.snap.Store(next)
	return uint8(index)
}

// Names returns the label values; index i is the value of prefix index i.
// The slice must not be modified.
func (t *PrefixTable) Names() []string { return t.snap.Load().names }

// Name returns the label value of prefix index i. An index is in the table
// before any series key holds it, so a key read after the index was handed
// out always finds its name here.
func (t *PrefixTable) Name(i uint8) string {
	if names := t.snap.Load().names; int(i) < len(names) {
		return names[i]
	}
	return OtherPrefix
}
