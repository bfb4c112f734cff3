package conntrack

import "hash/maphash"

// flowMemory remembers recently ended flows: a ring of fixed-size entries in
// arrival order (so the oldest is always at the head, for both the time window
// and the size bound) plus an open-addressing index from the unordered key to
// the ring slot.
//
// Memory is fixed when it is built: max-flows ring slots of 48 bytes and an
// index of 4-byte cells at least twice that count (load factor <= 1/2), 56
// bytes per flow at the default 65536 (3.5 MiB), however many DESTROY
// events arrive. A flow that ends twice (a reused tuple) moves to the tail;
// its old slot stays behind as a tombstone that the index no longer points
// at, and is dropped when it reaches the head.
//
// Not safe for concurrent use; the tracker serialises access.
type flowMemory struct {
	window  int64 // nanoseconds
	ring    []memEntry
	head, n int
	index   []uint32 // ring slot + 1; 0 = empty cell. Linear probing.
	mask    uint64
	seed    maphash.Seed // keyed hash: crafted tuples cannot force collisions
	live    int
	evicted uint64 // live entries pushed out by the size bound before their window ended
}

type memEntry struct {
	key   flowKey
	ended int64 // unix nanoseconds when conntrack destroyed the flow
}

func newFlowMemory(maxFlows int, window int64) *flowMemory {
	size := 8
	for size < 2*maxFlows {
		size *= 2
	}
	return &flowMemory{
		window: window,
		ring:   make([]memEntry, maxFlows),
		index:  make([]uint32, size),
		mask:   uint64(size - 1),
		seed:   maphash.MakeSeed(),
	}
}

func (m *flowMemory) home(k flowKey) uint64 { return maphash.Comparable(m.seed, k) & m.mask }

// find returns the index cell of k, or the empty cell where it would go.
func (m *flowMemory) find(k flowKey) (cell uint64, found bool) {
	for i := m.home(k); ; i = (i + 1) & m.mask {
		v := m.index[i]
		if v == 0 {
			return i, false
		}
		if m.ring[v-1].key == k {
			return i, true
		}
	}
}

// add records that the flow k ended at ended; now drives the window.
func (m *flowMemory) add(k flowKey, ended, now int64) {
	m.expire(now)
	if m.n == len(m.ring) {
		if m.popHead() {
			m.evicted++
		}
	}
	slot := m.head + m.n
	if slot >= len(m.ring) {
		slot -= len(m.ring)
	}
	cell, found := m.find(k) // found: the flow ended before, its old slot becomes a tombstone
	m.ring[slot] = memEntry{key: k, ended: ended}
	m.index[cell] = uint32(slot) + 1
	if !found {
		m.live++
	}
	m.n++
}

// lookup returns when the flow k ended, if it is remembered.
func (m *flowMemory) lookup(k flowKey) (ended int64, ok bool) {
	cell, found := m.find(k)
	if !found {
		return 0, false
	}
	return m.ring[m.index[cell]-1].ended, true
}

// expire forgets flows that ended more than the window before now.
func (m *flowMemory) expire(now int64) {
	for m.n > 0 && now-m.ring[m.head].ended > m.window {
		m.popHead()
	}
}

// popHead drops the oldest slot; it reports whether that slot was live (not
// a tombstone).
func (m *flowMemory) popHead() bool {
	live := false
	if cell, found := m.find(m.ring[m.head].key); found && int(m.index[cell]-1) == m.head {
		m.remove(cell)
		m.live--
		live = true
	}
	m.head++
	if m.head == len(m.ring) {
		m.head = 0
	}
	m.n--
	return live
}

// remove empties an index cell and shifts later cells of the same probe run
// back (linear probing without tombstones, Knuth 6.4 Algorithm R).
func (m *flowMemory) remove(i uint64) {
	for {
		m.index[i] = 0
		j := i
		for {
			j = (j + 1) & m.mask
			v := m.index[j]
			if v == 0 {
				return
			}
			h := m.home(m.ring[v-1].key)
			// The entry at j may stay if its home lies cyclically in (i, j].
			stays := (i < j && i < h && h <= j) || (j < i && (h > i || h <= j))
			if !stays {
				m.index[i] = v
				i = j
				break
			}
		}
	}
}

// len is the number of remembered flows (tombstones excluded).
func (m *flowMemory) len() int { return m.live }
