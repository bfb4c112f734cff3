// Package topsources finds the heaviest sources of a packet stream in fixed
// memory: the Space-Saving algorithm (Metwally, Agrawal, El Abbadi, 2005)
// over exact addresses or over network prefixes.
//
// A Sketch keeps `capacity` counters. A key already monitored has its counter
// raised; a new key takes over the smallest counter (the least recently
// updated among equals), inheriting its count as its possible
// overestimation (Error). So for every reported entry
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
	"math"
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

// key is an address masked to the sketch's prefix length: its 16-byte form
// big-endian in two halves (an IPv4 address IPv4-mapped), and v6 (0 or 1)
// to keep an IPv4 address apart from its IPv4-mapped IPv6 form.
type key struct {
	hi, lo uint64
	v6     uint8
}

// v4Mapped is the lo half of an IPv4-mapped address before the address.
const v4Mapped = 0xffff << 32

// counter is one monitored key but for its count, which is its bucket's.
// Two cache lines: the first holds what a lookup reads, the second the class
// counts, which an update only writes.
type counter struct {
	hi, lo      uint64 // the key
	first, last int64  // unix nanoseconds
	error       uint64
	group       uint32 // the index group holding the key
	slot        uint8  // the key's slot in its group
	v6          uint8
	displaced   bool // the group is not the key's home: its home was full
	_           [17]byte
	classes     [MaxClasses]uint64
}

// node is a counter's place in the Stream-Summary (nodes 0 to capacity-1),
// or a bucket (capacity to 2*capacity-1): a count that some counters have,
// or the sentinel bucket (2*capacity). A bucket's counters form a circular
// list through the bucket, least recently updated first; the buckets form a
// circular list by ascending count through the sentinel, whose count is the
// largest uint64 so that a walk up the list stops at it. Lists that are
// circular through their heads take a node out or append one with no test
// for an end, and one array holds both kinds of node.
type node struct {
	prev, next uint32 // a counter's neighbours; a bucket's last and first counter
	up         uint32 // a counter's bucket; the next bucket by count (free buckets: the next free one)
	down       uint32 // the previous bucket by count
	count      uint64 // a bucket's count
}

// group is one bucket of the index: eight slots, each a tag byte (0: empty,
// else 0x80 | 7 bits of the key's hash) and a counter number. A lookup
// compares the eight tags at once (as one word) and reads a counter only on
// a tag match; a removal clears a tag, with nothing to shift back.
type group struct {
	tags uint64
	ids  [groupSlots]uint16
	// over counts the keys that sit beyond this group although their
	// search starts here or before (it was full when they came): a lookup
	// that misses here goes on only while it is not 0.
	over uint32
}

const (
	groupSlots = 8
	lsbs       = 0x0101010101010101
	msbs       = 0x8080808080808080
)

// Sketch is a Space-Saving summary with a fixed number of counters, kept as a
// Stream-Summary: the counters hang in buckets of equal count, the buckets in
// a list by ascending count, so the smallest counter is the head of the first
// bucket and raising a counter by one moves it at most one bucket along. An
// index of 8-slot groups of hash tags, at most two keys per group on
// average, finds a key's counter in the key's home group nearly always. An
// update costs a multiply, one tag compare, a few link writes and no
// allocation.
type Sketch struct {
	counters []counter
	nodes    []node
	groups   []group
	seed     [2]uint64
	gmask    uint64 // len(groups) - 1
	capacity uint32
	sentinel uint32 // 2*capacity
	used     uint32 // counters in use: the first used
	free     uint32 // unused buckets, chained by up; the sentinel ends the chain
	evicted  bool
	total    uint64
	// masks[v6] keeps the prefix of a key's hi and lo.
	masks        [2][2]uint64
	bits4, bits6 int
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
	// Two keys per group on average at most: a group overflows rarely.
	groups := 1
	for groups*2 < capacity {
		groups <<= 1
	}
	s := &Sketch{
		counters: make([]counter, capacity),
		nodes:    make([]node, 2*capacity+1),
		groups:   make([]group, groups),
		// A random seed per sketch: sources cannot be chosen to collide.
		seed:     [2]uint64{rand.Uint64(), rand.Uint64() | 1},
		gmask:    uint64(groups - 1),
		capacity: uint32(capacity),
		sentinel: uint32(2 * capacity),
		free:     uint32(capacity),
		masks: [2][2]uint64{
			{^uint64(0), v4Mapped | mask64(0xffffffff, 32+bits4)},
			{mask64(^uint64(0), bits6), mask64(^uint64(0), bits6-64)},
		},
		bits4: bits4, bits6: bits6,
	}
	for b := capacity; b < 2*capacity; b++ {
		s.nodes[b].up = uint32(b + 1)
	}
	s.nodes[s.sentinel] = node{up: s.sentinel, down: s.sentinel, count: math.MaxUint64}
	return s, nil
}

