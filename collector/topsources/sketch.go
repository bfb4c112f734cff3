// Package topsources finds the heaviest sources of a packet stream in fixed
// memory: the Space-Saving algorithm (Metwally, Agrawal, El Abbadi, 2005)
// over exact addresses or over network prefixes.
//
// A Sketch keeps `capacity` counters. A key already monitored has its counter
// raised; a new key takes over the smallest counter, inheriting its count as
// its possible overestimation (Error). So for every reported entry
//
//	Count - Error <= true count <= Count
//
// every key whose true count exceeds Total/capacity is monitored, and while
// no more than `capacity` distinct keys were ever seen the counts are exact
// (Exact reports it). A source's addresses are never metric labels: this
// package is for reports (the landing page, explain) and knows nothing of
// Prometheus.
//
// A Sketch is not safe for concurrent use; Sources wraps two of them (exact
// addresses and /24 or /48 networks) for one writer and any number of readers.
package topsources

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"time"
)

// MaxClasses is how many distinct classes an entry counts separately; a class
// at or beyond it is counted in the last one.
const MaxClasses = 8

// MaxCapacity bounds the counters of one sketch (memory: about 150 bytes each).
const MaxCapacity = 1 << 16

// Entry is one monitored key.
type Entry struct {
	// Prefix is the source: a /32 or /128 for an exact address, else the network.
	Prefix netip.Prefix
	// Count overestimates the true count by at most Error.
	Count, Error uint64
	// Classes counts the key's packets by class since it was last taken into
	// the sketch; their sum is Count-Error, a lower bound of the true count.
	Classes [MaxClasses]uint64
	// First and Last are when the key was first and last seen since it was
	// last taken into the sketch.
	First, Last time.Time
}

// key is an address masked to the sketch's prefix length; fam keeps an IPv4
// address apart from its IPv4-mapped IPv6 form.
type key struct {
	hi, lo uint64
	fam    uint8 // 4 or 6
}

type counter struct {
	key          key
	count, error uint64
	seq          uint64 // update order: among equal counts the least recently updated goes first
	first, last  int64  // unix nanoseconds
	classes      [MaxClasses]uint64
	slot         int32 // position in the index
	pos          int32 // position in the heap
}

// Sketch is a Space-Saving summary with a fixed number of counters. The
// counters stay in place; a min-heap of their numbers on (count, last
// update) finds the smallest, and an open-addressing table finds a key's
// counter: an update costs one probe and a sift of 4-byte numbers, and
// allocates nothing.
type Sketch struct {
	bits4, bits6 int
	cells        []counter // len grows to capacity, never beyond
	heap         []int32   // cell numbers in heap order
	index        []int32   // cell number + 1; 0 = empty. Linear probing, load <= 1/2
	mask         uint64
	total        uint64
	seq          uint64
	evicted      bool
}

// New returns a sketch of the heaviest exact addresses with capacity counters.
func New(capacity int) *Sketch {
	s, err := NewPrefix(capacity, 32, 128)
	if err != nil {
		panic(err)
	}
	return s
}

// NewPrefix returns a sketch that counts addresses by their network: the
// first bits4 bits of an IPv4 address, bits6 of an IPv6 one.
func NewPrefix(capacity, bits4, bits6 int) (*Sketch, error) {
	switch {
	case capacity < 1 || capacity > MaxCapacity:
		return nil, fmt.Errorf("sketch capacity %d: want 1 to %d", capacity, MaxCapacity)
	case bits4 < 0 || bits4 > 32 || bits6 < 0 || bits6 > 128:
		return nil, fmt.Errorf("prefix lengths /%d and /%d: want 0-32 and 0-128", bits4, bits6)
	}
	size := 1
	for size < 2*capacity {
		size <<= 1
	}
	return &Sketch{
		bits4: bits4, bits6: bits6,
		cells: make([]counter, 0, capacity),
		heap:  make([]int32, 0, capacity),
		index: make([]int32, size),
		mask:  uint64(size - 1),
	}, nil
}

// Capacity is the number of counters.
func (s *Sketch) Capacity() int { return cap(s.cells) }

// Total is the sum of n over every Add.
func (s *Sketch) Total() uint64 { return s.total }

// Exact reports whether every count is exact: no counter was ever taken over.
func (s *Sketch) Exact() bool { return !s.evicted }

// ErrorBound bounds the overestimation of every entry and the true count of
// every key not monitored: the smallest counter once the sketch has been
// full and taken over, which is at most Total/Capacity; 0 while exact.
func (s *Sketch) ErrorBound() uint64 {
	if !s.evicted {
		return 0
	}
	return s.cells[s.heap[0]].count
}

// Bits returns the prefix lengths the sketch counts by (32, 128 for exact addresses).
func (s *Sketch) Bits() (v4, v6 int) { return s.bits4, s.bits6 }

func mask64(v uint64, bits int) uint64 {
	switch {
	case bits <= 0:
		return 0
	case bits >= 64:
		return v
	}
	return v &^ (1<<(64-bits) - 1)
}

// keyOf masks an address to the sketch's prefix; ok is false for the zero Addr.
func (s *Sketch) keyOf(a netip.Addr) (k key, ok bool) {
	switch {
	case a.Is4():
		b := a.As4()
		v := uint64(b[0])<<56 | uint64(b[1])<<48 | uint64(b[2])<<40 | uint64(b[3])<<32
		return key{hi: mask64(v, s.bits4), fam: 4}, true
	case a.Is6():
		b := a.As16()
		var hi, lo uint64
		for i := 0; i < 8; i++ {
			hi = hi<<8 | uint64(b[i])
			lo = lo<<8 | uint64(b[8+i])
		}
		return key{hi: mask64(hi, s.bits6), lo: mask64(lo, s.bits6-64), fam: 6}, true
	}
	return key{}, false
}

