package conntrack

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"
)

func TestKeyUnordered(t *testing.T) {
	for _, tc := range []struct {
		name  string
		a, b  Tuple
		equal bool
	}{
		{"ipv4 both directions", tup(t, "10.99.0.2", 40000, "10.99.0.1", 443), tup(t, "10.99.0.1", 443, "10.99.0.2", 40000), true},
		{"ipv6 both directions", tup(t, "fd99::2", 40000, "fd99::1", 443), tup(t, "fd99::1", 443, "fd99::2", 40000), true},
		{"same addresses, ports swapped", tup(t, "127.0.0.1", 1000, "127.0.0.1", 2000), tup(t, "127.0.0.1", 2000, "127.0.0.1", 1000), true},
		{"mapped ipv4 is ipv4", tup(t, "::ffff:10.99.0.2", 40000, "::ffff:10.99.0.1", 443), tup(t, "10.99.0.1", 443, "10.99.0.2", 40000), true},
		{"other source port", tup(t, "10.99.0.2", 40000, "10.99.0.1", 443), tup(t, "10.99.0.2", 40001, "10.99.0.1", 443), false},
		{"ports crossed between ends", tup(t, "10.99.0.2", 443, "10.99.0.1", 40000), tup(t, "10.99.0.2", 40000, "10.99.0.1", 443), false},
		{"other destination", tup(t, "10.99.0.2", 40000, "10.99.0.1", 443), tup(t, "10.99.0.2", 40000, "10.99.0.3", 443), false},
		// 10.99.0.1 in the first 4 bytes of an IPv6 address: only the family
		// tells them apart.
		{"ipv4 vs ipv6 with the same bytes", tup(t, "10.99.0.2", 1, "10.99.0.1", 2), tup(t, "a63:2::", 1, "a63:1::", 2), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.a.key() == tc.b.key(); got != tc.equal {
				t.Errorf("key(%v) == key(%v): %v, want %v", tc.a, tc.b, got, tc.equal)
			}
		})
	}
}

func TestTupleFromAddrsRejectsMixedFamilies(t *testing.T) {
	tp := tup(t, "fd99::1", 1, "fd99::2", 2)
	src, dst := tp.addrs()
	if src.String() != "fd99::1" || dst.String() != "fd99::2" {
		t.Errorf("addrs() = %v %v", src, dst)
	}
	tp4 := tup(t, "10.99.0.1", 1, "10.99.0.2", 2)
	if src, dst := tp4.addrs(); src.String() != "10.99.0.1" || dst.String() != "10.99.0.2" {
		t.Errorf("addrs() = %v %v", src, dst)
	}
	if _, ok := tupleFromAddrs(netip.MustParseAddr("fd99::1"), netip.MustParseAddr("10.99.0.2"), 1, 2); ok {
		t.Error("mixed IPv6/IPv4 tuple accepted")
	}
	if _, ok := tupleFromAddrs(netip.Addr{}, netip.Addr{}, 1, 2); ok {
		t.Error("invalid addresses accepted")
	}
}

