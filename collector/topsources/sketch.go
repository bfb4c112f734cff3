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
	"encoding/binary"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"net/netip"
	"slices"
	"time"
)

// MaxClasses is how many distinct classes an entry counts separately; a class
// at or beyond it is counted in the last one.
const MaxClasses = 8

// MaxCapacity bounds the counters of one sketch (memory: about 200 bytes each).
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

// Source names the entry: the address of an exact-address entry, else the
// network in CIDR notation.
func (e *Entry) Source() string {
	if e.Prefix.IsSingleIP() {
		return e.Prefix.Addr().String()
	}
	return e.Prefix.String()
}

// key is an address masked to the sketch's prefix length, big-endian in two
// halves (an IPv4 address in the top 32 bits of hi); fam keeps an IPv4 address
// apart from its IPv4-mapped IPv6 form.
type key struct {
	hi, lo uint64
	fam    uint8 // 4 or 6
}

// none is the null counter or bucket number.
const none = -1

type counter struct {
	key          key
	count, error uint64
	first, last  int64 // unix nanoseconds
	classes      [MaxClasses]uint64
	bucket       int32 // the bucket of count
	prev, next   int32 // neighbours in the bucket, least recently updated first
	slot         int32 // position in the index
}

// bucket holds the counters of one count, in the order they reached it.
type bucket struct {
	count      uint64
	head, tail int32 // counters
	prev, next int32 // buckets, by ascending count
}

