package topsources

// This file is the implementation the current one replaced (an
// open-addressing index with backward-shift deletion, buckets and counters in
// separate lists with end tests), its identifiers prefixed with old, kept as
// a reference: the benchmarks run it beside the current one (impl=old,
// impl=new) and TestSameAsOld checks that both give the same entries.

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"
)

// key is an address masked to the sketch's prefix length, big-endian in two
// halves (an IPv4 address in the top 32 bits of hi); fam keeps an IPv4 address
// apart from its IPv4-mapped IPv6 form.
type oldKey struct {
	hi, lo uint64
	fam    uint8 // 4 or 6
}

// none is the null counter or bucket number.
const oldNone = -1

type oldCounter struct {
	oldKey       oldKey
	count, error uint64
	first, last  int64 // unix nanoseconds
	classes      [MaxClasses]uint64
	oldBucket    int32 // the bucket of count
	prev, next   int32 // neighbours in the bucket, least recently updated first
	slot         int32 // position in the index
}

// bucket holds the counters of one count, in the order they reached it.
type oldBucket struct {
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
type oldSketch struct {
	bits4, bits6 int
	mask4        uint64 // keeps the prefix of an IPv4 hi
	mask6hi      uint64 // ... and of an IPv6 hi, lo
	mask6lo      uint64
	cells        []oldCounter // len grows to capacity, never beyond
	buckets      []oldBucket  // capacity+1: a raise takes a bucket before it frees one
	first        int32        // bucket of the smallest count; oldNone while empty
	free         int32        // unused buckets, chained by next
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
func oldNew(capacity int) *oldSketch {
	s, err := oldNewPrefix(capacity, 32, 128)
	if err != nil {
		panic(err)
	}
	return s
}

// NewPrefix returns a sketch that counts addresses by their network: the
// first bits4 bits of an IPv4 address, bits6 of an IPv6 one.
func oldNewPrefix(capacity, bits4, bits6 int) (*oldSketch, error) {
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
	s := &oldSketch{
		bits4: bits4, bits6: bits6,
		mask4: oldMask64(^uint64(0), bits4), mask6hi: oldMask64(^uint64(0), bits6), mask6lo: oldMask64(^uint64(0), bits6-64),
		cells:   make([]oldCounter, 0, capacity),
		buckets: make([]oldBucket, capacity+1),
		first:   oldNone,
		index:   make([]uint64, size),
		shift:   uint(64 - bits.TrailingZeros(uint(size))),
		mask:    uint64(size - 1),
		// A random seed per sketch: sources cannot be chosen to collide.
		seed: [2]uint64{rand.Uint64(), rand.Uint64() | 1},
	}
	for i := range s.buckets {
		s.buckets[i].next = int32(i + 1)
	}
	s.buckets[capacity].next = oldNone
	return s, nil
}

// Capacity is the number of counters.
func (s *oldSketch) Capacity() int { return cap(s.cells) }

// Total is the sum of n over every Add.
func (s *oldSketch) Total() uint64 { return s.total }

// Exact reports whether every count is exact: no counter was ever taken over.
func (s *oldSketch) Exact() bool { return !s.evicted }

// ErrorBound bounds the overestimation of every entry and the true count of
// every key not monitored: the smallest counter once the sketch has been
// full and taken over, which is at most Total/Capacity; 0 while exact.
func (s *oldSketch) ErrorBound() uint64 {
	if !s.evicted {
		return 0
	}
	return s.buckets[s.first].count
}

// Bits returns the prefix lengths the sketch counts by (32, 128 for exact addresses).
func (s *oldSketch) Bits() (v4, v6 int) { return s.bits4, s.bits6 }

func oldMask64(v uint64, bits int) uint64 {
	switch {
	case bits <= 0:
		return 0
	case bits >= 64:
		return v
	}
	return v &^ (1<<(64-bits) - 1)
}

// addrKey is the unmasked key of an address; ok is false for the zero Addr.
func oldAddrKey(a netip.Addr) (k oldKey, ok bool) {
	switch {
	case a.Is4():
		b := a.As4()
		return oldKey{hi: uint64(binary.BigEndian.Uint32(b[:])) << 32, fam: 4}, true
	case a.Is6():
		b := a.As16()
		return oldKey{hi: binary.BigEndian.Uint64(b[:8]), lo: binary.BigEndian.Uint64(b[8:]), fam: 6}, true
	}
	return oldKey{}, false
}

// srcKey is the unmasked key of an address given as bytes: the first 4 of
// src when v6 is false.
func oldSrcKey(src *[16]byte, v6 bool) oldKey {
	if !v6 {
		return oldKey{hi: uint64(binary.BigEndian.Uint32(src[:4])) << 32, fam: 4}
	}
	return oldKey{hi: binary.BigEndian.Uint64(src[:8]), lo: binary.BigEndian.Uint64(src[8:]), fam: 6}
}

// masked cuts an address key to the sketch's prefix.
func (s *oldSketch) masked(k oldKey) oldKey {
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
func (s *oldSketch) hash(k oldKey) uint64 {
	hi, lo := bits.Mul64(k.hi^s.seed[0], k.lo^s.seed[1]^uint64(k.fam))
	return hi ^ lo
}

// Add counts n packets of class from addr, seen at t. The zero Addr and n == 0
// are ignored. It allocates nothing.
func (s *oldSketch) Add(addr netip.Addr, class uint8, n uint64, t time.Time) {
	k, ok := oldAddrKey(addr)
	if !ok || n == 0 {
		return
	}
	s.add(s.masked(k), class, n, t.UnixNano())
}

const oldTagMask = 0xffffffff00000000

// add counts n >= 1 packets of a masked key.
func (s *oldSketch) add(k oldKey, class uint8, n uint64, ts int64) {
	if class >= MaxClasses {
		class = MaxClasses - 1
	}
	s.total += n
	index, cells, mask := s.index, s.cells, s.mask // locals: stores below cannot reload them
	h := s.hash(k)
	tag := h & oldTagMask
	home := h >> s.shift
	i := home
	for e := index[i]; e != 0; e = index[i] {
		if e&oldTagMask == tag {
			id := int32(uint32(e)) - 1
			if c := &cells[id]; c.oldKey == k {
				c.count += n
				c.classes[class] += n
				c.last = ts
				s.settle(id, c.oldBucket, c.count)
				return
			}
		}
		i = (i + 1) & mask
	}
	// Not monitored: a free counter, else take over the smallest one (the
	// least recently updated among equals), whose count becomes the error.
	var id int32
	var floor uint64
	from := int32(oldNone)
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
	c.oldKey, c.count, c.error, c.first, c.last = k, floor+n, floor, ts, ts
	c.classes = [MaxClasses]uint64{}
	c.classes[class] = n
	c.slot = int32(i)
	index[i] = tag | uint64(id+1)
	s.settle(id, from, c.count)
}

// unindex empties index slot i and shifts later entries of its probe run
// back, so lookups need no tombstones.
func (s *oldSketch) unindex(i int32) {
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
func (s *oldSketch) settle(id, from int32, count uint64) {
	b := s.buckets
	p, q := from, s.first // p: the last bucket below or at count; q: the one after it
	if from != oldNone {
		q = b[from].next
	}
	for q != oldNone && b[q].count <= count {
		p, q = q, b[q].next
	}
	if p != oldNone && b[p].count == count {
		if from != oldNone {
			s.detach(id, from)
		}
		s.push(id, p)
		return
	}
	if from != oldNone && p == from && b[from].head == b[from].tail { // alone in its bucket: the bucket moves up
		b[from].count = count
		return
	}
	nb := s.free
	s.free = b[nb].next
	b[nb] = oldBucket{count: count, head: oldNone, tail: oldNone, prev: p, next: q}
	if p == oldNone {
		s.first = nb
	} else {
		b[p].next = nb
	}
	if q != oldNone {
		b[q].prev = nb
	}
	if from != oldNone {
		s.detach(id, from)
	}
	s.push(id, nb)
}

// push appends counter id to bucket bk.
func (s *oldSketch) push(id, bk int32) {
	b := &s.buckets[bk]
	c := &s.cells[id]
	c.oldBucket, c.prev, c.next = bk, b.tail, oldNone
	if b.tail == oldNone {
		b.head = id
	} else {
		s.cells[b.tail].next = id
	}
	b.tail = id
}

// detach takes counter id out of bucket bk, and an emptied bucket out of the list.
func (s *oldSketch) detach(id, bk int32) {
	c := &s.cells[id]
	b := &s.buckets[bk]
	if c.prev == oldNone {
		b.head = c.next
	} else {
		s.cells[c.prev].next = c.next
	}
	if c.next == oldNone {
		b.tail = c.prev
	} else {
		s.cells[c.next].prev = c.prev
	}
	if b.head != oldNone {
		return
	}
	if b.prev == oldNone {
		s.first = b.next
	} else {
		s.buckets[b.prev].next = b.next
	}
	if b.next != oldNone {
		s.buckets[b.next].prev = b.prev
	}
	b.next = s.free
	s.free = bk
}

// Top returns the k largest entries, largest count first (ties: lower
// guaranteed count Count-Error last, then by address). k <= 0 returns all.
func (s *oldSketch) Top(k int) []Entry {
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

func (s *oldSketch) entry(c *oldCounter) Entry {
	var a netip.Addr
	bits := s.bits4
	if c.oldKey.fam == 4 {
		a = netip.AddrFrom4([4]byte{byte(c.oldKey.hi >> 56), byte(c.oldKey.hi >> 48), byte(c.oldKey.hi >> 40), byte(c.oldKey.hi >> 32)})
	} else {
		var b [16]byte
		for i := 0; i < 8; i++ {
			b[i] = byte(c.oldKey.hi >> (56 - 8*i))
			b[8+i] = byte(c.oldKey.lo >> (56 - 8*i))
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

// pending is a buffered observation, its address already a key: the
// network key is cut from it at Flush.
type oldPending struct {
	oldKey oldKey
	class  uint8
	ts     int64
}
type oldSources struct {
	mu          sync.Mutex
	addrs, nets *oldSketch // guarded by mu

	// Owned by the writer.
	buf [pendingMax]oldPending
	n   int
}

// Observe counts one packet of class from addr seen at tsNs (unix
// nanoseconds); the zero Addr is ignored. Writer only; it allocates nothing.
func (s *oldSources) Observe(addr netip.Addr, class uint8, tsNs int64) {
	if k, ok := oldAddrKey(addr); ok {
		s.observe(k, class, tsNs)
	}
}

// ObserveSrc is Observe for an address as a decoder holds it: src[:4] when
// v6 is false, else all of src. It spares the per-packet path a netip.Addr.
func (s *oldSources) ObserveSrc(src *[16]byte, v6 bool, class uint8, tsNs int64) {
	s.observe(oldSrcKey(src, v6), class, tsNs)
}
func (s *oldSources) observe(k oldKey, class uint8, tsNs int64) {
	s.buf[s.n] = oldPending{k, class, tsNs}
	s.n++
	if s.n == pendingMax {
		s.Flush()
	}
}

// Flush makes the buffered observations visible to readers. Writer only.
func (s *oldSources) Flush() {
	if s.n == 0 {
		return
	}
	s.mu.Lock()
	for i := range s.buf[:s.n] {
		p := &s.buf[i]
		s.addrs.add(p.oldKey, p.class, 1, p.ts) // the address sketch keeps every bit
		s.nets.add(s.nets.masked(p.oldKey), p.class, 1, p.ts)
	}
	s.mu.Unlock()
	s.n = 0
}

func oldNewSources(capacity int) (*oldSources, error) {
	nets, err := oldNewPrefix(capacity, NetBits4, NetBits6)
	if err != nil {
		return nil, err
	}
	return &oldSources{addrs: oldNew(capacity), nets: nets}, nil
}

// TestSameAsOld feeds the test streams to the old implementation and the new:
// the algorithm and its tie-break are the same, so every entry must be.
func TestSameAsOld(t *testing.T) {
	for _, capacity := range []int{1, 2, 64, 1024} {
		for name, st := range testStreams(capacity) {
			for _, bits := range [][2]int{{32, 128}, {24, 48}} {
				s, _ := NewPrefix(capacity, bits[0], bits[1])
				o, _ := oldNewPrefix(capacity, bits[0], bits[1])
				for i, u := range st {
					s.Add(u.addr, u.class, u.n, time.Unix(int64(i), 0))
					o.Add(u.addr, u.class, u.n, time.Unix(int64(i), 0))
				}
				got, want := s.Top(0), o.Top(0)
				if !slices.EqualFunc(got, want, func(a, b Entry) bool {
					return a.Prefix == b.Prefix && a.Count == b.Count && a.Error == b.Error &&
						a.Classes == b.Classes && a.First.Equal(b.First) && a.Last.Equal(b.Last)
				}) || s.Total() != o.Total() || s.ErrorBound() != o.ErrorBound() || s.Exact() != o.Exact() {
					t.Errorf("capacity %d, %s, /%d /%d: new and old differ", capacity, name, bits[0], bits[1])
				}
			}
		}
	}
}