// Capacity is the number of counters.
func (s *Sketch) Capacity() int { return int(s.capacity) }

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
	return s.nodes[s.nodes[s.sentinel].up].count
}

// Bits returns the prefix lengths the sketch counts by (32, 128 for exact addresses).
func (s *Sketch) Bits() (v4, v6 int) { return s.bits4, s.bits6 }

// mask64 keeps the first bits bits of v.
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
// Its callers pass a.AsSlice(), not As16: the array As16 returns is copied
// with one 16-byte load of two 8-byte stores, which the CPU cannot forward.
func addrKey(b []byte) (k key, ok bool) {
	if len(b) == 16 {
		return key{hi: binary.BigEndian.Uint64(b[:8]), lo: binary.BigEndian.Uint64(b[8:16]), v6: 1}, true
	}
	if len(b) == 4 {
		return key{lo: v4Mapped | uint64(binary.BigEndian.Uint32(b))}, true
	}
	return key{}, false
}

// srcKey is the unmasked key of an address given as bytes: the first 4 of
// src when v6 is false.
func srcKey(src *[16]byte, v6 bool) key {
	if !v6 {
		return key{lo: v4Mapped | uint64(binary.BigEndian.Uint32(src[:4]))}
	}
	return key{hi: binary.BigEndian.Uint64(src[:8]), lo: binary.BigEndian.Uint64(src[8:]), v6: 1}
}

// masked cuts an address key to the sketch's prefix.
func (s *Sketch) masked(k key) key {
	m := &s.masks[k.v6&1]
	k.hi &= m[0]
	k.lo &= m[1]
	return k
}

// hash is one 64x64->128 multiply of the seeded halves, folded, which mixes
// the whole key into both ends: its low bits pick the key's home group, its
// top 7 its tag.
func (s *Sketch) hash(k key) uint64 {
	hi, lo := bits.Mul64(k.hi^s.seed[0]^uint64(k.v6), k.lo^s.seed[1])
	return hi ^ lo
}

// tagOf is a key's tag byte in its group: never 0, which marks a free slot.
func tagOf(h uint64) uint64 { return h>>57 | 0x80 }

// Add counts n packets of class from addr, seen at t. The zero Addr and n == 0
// are ignored. It allocates nothing.
func (s *Sketch) Add(addr netip.Addr, class uint8, n uint64, t time.Time) {
	k, ok := addrKey(addr.AsSlice())
	if !ok || n == 0 {
		return
	}
	s.add(s.masked(k), class, n, t.UnixNano())
}

