package topsources

import (
	"net/netip"
	"testing"
	"time"
)

// FuzzSketch checks the Space-Saving guarantees against an exact count, on
// streams over a small universe of sources (so that keys recur and counters
// are taken over): the first byte picks the capacity, then each pair of
// bytes is a source (IPv4 or IPv6) and a weight/class.
func FuzzSketch(f *testing.F) {
	f.Add([]byte{2, 1, 0, 2, 0, 3, 0})
	f.Add([]byte{3, 1, 9, 1, 9, 2, 1, 3, 1, 4, 1, 5, 1, 1, 9, 200, 7, 130, 3})
	f.Add([]byte{0, 5, 5, 5, 5, 5, 5, 6, 1})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		capacity := int(data[0]%16) + 1
		for _, bits := range [][2]int{{32, 128}, {24, 48}, {30, 126}} {
			s, err := NewPrefix(capacity, bits[0], bits[1])
			if err != nil {
				t.Fatal(err)
			}
			exact := map[netip.Prefix]uint64{}
			ref := &naive{capacity: capacity}
			var total uint64
			for i := 1; i+1 < len(data); i += 2 {
				src, w := data[i], data[i+1]
				var a netip.Addr
				if src&0x80 != 0 {
					a = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, src & 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, src & 0x7f})
				} else {
					a = netip.AddrFrom4([4]byte{10, 0, 0, src})
				}
				n := uint64(w%4) + 1
				s.Add(a, w>>5, n, time.Unix(int64(i), 0))
				pfx, _ := a.Prefix(map[bool]int{true: bits[0], false: bits[1]}[a.Is4()])
				exact[pfx] += n
				ref.add(pfx, w>>5, n, int64(i))
				total += n
				structure(t, s)
			}
			check(t, s, exact, total, capacity)
			same(t, s, ref)
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
	seq      int
}

type naiveEntry struct {
	Entry
	seq int
}

func (r *naive) add(p netip.Prefix, class uint8, n uint64, ts int64) {
	r.seq++
	class = min(class, MaxClasses-1)
	t := time.Unix(ts, 0)
	for i := range r.entries {
		if e := &r.entries[i]; e.Prefix == p {
			e.Count += n
			e.Classes[class] += n
			e.Last, e.seq = t, r.seq
			return
		}
	}
	e := naiveEntry{Entry: Entry{Prefix: p, Count: n, First: t, Last: t}, seq: r.seq}
	e.Classes[class] = n
	if len(r.entries) < r.capacity {
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
// count, each counter in the bucket of its count, each in the index at its slot.
func structure(t *testing.T, s *Sketch) {
	t.Helper()
	n, prev := 0, int32(none)
	for b := s.first; b != none; prev, b = b, s.buckets[b].next {
		bk := &s.buckets[b]
		if bk.prev != prev || prev != none && s.buckets[prev].count >= bk.count || bk.head == none {
			t.Fatalf("bucket %d (count %d) out of order or empty", b, bk.count)
		}
		last := int32(none)
		for c := bk.head; c != none; last, c = c, s.cells[c].next {
			if cl := &s.cells[c]; cl.bucket != b || cl.prev != last || cl.count != bk.count {
				t.Fatalf("counter %d (count %d) misplaced in bucket %d (count %d)", c, cl.count, b, bk.count)
			}
			n++
		}
		if bk.tail != last {
			t.Fatalf("bucket %d tail %d, want %d", b, bk.tail, last)
		}
	}
	if n != len(s.cells) {
		t.Fatalf("%d counters in buckets, %d in use", n, len(s.cells))
	}
	for id := range s.cells {
		c := &s.cells[id]
		if e := s.index[c.slot]; int(uint32(e))-1 != id || e&tagMask != s.hash(c.key)&tagMask {
			t.Fatalf("counter %d not at its index slot %d", id, c.slot)
		}
		// Linear probing: no empty slot between a key's home and its slot.
		for i := s.hash(c.key) >> s.shift; i != uint64(c.slot); i = (i + 1) & s.mask {
			if s.index[i] == 0 {
				t.Fatalf("counter %d unreachable: slot %d empty before its slot %d", id, i, c.slot)
			}
		}
	}
}