func TestFlowMemory(t *testing.T) {
	sec := int64(time.Second)
	k := func(port uint16) flowKey {
		tp := tup(t, "10.99.0.2", port, "10.99.0.1", 443)
		return tp.key()
	}
	t.Run("window", func(t *testing.T) {
		m := newFlowMemory(4, 10*sec)
		m.add(k(1), 100*sec, 100*sec)
		m.add(k(2), 105*sec, 105*sec)
		if e, ok := m.lookup(k(1)); !ok || e != 100*sec {
			t.Fatalf("lookup = %d, %v; want %d, true", e, ok, 100*sec)
		}
		m.expire(110 * sec) // exactly the window: kept
		if m.len() != 2 {
			t.Fatalf("len at window edge = %d, want 2", m.len())
		}
		m.expire(110*sec + 1)
		if _, ok := m.lookup(k(1)); ok || m.len() != 1 {
			t.Fatalf("after window: flow 1 still remembered (len %d)", m.len())
		}
		if _, ok := m.lookup(k(2)); !ok {
			t.Fatal("flow 2 forgotten inside its window")
		}
		if m.evicted != 0 {
			t.Errorf("evicted = %d, want 0 (expiry is not eviction)", m.evicted)
		}
	})
	t.Run("bound evicts oldest", func(t *testing.T) {
		m := newFlowMemory(3, 100*sec)
		for p := uint16(1); p <= 5; p++ {
			m.add(k(p), int64(p)*sec, int64(p)*sec)
		}
		if m.len() != 3 || m.evicted != 2 {
			t.Fatalf("len %d evicted %d, want 3 and 2", m.len(), m.evicted)
		}
		for p, want := range map[uint16]bool{1: false, 2: false, 3: true, 4: true, 5: true} {
			if _, ok := m.lookup(k(p)); ok != want {
				t.Errorf("flow %d remembered %v, want %v", p, ok, want)
			}
		}
	})
	t.Run("re-ended flow moves to the tail", func(t *testing.T) {
		m := newFlowMemory(3, 100*sec)
		m.add(k(1), 1*sec, 1*sec)
		m.add(k(2), 2*sec, 2*sec)
		m.add(k(1), 3*sec, 3*sec) // tuple reused and ended again: slot 0 is a tombstone
		if m.len() != 2 {
			t.Fatalf("len %d, want 2", m.len())
		}
		if e, _ := m.lookup(k(1)); e != 3*sec {
			t.Fatalf("flow 1 ended %d, want the newer %d", e, 3*sec)
		}
		m.add(k(3), 4*sec, 4*sec) // ring full: pops the tombstone, nothing live lost
		if m.evicted != 0 || m.len() != 3 {
			t.Fatalf("evicted %d len %d, want 0 and 3", m.evicted, m.len())
		}
		for _, p := range []uint16{1, 2, 3} {
			if _, ok := m.lookup(k(p)); !ok {
				t.Errorf("flow %d forgotten", p)
			}
		}
		m.add(k(4), 5*sec, 5*sec) // now flow 2 (oldest live) goes
		if _, ok := m.lookup(k(2)); ok || m.evicted != 1 {
			t.Errorf("flow 2 remembered %v, evicted %d; want false, 1", ok, m.evicted)
		}
		if _, ok := m.lookup(k(1)); !ok {
			t.Error("flow 1 (re-ended later) evicted before flow 2")
		}
	})
	t.Run("never above max-flows", func(t *testing.T) {
		const max = 64
		m := newFlowMemory(max, 1000*sec)
		for i := 0; i < 10000; i++ {
			m.add(k(uint16(i%500)), int64(i), int64(i))
			if m.len() > max || m.n > max {
				t.Fatalf("after %d adds: len %d ring %d > %d", i+1, m.len(), m.n, max)
			}
		}
		if m.len() != max {
			t.Errorf("len %d, want %d", m.len(), max)
		}
	})
}

// refMemory is the obvious implementation (a Go map as the index), kept as
// the model the open-addressing index is checked against.
type refMemory struct {
	window  int64
	ring    []memEntry
	head, n int
	index   map[flowKey]int
	evicted uint64
}

func (m *refMemory) add(k flowKey, ended, now int64) {
	m.expire(now)
	if m.n == len(m.ring) && m.popHead() {
		m.evicted++
	}
	slot := (m.head + m.n) % len(m.ring)
	m.ring[slot] = memEntry{key: k, ended: ended}
	m.index[k] = slot
	m.n++
}

func (m *refMemory) expire(now int64) {
	for m.n > 0 && now-m.ring[m.head].ended > m.window {
		m.popHead()
	}
}

func (m *refMemory) popHead() bool {
	e := m.ring[m.head]
	live := m.index[e.key] == m.head
	if s, ok := m.index[e.key]; ok && s == m.head {
		delete(m.index, e.key)
	} else {
		live = false
	}
	m.head = (m.head + 1) % len(m.ring)
	m.n--
	return live
}

// TestFlowMemoryModel drives the memory and the model with the same random
// operations (few distinct keys, so flows end repeatedly; a small index, so
// probe runs collide and wrap around) and compares every answer.
func TestFlowMemoryModel(t *testing.T) {
	for _, max := range []int{1, 3, 17, 64} {
		t.Run(fmt.Sprint(max), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(max), 7))
			keys := make([]flowKey, 3*max+5)
			for i := range keys {
				tp := tup(t, "10.99.0.2", uint16(i), "10.99.0.1", 443)
				keys[i] = tp.key()
			}
			const window = 50
			m := newFlowMemory(max, window)
			ref := &refMemory{window: window, ring: make([]memEntry, max), index: map[flowKey]int{}}
			now := int64(0)
			for op := 0; op < 200000; op++ {
				now += int64(rng.IntN(3))
				k := keys[rng.IntN(len(keys))]
				switch rng.IntN(4) {
				case 0, 1:
					m.add(k, now, now)
					ref.add(k, now, now)
				case 2:
					m.expire(now)
					ref.expire(now)
				case 3:
					e, ok := m.lookup(k)
					s, rok := ref.index[k]
					if ok != rok || (ok && e != ref.ring[s].ended) {
						t.Fatalf("op %d: lookup = %d,%v; model %v", op, e, ok, rok)
					}
				}
				if m.len() != len(ref.index) || m.evicted != ref.evicted || m.n != ref.n {
					t.Fatalf("op %d: len %d evicted %d n %d; model %d %d %d", op, m.len(), m.evicted, m.n, len(ref.index), ref.evicted, ref.n)
				}
			}
			// Every remembered key is findable and nothing else is.
			for _, k := range keys {
				_, ok := m.lookup(k)
				if _, rok := ref.index[k]; ok != rok {
					t.Fatalf("final lookup of %v: %v, model %v", k, ok, rok)
				}
			}
		})
	}
}