// add counts n >= 1 packets of a masked key. It does the common cases,
// decided by the key's home group alone and written so that no value lives
// across a call: a hit in the home group, or a miss that takes over a
// counter of a full sketch whose key sat in its home group, into a home
// group with a free slot; a raise by one. addSlow and settle do the rest.
func (s *Sketch) add(k key, class uint8, n uint64, ts int64) {
	class = min(class, MaxClasses-1)
	h := s.hash(k)
	home, tag := h&s.gmask, tagOf(h)
	grp := &s.groups[home]
	counters, nodes := s.counters, s.nodes
	var id, from uint32
	var count uint64
	// A zero byte of x is a tag match; the test may also flag a byte above
	// a match. The first match is nearly always the only one: the others,
	// a tag shared by two keys, go to addSlow.
	x := grp.tags ^ tag*lsbs
	if m := (x - lsbs) &^ x & msbs; m != 0 {
		id = uint32(grp.ids[bits.TrailingZeros64(m)>>3])
		if c := &counters[id]; (c.hi^k.hi)|(c.lo^k.lo)|uint64(c.v6^k.v6) == 0 {
			c.last = ts
			c.classes[class] += n
			from = nodes[id].up
			count = nodes[from].count + n
			goto raise
		}
		goto slow
	}
	if grp.over != 0 || s.used < s.capacity {
		goto slow
	}
	{
		// Take over the smallest counter, the least recently updated
		// among equals: the head of the first bucket. Its count becomes
		// the error.
		from = nodes[s.sentinel].up
		f := &nodes[from]
		id = f.next
		c := &counters[id]
		if c.displaced || grp.tags&msbs == msbs && c.group != uint32(home) {
			goto slow
		}
		s.evicted = true
		count = f.count
		// The new key and times first: they need no longer stay in registers.
		vg, vs := c.group, c.slot
		c.hi, c.lo, c.v6 = k.hi, k.lo, k.v6
		c.first, c.last, c.error = ts, ts, count
		c.classes = [MaxClasses]uint64{}
		c.classes[class] = n
		count += n
		s.groups[vg].tags &^= 0xff << (vs * 8 & 63)
		top := bits.TrailingZeros64(^grp.tags & msbs) // of the first free slot's tag byte
		grp.tags |= tag << (top & 56)
		grp.ids[top>>3&7] = uint16(id)
		c.group, c.slot, c.displaced = uint32(home), uint8(top>>3), false
	}
raise:
	// By one (the common case) the counter joins the next bucket, or its
	// bucket moves up if it is alone, or it starts a bucket above its own;
	// settle makes longer moves.
	s.total += n
	{
		ni, f := &nodes[id], &nodes[from]
		q := f.up
		nq := &nodes[q]
		if nq.count > count {
			if ni.prev == ni.next { // alone: the bucket moves up
				f.count = count
				return
			}
			q = s.newBucket(from, count)
			nq = &nodes[q]
		} else if nq.count < count {
			s.settle(id, from, count)
			return
		}
		p, nx := ni.prev, ni.next
		nodes[p].next = nx
		nodes[nx].prev = p
		if p == nx { // from is now empty
			s.dropBucket(from)
		}
		t := nq.prev
		nodes[t].next = id
		ni.prev, ni.next, ni.up = t, q, q
		nq.prev = id
		return
	}
slow:
	s.addSlow(k, class, n, ts)
}

// addSlow is add for every case: a tag shared by two keys, a key beyond its
// home group, a sketch not yet full, a counter taken over whose key sat
// beyond its home group, a full home group.
func (s *Sketch) addSlow(k key, class uint8, n uint64, ts int64) {
	class = min(class, MaxClasses-1)
	s.total += n
	h := s.hash(k)
	if id := s.find(k, h); id != s.sentinel {
		c := &s.counters[id]
		c.last = ts
		c.classes[class] += n
		from := s.nodes[id].up
		s.settle(id, from, s.nodes[from].count+n)
		return
	}
	// A free counter, else take over the smallest one.
	id, from, floor := s.used, s.sentinel, uint64(0)
	if id < s.capacity {
		s.used++
	} else {
		s.evicted = true
		from = s.nodes[s.sentinel].up
		id = s.nodes[from].next
		floor = s.nodes[from].count
		s.unindex(id)
	}
	s.place(id, k, h)
	c := &s.counters[id]
	c.hi, c.lo, c.v6 = k.hi, k.lo, k.v6
	c.first, c.last, c.error = ts, ts, floor
	c.classes = [MaxClasses]uint64{}
	c.classes[class] = n
	s.settle(id, from, floor+n)
}

// find returns the counter of key k, whose hash is h; s.sentinel if k is
// not monitored. The search goes on past a group only while some key whose
// home is that group or an earlier one overflowed beyond it.
func (s *Sketch) find(k key, h uint64) uint32 {
	home, tag := h&s.gmask, tagOf(h)
	for g := home; ; {
		grp := &s.groups[g]
		x := grp.tags ^ tag*lsbs
		for m := (x - lsbs) &^ x & msbs; m != 0; m &= m - 1 {
			id := uint32(grp.ids[bits.TrailingZeros64(m)>>3])
			if c := &s.counters[id]; c.hi == k.hi && c.lo == k.lo && c.v6 == k.v6 {
				return id
			}
		}
		if g = (g + 1) & s.gmask; grp.over == 0 || g == home {
			return s.sentinel
		}
	}
}

