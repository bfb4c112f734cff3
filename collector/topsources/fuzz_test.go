package topsources

import (
	"math"
	"math/bits"
	"net/netip"
	"testing"
	"time"
)

// FuzzSketch checks the Space-Saving guarantees against an exact count, on
// streams over a small universe of sources (so that keys recur and counters
// are taken over): the first byte picks the capacity and, by its top bit, a
// seed under which every IPv4 key has the same home group and tag (so the
// index overflows, and lookups, removals and takeovers work beyond home
// groups); then each pair of bytes is a source (IPv4 or IPv6) and a
// weight/class. After every update the index, the counters and the buckets
// must agree (structure); at the end every entry must be the naive
// Space-Saving's.
func FuzzSketch(f *testing.F) {
	f.Add([]byte{2, 1, 0, 2, 0, 3, 0})
	f.Add([]byte{3, 1, 9, 1, 9, 2, 1, 3, 1, 4, 1, 5, 1, 1, 9, 200, 7, 130, 3})
	f.Add([]byte{0, 5, 5, 5, 5, 5, 5, 6, 1})
	f.Add([]byte{0x8f, 1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6, 0, 7, 0, 8, 0, 9, 0, 10, 0, 11, 0, 12, 0, 1, 3, 13, 0, 14, 0, 15, 0, 16, 0, 17, 0, 2, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		capacity := int(data[0]%32) + 1
		collide := data[0]&0x80 != 0
		var st []update
		for i := 1; i+1 < len(data); i += 2 {
			src, w := data[i], data[i+1]
			var a netip.Addr
			if src&0x80 != 0 {
				a = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, src & 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, src & 0x7f})
			} else {
				a = netip.AddrFrom4([4]byte{10, 0, 0, src})
			}
			n := uint64(w%4) + 1
			if w%16 == 15 {
				n = uint64(w) * 100 // a raise over many buckets
			}
			st = append(st, update{a, w >> 5, n})
		}
		for _, bits := range [][2]int{{32, 128}, {24, 48}, {30, 126}} {
			runChecked(t, capacity, bits, collide, st, 1)
		}
	})
}

func check(t *testing.T, s *Sketch, exact map[netip.Prefix]uint64, total uint64, capacity int) {
	t.Helper()
	top := s.Top(0)
	if s.Total() != total {
		t.Fatalf("total %d, want %d", s.Total(), total)
	}
	if want := len(exact) <= capacity; s.Exact() != want {
		t.Fatalf("Exact() = %v with %d distinct keys and capacity %d", s.Exact(), len(exact), capacity)
	}
	if want := min(len(exact), capacity); len(top) != want {
		t.Fatalf("%d entries, want %d", len(top), want)
	}
	bound := s.ErrorBound()
	if bound > total/uint64(capacity) {
		t.Fatalf("error bound %d exceeds total/capacity = %d/%d", bound, total, capacity)
	}
	var sum uint64
	seen := map[netip.Prefix]bool{}
	for _, e := range top {
		sum += e.Count
		seen[e.Prefix] = true
		tr := exact[e.Prefix]
		if e.Count-e.Error > tr || tr > e.Count {
			t.Fatalf("%v: count %d error %d, true count %d", e.Prefix, e.Count, e.Error, tr)
		}
		if e.Error > bound || s.Exact() && e.Error != 0 {
			t.Fatalf("%v: error %d, bound %d, exact %v", e.Prefix, e.Error, bound, s.Exact())
		}
		var classes uint64
		for _, c := range e.Classes {
			classes += c
		}
		if classes != e.Count-e.Error {
			t.Fatalf("%v: classes sum to %d, want count-error %d", e.Prefix, classes, e.Count-e.Error)
		}
		if e.First.After(e.Last) {
			t.Fatalf("%v: first %v after last %v", e.Prefix, e.First, e.Last)
		}
	}
	if sum != total {
		t.Fatalf("counts sum to %d, want the total %d", sum, total)
	}
	for p, n := range exact {
		if !seen[p] && (n > bound || n > total/uint64(capacity)) {
			t.Fatalf("%v with true count %d is not monitored (bound %d, total %d, capacity %d)", p, n, bound, total, capacity)
		}
	}
}

// naive is Space-Saving the slow, obvious way: a list of counters, the
// smallest (least recently updated among equals) found by a scan.
type naive struct {
	capacity int
	entries  []naiveEntry
	at       map[netip.Prefix]int // entries' positions
	seq      int
}

type naiveEntry struct {
	Entry
	seq int
}

