package collector

import (
	"sync/atomic"
	"time"

	"github.com/nfdrop/nfdrop_exporter/collector/classify"
)

// counterTable is a fixed-size, open-addressing hash table of packet counters.
// Slots are claimed with a CAS and never released, so a scrape can walk it
// concurrently with the reader without a lock, and counters never reset.
// The size bounds memory; when it is full (far beyond any sane label
// cardinality) packets are folded into one overflow series per class so that
// the accounting invariant still holds.
type counterTable struct {
	slots    []counterSlot
	created  []atomic.Int64 // unix nanoseconds a slot was claimed: the series' created timestamp
	mask     uint64
	overflow [classify.NumClasses]atomic.Uint64
}

// counterSlot keeps a key and its count in one 16-byte cell, so that finding
// and counting a series touches one cache line, not one per array.
type counterSlot struct {
	key   atomic.Uint64
	count atomic.Uint64
}

const counterSlots = 1 << 15

func newCounterTable(slots int) *counterTable {
	return &counterTable{
		slots:   make([]counterSlot, slots),
		created: make([]atomic.Int64, slots),
		mask:    uint64(slots - 1),
	}
}

// maxProbe bounds the linear probe: past it the table counts as full.
const maxProbe = 64

func (t *counterTable) inc(k classify.Key, class classify.Class) {
	h := uint64(k) * 0x9E3779B97F4A7C15
	i := (h >> 32) & t.mask
	for n := 0; n < maxProbe; n++ {
		s := &t.slots[i]
		cur := s.key.Load()
		if cur == uint64(k) {
			s.count.Add(1)
			return
		}
		if cur == 0 && s.key.CompareAndSwap(0, uint64(k)) {
			// A new series: its created timestamp lets Prometheus count its
			// first packets in rate() instead of taking them as the baseline.
			t.created[i].Store(time.Now().UnixNano())
			s.count.Add(1)
			return
		}
		if cur == 0 && s.key.Load() == uint64(k) {
			s.count.Add(1) // lost the race to a writer of the same key
			return
		}
		i = (i + 1) & t.mask
	}
	t.overflow[class%classify.NumClasses].Add(1)
}

// each calls f for every used slot, with its count and created time (0 if the
// writer has not stored it yet).
func (t *counterTable) each(f func(k classify.Key, n uint64, created int64)) {
	for i := range t.slots {
		if k := t.slots[i].key.Load(); k != 0 {
			f(classify.Key(k), t.slots[i].count.Load(), t.created[i].Load())
		}
	}
}