// place indexes key k, whose hash is h, as counter id: in the first free
// slot from its home group on. Every full group passed counts it in over.
func (s *Sketch) place(id uint32, k key, h uint64) {
	home := h & s.gmask
	g := home
	free := ^s.groups[g].tags & msbs
	for free == 0 {
		s.groups[g].over++
		g = (g + 1) & s.gmask
		free = ^s.groups[g].tags & msbs
	}
	slot := uint8(bits.TrailingZeros64(free) >> 3)
	grp := &s.groups[g]
	grp.tags |= tagOf(h) << (slot * 8)
	grp.ids[slot] = uint16(id)
	c := &s.counters[id]
	c.group, c.slot, c.displaced = uint32(g), slot, g != home
}

// unindex clears counter id's index slot; a key that sat beyond its home
// group no longer holds the groups it passed open.
func (s *Sketch) unindex(id uint32) {
	c := &s.counters[id]
	s.groups[c.group].tags &^= 0xff << (c.slot * 8)
	if c.displaced {
		for g := s.hash(key{c.hi, c.lo, c.v6}) & s.gmask; g != uint64(c.group); g = (g + 1) & s.gmask {
			s.groups[g].over--
		}
	}
}

// settle moves counter id, whose count rose to count, from bucket from
// (the sentinel: a new counter) to the end of the bucket of count, however
// far up that is.
func (s *Sketch) settle(id, from uint32, count uint64) {
	nodes := s.nodes
	p := from // the last bucket at or below count
	for q := nodes[from].up; nodes[q].count <= count; q = nodes[q].up {
		p = q
	}
	if from != s.sentinel {
		prev, next := nodes[id].prev, nodes[id].next
		if prev == next && nodes[p].count != count { // alone: the bucket moves
			nodes[from].count = count
			if p != from {
				s.unlinkBucket(from)
				s.linkBucket(from, p)
			}
			return
		}
		nodes[prev].next = next
		nodes[next].prev = prev
		if prev == next { // p is above from
			s.dropBucket(from)
		}
	}
	to := p
	if nodes[p].count != count {
		to = s.newBucket(p, count)
	}
	t := nodes[to].prev
	nodes[t].next = id
	nodes[id].prev, nodes[id].next, nodes[id].up = t, to, to
	nodes[to].prev = id
}

// newBucket starts an empty bucket of count above bucket p.
func (s *Sketch) newBucket(p uint32, count uint64) uint32 {
	x := s.free
	b := &s.nodes[x]
	s.free = b.up
	b.prev, b.next, b.count = x, x, count
	s.linkBucket(x, p)
	return x
}

// dropBucket frees an emptied bucket.
func (s *Sketch) dropBucket(x uint32) {
	s.unlinkBucket(x)
	s.nodes[x].up = s.free
	s.free = x
}

// linkBucket puts bucket x above bucket p.
func (s *Sketch) linkBucket(x, p uint32) {
	nodes := s.nodes
	q := nodes[p].up
	nodes[x].down, nodes[x].up = p, q
	nodes[p].up = x
	nodes[q].down = x
}

// unlinkBucket takes bucket x out of the list.
func (s *Sketch) unlinkBucket(x uint32) {
	nodes := s.nodes
	d, u := nodes[x].down, nodes[x].up
	nodes[d].up = u
	nodes[u].down = d
}

// Top returns the k largest entries, largest count first (ties: lower
// guaranteed count Count-Error last, then by address). k <= 0 returns all.
func (s *Sketch) Top(k int) []Entry {
	out := make([]Entry, s.used)
	for i := range out {
		out[i] = s.entry(uint32(i))
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

func (s *Sketch) entry(id uint32) Entry {
	c := &s.counters[id]
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], c.hi)
	binary.BigEndian.PutUint64(b[8:], c.lo)
	a, bits := netip.AddrFrom16(b), s.bits6
	if c.v6 == 0 {
		a, bits = a.Unmap(), s.bits4
	}
	return Entry{
		Prefix: netip.PrefixFrom(a, bits),
		Count:  s.nodes[s.nodes[id].up].count, Error: c.error,
		Classes: c.classes,
		First:   time.Unix(0, c.first), Last: time.Unix(0, c.last),
	}
}