func (r *naive) add(p netip.Prefix, class uint8, n uint64, ts int64) {
	if r.at == nil {
		r.at = map[netip.Prefix]int{}
	}
	r.seq++
	class = min(class, MaxClasses-1)
	t := time.Unix(ts, 0)
	if i, ok := r.at[p]; ok {
		e := &r.entries[i]
		e.Count += n
		e.Classes[class] += n
		e.Last, e.seq = t, r.seq
		return
	}
	e := naiveEntry{Entry: Entry{Prefix: p, Count: n, First: t, Last: t}, seq: r.seq}
	e.Classes[class] = n
	if len(r.entries) < r.capacity {
		r.at[p] = len(r.entries)
		r.entries = append(r.entries, e)
		return
	}
	m := 0
	for i, o := range r.entries {
		if o.Count < r.entries[m].Count || o.Count == r.entries[m].Count && o.seq < r.entries[m].seq {
			m = i
		}
	}
	e.Error = r.entries[m].Count
	e.Count += e.Error
	delete(r.at, r.entries[m].Prefix)
	r.at[p] = m
	r.entries[m] = e
}

// same checks that the sketch holds exactly the naive one's entries.
func same(t *testing.T, s *Sketch, r *naive) {
	t.Helper()
	want := map[netip.Prefix]Entry{}
	for _, e := range r.entries {
		want[e.Prefix] = e.Entry
	}
	got := s.Top(0)
	if len(got) != len(want) {
		t.Fatalf("%d entries, the naive sketch has %d", len(got), len(want))
	}
	for _, g := range got {
		w, ok := want[g.Prefix]
		if !ok || g.Count != w.Count || g.Error != w.Error || g.Classes != w.Classes || !g.First.Equal(w.First) || !g.Last.Equal(w.Last) {
			t.Fatalf("entry %+v, the naive sketch has %+v", g, w)
		}
	}
}

// structure checks the sketch's internal links: buckets by strictly ascending
// count between the sentinel's ends, each a non-empty circular list of the
// counters of its count; the unused buckets on the free list; each counter at
// the index slot that holds its hash's tag and its number, in its home group
// or beyond it with every group passed counting it in over.
func structure(t *testing.T, s *Sketch) {
	t.Helper()
	nodes, sen, capacity := s.nodes, s.sentinel, s.capacity
	if nodes[sen].count != math.MaxUint64 {
		t.Fatalf("sentinel bucket count %d", nodes[sen].count)
	}
	inList, prev := map[uint32]bool{}, sen
	seen := make([]bool, s.used)
	for bk := nodes[sen].up; bk != sen; prev, bk = bk, nodes[bk].up {
		if bk < capacity || bk >= sen || inList[bk] {
			t.Fatalf("bucket %d out of range or listed twice", bk)
		}
		inList[bk] = true
		if nodes[bk].down != prev || prev != sen && nodes[prev].count >= nodes[bk].count {
			t.Fatalf("bucket %d (count %d) out of order", bk, nodes[bk].count)
		}
		last := bk
		if nodes[bk].next == bk {
			t.Fatalf("bucket %d (count %d) is empty", bk, nodes[bk].count)
		}
		for id := nodes[bk].next; id != bk; last, id = id, nodes[id].next {
			if id >= s.used || seen[id] {
				t.Fatalf("bucket %d lists counter %d (out of range or twice)", bk, id)
			}
			seen[id] = true
			if nodes[id].prev != last || nodes[id].up != bk {
				t.Fatalf("counter %d misplaced in bucket %d", id, bk)
			}
		}
		if nodes[bk].prev != last {
			t.Fatalf("bucket %d tail %d, want %d", bk, nodes[bk].prev, last)
		}
	}
	if nodes[sen].down != prev {
		t.Fatalf("sentinel's last bucket %d, want %d", nodes[sen].down, prev)
	}
	for id, ok := range seen {
		if !ok {
			t.Fatalf("counter %d in no bucket", id)
		}
	}
	nfree := 0
	for f := s.free; f != sen; f = nodes[f].up {
		if f < capacity || f > sen || inList[f] || nfree > int(capacity) {
			t.Fatalf("free bucket %d in use, out of range or in a loop", f)
		}
		nfree++
	}
	if nfree+len(inList) != int(capacity) {
		t.Fatalf("%d free and %d used buckets, want %d", nfree, len(inList), capacity)
	}
	over := make([]uint32, len(s.groups))
	for id := range s.counters[:s.used] {
		c := &s.counters[id]
		h := s.hash(key{c.hi, c.lo, c.v6})
		g := &s.groups[c.group]
		if byte(g.tags>>(8*c.slot)) != byte(tagOf(h)) || g.ids[c.slot] != uint16(id) {
			t.Fatalf("counter %d not at its index slot %d.%d", id, c.group, c.slot)
		}
		home := h & s.gmask
		if c.displaced != (home != uint64(c.group)) {
			t.Fatalf("counter %d: home group %d, group %d, displaced %v", id, home, c.group, c.displaced)
		}
		for i := home; i != uint64(c.group); i = (i + 1) & s.gmask {
			over[i]++
		}
	}
	tags := 0
	for i := range s.groups {
		if s.groups[i].over != over[i] {
			t.Fatalf("group %d: over %d, want %d", i, s.groups[i].over, over[i])
		}
		tags += bits.OnesCount64(s.groups[i].tags & msbs)
	}
	if tags != int(s.used) {
		t.Fatalf("%d tags for %d counters", tags, s.used)
	}
}
