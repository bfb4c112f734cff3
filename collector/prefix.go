package collector

import (
	"bytes"
	"sync"
	"sync/atomic"
)

// otherPrefix is the label value for prefixes beyond --collector.max-prefixes.
const otherPrefix = "(other)"

// TrimPrefix applies the prefix label rule: surrounding whitespace trimmed.
// LOG prefixes usually end in a space or ": " for readability of the syslog line.
func TrimPrefix(b []byte) []byte { return bytes.TrimSpace(b) }

// prefixTable maps rule prefixes to small indexes, bounded by max. Readers take an
// immutable snapshot with one atomic load, so the per-packet path takes no lock;
// a new prefix (at most max times in the process' life) copies the snapshot under mu.
type prefixTable struct {
	max  int
	mu   sync.Mutex
	snap atomic.Pointer[[]string] // index 0 is otherPrefix
}

func newPrefixTable(max int) *prefixTable {
	t := &prefixTable{max: max}
	names := []string{otherPrefix}
	t.snap.Store(&names)
	return t
}

// index returns the label index of an already trimmed prefix, adding it if room is left.
func (t *prefixTable) index(p []byte) uint8 {
	names := *t.snap.Load()
	for i := 1; i < len(names); i++ {
		if names[i] == string(p) {
			return uint8(i)
		}
	}
	return t.add(p)
}

func (t *prefixTable) add(p []byte) uint8 {
	t.mu.Lock()
	defer t.mu.Unlock()
	names := *t.snap.Load()
	for i := 1; i < len(names); i++ {
		if names[i] == string(p) {
			return uint8(i)
		}
	}
	if len(names)-1 >= t.max {
		return 0
	}
	next := make([]string, len(names), len(names)+1)
	copy(next, names)
	next = append(next, string(p))
	t.snap.Store(&next)
	return uint8(len(next) - 1)
}

// names returns the current snapshot; index i is the label of index i.
func (t *prefixTable) names() []string { return *t.snap.Load() }