// Sketch is a Space-Saving summary with a fixed number of counters, kept as a
// Stream-Summary: the counters hang in buckets of equal count, the buckets in
// a list by ascending count, so the smallest counter is the head of the first
// bucket and raising a counter by one moves it at most one bucket along. An
// open-addressing table finds a key's counter. An update costs a multiply, a
// probe or two and a few index writes, and allocates nothing.
type Sketch struct {
	bits4, bits6 int
	mask4        uint64 // keeps the prefix of an IPv4 hi
	mask6hi      uint64 // ... and of an IPv6 hi, lo
	mask6lo      uint64
	cells        []counter // len grows to capacity, never beyond
	buckets      []bucket  // capacity+1: a raise takes a bucket before it frees one
	first        int32     // bucket of the smallest count; none while empty
	free         int32     // unused buckets, chained by next
	// index holds, per slot, the top 32 bits of the key's hash and the
	// counter number + 1 (0: empty); linear probing at load <= 1/4. The
	// hash bits spare a look at the counter on a mismatch, and give an
	// entry's home slot when a removal shifts it back.
	index   []uint64
	shift   uint   // slot = hash >> shift
	mask    uint64 // len(index) - 1
	seed    [2]uint64
	total   uint64
	evicted bool
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
	for size < 4*capacity {
		size <<= 1
	}
	s := &Sketch{
		bits4: bits4, bits6: bits6,
		mask4: mask64(^uint64(0), bits4), mask6hi: mask64(^uint64(0), bits6), mask6lo: mask64(^uint64(0), bits6-64),
		cells:   make([]counter, 0, capacity),
		buckets: make([]bucket, capacity+1),
		first:   none,
		index:   make([]uint64, size),
		shift:   uint(64 - bits.TrailingZeros(uint(size))),
		mask:    uint64(size - 1),
		// A random seed per sketch: sources cannot be chosen to collide.
		seed: [2]uint64{rand.Uint64(), rand.Uint64() | 1},
	}
	for i := range s.buckets {
		s.buckets[i].next = int32(i + 1)
	}
	s.buckets[capacity].next = none
	return s, nil
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
	return s.buckets[s.first].count
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

// addrKey is the unmasked key of an address; ok is false for the zero Addr.
func addrKey(a netip.Addr) (k key, ok bool) {
	switch {
	case a.Is4():
		b := a.As4()
		return key{hi: uint64(binary.BigEndian.Uint32(b[:])) << 32, fam: 4}, true
	case a.Is6():
		b := a.As16()
		return key{hi: binary.BigEndian.Uint64(b[:8]), lo: binary.BigEndian.Uint64(b[8:]), fam: 6}, true
	}
	return key{}, false
}

// srcKey is the unmasked key of an address given as bytes: the first 4 of
// src when v6 is false.
func srcKey(src *[16]byte, v6 bool) key {
	if !v6 {
		return key{hi: uint64(binary.BigEndian.Uint32(src[:4])) << 32, fam: 4}
	}
	return key{hi: binary.BigEndian.Uint64(src[:8]), lo: binary.BigEndian.Uint64(src[8:]), fam: 6}
}

// masked cuts an address key to the sketch's prefix.
func (s *Sketch) masked(k key) key {
	if k.fam == 4 {
		k.hi &= s.mask4
	} else {
		k.hi &= s.mask6hi
		k.lo &= s.mask6lo
	}
	return k
}

// hash is one 64x64->128 multiply of the seeded halves, folded: the slot
// (top bits) depends on every bit of the key.
func (s *Sketch) hash(k key) uint64 {
	hi, lo := bits.Mul64(k.hi^s.seed[0], k.lo^s.seed[1]^uint64(k.fam))
	return hi ^ lo
}

// Add counts n packets of class from addr, seen at t. The zero Addr and n == 0
// are ignored. It allocates nothing.
func (s *Sketch) Add(addr netip.Addr, class uint8, n uint64, t time.Time) {
	k, ok := addrKey(addr)
	if !ok || n == 0 {
		return
	}
	s.add(s.masked(k), class, n, t.UnixNano())
}

const tagMask = 0xffffffff00000000

// add counts n >= 1 packets of a masked key.
func (s *Sketch) add(k key, class uint8, n uint64, ts int64) {
	if class >= MaxClasses {
		class = MaxClasses - 1
	}
	s.total += n
	index, cells, mask := s.index, s.cells, s.mask // locals: stores below cannot reload them
	h := s.hash(k)
	tag := h & tagMask
	home := h >> s.shift
	i := home
	for e := index[i]; e != 0; e = index[i] {
		if e&tagMask == tag {
			id := int32(uint32(e)) - 1
			if c := &cells[id]; c.key == k {
				c.count += n
				c.classes[class] += n
				c.last = ts
				s.settle(id, c.bucket, c.count)
				return
			}
		}
		i = (i + 1) & mask
	}
	// Not monitored: a free counter, else take over the smallest one (the
	// least recently updated among equals), whose count becomes the error.
	var id int32
	var floor uint64
	from := int32(none)
	if len(cells) < cap(cells) {
		id = int32(len(cells))
		cells = cells[:id+1]
		s.cells = cells
	} else {
		s.evicted = true
		from = s.first
		id = s.buckets[from].head
		floor = s.buckets[from].count
		s.unindex(cells[id].slot)
		// The removal may have shifted k's probe run back: probe again.
		for i = home; index[i] != 0; i = (i + 1) & mask {
		}
	}
	c := &cells[id]
	c.key, c.count, c.error, c.first, c.last = k, floor+n, floor, ts, ts
	c.classes = [MaxClasses]uint64{}
	c.classes[class] = n
	c.slot = int32(i)
	index[i] = tag | uint64(id+1)
	s.settle(id, from, c.count)
}

// unindex empties index slot i and shifts later entries of its probe run
// back, so lookups need no tombstones.
func (s *Sketch) unindex(i int32) {
	index, cells, mask, shift := s.index, s.cells, s.mask, s.shift
	hole := uint64(i)
	index[hole] = 0
	for j := (hole + 1) & mask; ; j = (j + 1) & mask {
		e := index[j]
		if e == 0 {
			return
		}
		// Move j into the hole unless its home lies cyclically in (hole, j].
		if (j-e>>shift)&mask >= (j-hole)&mask {
			index[hole] = e
			cells[uint32(e)-1].slot = int32(hole)
			index[j] = 0
			hole = j
		}
	}
}

// settle moves counter id, whose count rose to count, from bucket from
// (none: a counter in no bucket yet) to the end of the bucket of count.
func (s *Sketch) settle(id, from int32, count uint64) {
	b := s.buckets
	p, q := from, s.first // p: the last bucket below or at count; q: the one after it
	if from != none {
		q = b[from].next
	}
	for q != none && b[q].count <= count {
		p, q = q, b[q].next
	}
	if p != none && b[p].count == count {
		if from != none {
			s.detach(id, from)
		}
		s.push(id, p)
		return
	}
	if from != none && p == from && b[from].head == b[from].tail { // alone in its bucket: the bucket moves up
		b[from].count = count
		return
	}
	nb := s.free
	s.free = b[nb].next
	b[nb] = bucket{count: count, head: none, tail: none, prev: p, next: q}
	if p == none {
		s.first = nb
	} else {
		b[p].next = nb
	}
	if q != none {
		b[q].prev = nb
	}
	if from != none {
		s.detach(id, from)
	}
	s.push(id, nb)
}

// push appends counter id to bucket bk.
func (s *Sketch) push(id, bk int32) {
	b := &s.buckets[bk]
	c := &s.cells[id]
	c.bucket, c.prev, c.next = bk, b.tail, none
	if b.tail == none {
		b.head = id
	} else {
		s.cells[b.tail].next = id
	}
	b.tail = id
}

// detach takes counter id out of bucket bk, and an emptied bucket out of the list.
func (s *Sketch) detach(id, bk int32) {
	c := &s.cells[id]
	b := &s.buckets[bk]
	if c.prev == none {
		b.head = c.next
	} else {
		s.cells[c.prev].next = c.next
	}
	if c.next == none {
		b.tail = c.prev
	} else {
		s.cells[c.next].prev = c.prev
	}
	if b.head != none {
		return
	}
	if b.prev == none {
		s.first = b.next
	} else {
		s.buckets[b.prev].next = b.next
	}
	if b.next != none {
		s.buckets[b.next].prev = b.prev
	}
	b.next = s.free
	s.free = bk
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