// hash mixes every bit of the key into the low bits the index uses
// (an IPv4 key has only its top 32 bits set).
func (k key) hash() uint64 {
	h := k.hi ^ (k.lo<<31 | k.lo>>33) ^ uint64(k.fam)
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	return h ^ h>>33
}

// Add counts n packets of class from addr, seen at t. The zero Addr and n == 0
// are ignored. It allocates nothing.
func (s *Sketch) Add(addr netip.Addr, class uint8, n uint64, t time.Time) {
	k, ok := s.keyOf(addr)
	if !ok || n == 0 {
		return
	}
	s.add(k, class, n, t.UnixNano())
}

func (s *Sketch) add(k key, class uint8, n uint64, ts int64) {
	if class >= MaxClasses {
		class = MaxClasses - 1
	}
	s.total += n
	s.seq++
	i := k.hash() & s.mask
	for {
		p := s.index[i]
		if p == 0 {
			break
		}
		if c := &s.cells[p-1]; c.key == k {
			c.count += n
			c.classes[class] += n
			c.seq = s.seq
			c.last = ts
			s.down(int(c.pos))
			return
		}
		i = (i + 1) & s.mask
	}
	// Not monitored: a free counter, else take over the smallest one.
	if len(s.cells) < cap(s.cells) {
		id := int32(len(s.cells))
		s.cells = append(s.cells, counter{key: k, slot: int32(i), pos: int32(len(s.heap)),
			count: n, seq: s.seq, first: ts, last: ts})
		s.cells[id].classes[class] = n
		s.heap = append(s.heap, id)
		s.index[i] = id + 1
		s.up(len(s.heap) - 1)
		return
	}
	s.evicted = true
	id := s.heap[0]
	c := &s.cells[id]
	s.unindex(c.slot)
	i = s.probeFree(k)
	*c = counter{key: k, slot: int32(i), pos: 0, count: c.count + n, error: c.count,
		seq: s.seq, first: ts, last: ts}
	c.classes[class] = n
	s.index[i] = id + 1
	s.down(0)
}

// probeFree returns the free index slot where k belongs (k is not present).
func (s *Sketch) probeFree(k key) uint64 {
	i := k.hash() & s.mask
	for s.index[i] != 0 {
		i = (i + 1) & s.mask
	}
	return i
}

// unindex empties index slot i and shifts later entries of its probe run
// back, so lookups need no tombstones.
func (s *Sketch) unindex(i int32) {
	hole := uint64(i)
	s.index[hole] = 0
	j := hole
	for {
		j = (j + 1) & s.mask
		p := s.index[j]
		if p == 0 {
			return
		}
		home := s.cells[p-1].key.hash() & s.mask
		// Move j into the hole unless its home lies cyclically in (hole, j].
		if (j-home)&s.mask >= (j-hole)&s.mask {
			s.index[hole] = p
			s.cells[p-1].slot = int32(hole)
			s.index[j] = 0
			hole = j
		}
	}
}

func less(a, b *counter) bool {
	return a.count < b.count || a.count == b.count && a.seq < b.seq
}

// down restores the heap below position i after its counter grew.
func (s *Sketch) down(i int) {
	h, c := s.heap, s.cells
	for {
		l := 2*i + 1
		if l >= len(h) {
			return
		}
		m := l
		if r := l + 1; r < len(h) && less(&c[h[r]], &c[h[l]]) {
			m = r
		}
		if !less(&c[h[m]], &c[h[i]]) {
			return
		}
		h[i], h[m] = h[m], h[i]
		c[h[i]].pos, c[h[m]].pos = int32(i), int32(m)
		i = m
	}
}

// up restores the heap above position i after a counter was appended.
func (s *Sketch) up(i int) {
	h, c := s.heap, s.cells
	for i > 0 {
		p := (i - 1) / 2
		if !less(&c[h[i]], &c[h[p]]) {
			return
		}
		h[i], h[p] = h[p], h[i]
		c[h[i]].pos, c[h[p]].pos = int32(i), int32(p)
		i = p
	}
}

// Top returns the k largest entries, largest count first (ties: lower
// guaranteed count Count-Error last, then by address). k <= 0 returns all.
func (s *Sketch) Top(k int) []Entry {
	out := make([]Entry, len(s.cells))
	for i := range s.cells {
		out[i] = s.entry(&s.cells[i])
	}
	slices.SortFunc(out, func(a, b Entry) int {
		if c := cmp.Compare(b.Count, a.Count); c != 0 {
			return c
		}
		if c := cmp.Compare(b.Count-b.Error, a.Count-a.Error); c != 0 {
			return c
		}
		return a.Prefix.Addr().Compare(b.Prefix.Addr())
	})
	if k > 0 && k < len(out) {
		out = out[:k:k]
	}
	return out
}

func (s *Sketch) entry(c *counter) Entry {
	var a netip.Addr
	bits := s.bits4
	if c.key.fam == 4 {
		a = netip.AddrFrom4([4]byte{byte(c.key.hi >> 56), byte(c.key.hi >> 48), byte(c.key.hi >> 40), byte(c.key.hi >> 32)})
	} else {
		var b [16]byte
		for i := 0; i < 8; i++ {
			b[i] = byte(c.key.hi >> (56 - 8*i))
			b[8+i] = byte(c.key.lo >> (56 - 8*i))
		}
		a, bits = netip.AddrFrom16(b), s.bits6
	}
	return Entry{
		Prefix: netip.PrefixFrom(a, bits),
		Count:  c.count, Error: c.error,
		Classes: c.classes,
		First:   time.Unix(0, c.first), Last: time.Unix(0, c.last),
	}
}
