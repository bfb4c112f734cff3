package ctstats

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/ti-mo/conntrack"
)

func TestSum(t *testing.T) {
	tests := []struct {
		name string
		in   []conntrack.Stats
		want Stats
	}{
		{"no CPU", nil, Stats{}},
		{"one CPU", []conntrack.Stats{{Invalid: 3, Drop: 1, EarlyDrop: 2, InsertFailed: 4, SearchRestart: 5, Found: 99, Insert: 98}},
			Stats{Invalid: 3, Drop: 1, EarlyDrop: 2, InsertFailed: 4, SearchRestart: 5}},
		{"two CPUs", []conntrack.Stats{{CPUID: 0, Invalid: 3, Drop: 1}, {CPUID: 1, Invalid: 4, SearchRestart: 7}},
			Stats{Invalid: 7, Drop: 1, SearchRestart: 7}},
		// Each CPU's counter is 32 bits: their sum must not wrap at 2^32.
		{"sum beyond 32 bits", []conntrack.Stats{{Invalid: 0xffffffff}, {Invalid: 0xffffffff}},
			Stats{Invalid: 0x1fffffffe}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Sum(tc.in); got != tc.want {
				t.Errorf("Sum = %+v, want %+v", got, tc.want)
			}
		})
	}
}

type fakeReader struct {
	s   Stats
	err error
}

func (f *fakeReader) Stats() (Stats, error) { return f.s, f.err }

// TestPoller: a failing read is logged once however often it fails, and
// the recovery once.
func TestPoller(t *testing.T) {
	r := &fakeReader{s: Stats{Invalid: 7, Entries: 12}}
	var logs bytes.Buffer
	p := NewPoller(r, slog.New(slog.NewTextHandler(&logs, nil)))
	if s, err := p.Read(); err != nil || s != r.s {
		t.Fatalf("Read() = %+v, %v", s, err)
	}
	r.err = errors.New("netlink receive: protocol not supported")
	for range 3 {
		if _, err := p.Read(); err == nil {
			t.Fatal("a failing read reported no error")
		}
	}
	if n := strings.Count(logs.String(), "failed"); n != 1 {
		t.Errorf("failure logged %d times over 3 reads, want once:\n%s", n, logs.String())
	}
	r.err = nil
	if _, err := p.Read(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "works again") {
		t.Errorf("recovery not logged:\n%s", logs.String())
	}
}
