package collector

import (
	"sync/atomic"
	"time"

	"github.com/nfdrop/nfdrop_exporter/collector/packet"
)

// seriesKey packs every label of nfdrop_packets_total except group into 48 bits,
// so a packet's series is found without building strings. Bit 63 marks a used slot.
type seriesKey uint64

const keyUsed seriesKey = 1 << 63

func keyOf(f packet.Family, proto packet.Proto, port uint8, side Side, class Class, hasFlags bool, flags uint8) seriesKey {
	k := keyUsed | seriesKey(f)<<32 | seriesKey(proto)<<24 | seriesKey(port)<<16 | seriesKey(side)<<12 | seriesKey(class)<<8 | seriesKey(flags)
	if hasFlags {
		k |= 1 << 11
	}
	return k
}

func (k seriesKey) withPrefix(prefix uint8) seriesKey { return k | seriesKey(prefix)<<40 }

func (k seriesKey) prefix() uint8 { return uint8(k >> 40) }

func (k seriesKey) class() Class { return Class(k >> 8 & 0x7) }

func (k seriesKey) labels(ports *Ports) Labels {
	return Labels{
		Family:    packet.Family(k >> 32 & 0xff),
		Proto:     packet.Proto(k >> 24 & 0xff),
		PortIndex: uint8(k >> 16),
		Side:      Side(k >> 12 & 0x7),
		Class:     Class(k >> 8 & 0x7),
		HasFlags:  k&(1<<11) != 0,
		Flags:     uint8(k),
		ports:     ports,
	}
}

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
	overflow [NumClasses]atomic.Uint64
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

func (t *counterTable) inc(k seriesKey, class Class) {
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
	t.overflow[class%NumClasses].Add(1)
}

// each calls f for every used slot, with its count and created time (0 if the
// writer has not stored it yet).
func (t *counterTable) each(f func(k seriesKey, n uint64, created int64)) {
	for i := range t.slots {
		if k := t.slots[i].key.Load(); k != 0 {
			f(seriesKey(k), t.slots[i].count.Load(), t.created[i].Load())
		}
	}
}
