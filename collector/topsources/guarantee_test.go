package topsources

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"
)

// update is one Add of a test stream.
type update struct {
	addr  netip.Addr
	class uint8
	n     uint64
}

// testStreams are the streams TestGuarantees runs on a sketch of capacity
// c: each mixes IPv4 and IPv6 sources.
func testStreams(c int) map[string][]update {
	r := rand.New(rand.NewPCG(uint64(c), 7))
	u := universe(r, 4*c+64)
	z := rand.NewZipf(r, 1.1, 1, uint64(len(u)-1))
	const n = 20000
	ones := func(pick func(i int) netip.Addr) []update {
		out := make([]update, n)
		for i := range out {
			out[i] = update{pick(i), uint8(r.IntN(MaxClasses + 2)), 1}
		}
		return out
	}
	streams := map[string][]update{
		"uniform": ones(func(int) netip.Addr { return u[r.IntN(len(u))] }),
		"zipf":    ones(func(int) netip.Addr { return u[z.Uint64()] }),
		// Every update after the first c is a new source: each takes a counter over.
		"scan": ones(func(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}) }),
		// A few sources far above the rest, among one-offs.
		"heavy": ones(func(i int) netip.Addr {
			if i%3 == 0 {
				return u[i%5]
			}
			return netip.AddrFrom4([4]byte{172, 16, byte(i >> 8), byte(i)})
		}),
	}
	// Weights: raises that jump over many buckets.
	w := ones(func(int) netip.Addr { return u[z.Uint64()] })
	for i := range w {
		w[i].n = 1 + uint64(r.IntN(50))
		if r.IntN(20) == 0 {
			w[i].n = 1 + uint64(r.IntN(100000))
		}
	}
	streams["weighted"] = w
	// Random interleavings of the others, in runs of random length.
	names := []string{"uniform", "zipf", "scan", "heavy", "weighted"}
	for k := range 3 {
		out := make([]update, 0, n)
		for len(out) < n {
			from := streams[names[r.IntN(len(names))]]
			at, run := r.IntN(n), 1+r.IntN(200)
			out = append(out, from[at:min(at+run, n)]...)
		}
		streams[fmt.Sprintf("interleaved%d", k)] = out[:n]
	}
	return streams
}

// runChecked adds the updates of st to a new sketch of capacity counters by
// prefix lengths bits (IPv4, IPv6), under a seed that hashes every IPv4 key
// to 0 when collide, and checks its structure after every every-th update
// and at the end, then the guarantees against a brute-force count and
// every entry against the naive Space-Saving.
func runChecked(t *testing.T, capacity int, bits [2]int, collide bool, st []update, every int) *Sketch {
	t.Helper()
	s, err := NewPrefix(capacity, bits[0], bits[1])
	if err != nil {
		t.Fatal(err)
	}
	if collide {
		s.seed = [2]uint64{} // IPv4 keys all hash to 0
	}
	exact := map[netip.Prefix]uint64{}
	ref := &naive{capacity: capacity}
	var total uint64
	for i, u := range st {
		s.Add(u.addr, u.class, u.n, time.Unix(int64(i), 0))
		b := bits[0]
		if u.addr.Is6() {
			b = bits[1]
		}
		p, _ := u.addr.Prefix(b)
		exact[p] += u.n
		ref.add(p, u.class, u.n, int64(i))
		total += u.n
		if i%every == 0 {
			structure(t, s)
		}
	}
	structure(t, s)
	check(t, s, exact, total, capacity)
	same(t, s, ref)
	return s
}

// TestGuarantees checks, on every test stream and for capacities 1, 2, 64
// and 1024, exact and network sketches, with a random seed and with one
// under which every IPv4 key has the same home group and tag (so the index
// overflows and lookups, removals and takeovers work beyond home groups):
// the guarantees against a brute-force count, and every entry against the
// naive Space-Saving (the algorithm is deterministic).
func TestGuarantees(t *testing.T) {
	for _, capacity := range []int{1, 2, 64, 1024} {
		streams := testStreams(capacity)
		for name, st := range streams {
			for _, bits := range [][2]int{{32, 128}, {24, 48}} {
				for _, collide := range []bool{false, true} {
					t.Run(fmt.Sprintf("capacity=%d/%s/bits=%d,%d/collide=%v", capacity, name, bits[0], bits[1], collide), func(t *testing.T) {
						if testing.Short() && capacity == 1024 && collide {
							t.Skip("slow: 1024 keys in one probe run")
						}
						every := max(1, len(st)/50)
						if capacity <= 64 {
							every = 1
						}
						s := runChecked(t, capacity, bits, collide, st, every)
						top := s.Top(0)
						for i := 1; i < len(top); i++ {
							a, b := top[i-1], top[i]
							if a.Count < b.Count || a.Count == b.Count && (a.Count-a.Error < b.Count-b.Error ||
								a.Count-a.Error == b.Count-b.Error && a.Prefix.Addr().Compare(b.Prefix.Addr()) >= 0) {
								t.Fatalf("Top out of order at %d: %+v before %+v", i, a, b)
							}
						}
					})
				}
			}
		}
	}
}

// TestSourcesGuarantees runs the test streams (one packet per update)
// through Sources, flushed at random points as a reader of kernel batches
// would, and checks both levels as TestGuarantees does.
func TestSourcesGuarantees(t *testing.T) {
	for _, capacity := range []int{1, 2, 64} {
		for name, st := range testStreams(capacity) {
			t.Run(fmt.Sprintf("capacity=%d/%s", capacity, name), func(t *testing.T) {
				src, err := NewSources(capacity)
				if err != nil {
					t.Fatal(err)
				}
				r := rand.New(rand.NewPCG(uint64(capacity), 9))
				exact := [2]map[netip.Prefix]uint64{{}, {}}
				refs := [2]*naive{{capacity: capacity}, {capacity: capacity}}
				for i, u := range st {
					src.Observe(u.addr, u.class, int64(i)*1e9)
					for level, b := range [2][2]int{{32, 128}, {NetBits4, NetBits6}} {
						bits := b[0]
						if u.addr.Is6() {
							bits = b[1]
						}
						p, _ := u.addr.Prefix(bits)
						exact[level][p]++
						refs[level].add(p, u.class, 1, int64(i))
					}
					if r.IntN(16) == 0 {
						src.Flush()
					}
				}
				src.Flush()
				for level, s := range []*Sketch{src.addrs, src.nets} {
					structure(t, s)
					check(t, s, exact[level], uint64(len(st)), capacity)
					same(t, s, refs[level])
				}
				addrs, nets := src.Snapshot(0)
				if addrs.Total != uint64(len(st)) || nets.Total != uint64(len(st)) ||
					len(addrs.Entries) != min(capacity, len(exact[0])) || len(nets.Entries) != min(capacity, len(exact[1])) {
					t.Fatalf("snapshot: %d/%d packets, %d/%d entries", addrs.Total, nets.Total, len(addrs.Entries), len(nets.Entries))
				}
			})
		}
	}
}
