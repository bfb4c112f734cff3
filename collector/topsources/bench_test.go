package topsources

import (
	"math/rand/v2"
	"net/netip"
	"strconv"
	"testing"
	"time"
)

// streamLen is the length of a benchmark stream, and the size of the
// universe of sources it draws from.
const streamLen = 1 << 16

// universe is n distinct random sources: three in four IPv4, the rest IPv6.
func universe(r *rand.Rand, n int) []netip.Addr {
	seen := make(map[netip.Addr]bool, n)
	out := make([]netip.Addr, 0, n)
	for len(out) < n {
		var a netip.Addr
		if r.IntN(4) != 0 {
			v := r.Uint32()
			a = netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
		} else {
			var b [16]byte
			b[0], b[1], b[2], b[3] = 0x20, 0x01, 0x0d, 0xb8
			hi, lo := r.Uint64(), r.Uint64()
			for i := 4; i < 8; i++ {
				b[i] = byte(hi >> (8 * i))
			}
			for i := 8; i < 16; i++ {
				b[i] = byte(lo >> (8 * (i - 8)))
			}
			a = netip.AddrFrom16(b)
		}
		if !seen[a] {
			seen[a] = true
			out = append(out, a)
		}
	}
	return out
}

// stream is n draws from a universe of streamLen sources: "uniform", or
// "zipf" (rank k drawn with probability proportional to 1/k^1.1), or "mix"
// (benchAddrs: a few heavy sources among one-offs).
func stream(dist string, n int) []netip.Addr {
	if dist == "mix" {
		return benchAddrs(n)
	}
	r := rand.New(rand.NewPCG(1, 2))
	u := universe(r, streamLen)
	z := rand.NewZipf(r, 1.1, 1, streamLen-1)
	out := make([]netip.Addr, n)
	for i := range out {
		if dist == "zipf" {
			out[i] = u[z.Uint64()]
		} else {
			out[i] = u[r.IntN(len(u))]
		}
	}
	return out
}

var dists = []string{"uniform", "zipf", "mix"}

// BenchmarkSketchAdd is the cost of one update of a sketch of exact
// addresses, the old implementation (old_test.go) beside the new.
func BenchmarkSketchAdd(b *testing.B) {
	now := time.Unix(1700000000, 0)
	for _, dist := range dists {
		addrs := stream(dist, streamLen)
		for _, capacity := range []int{DefaultCapacity, 1024} {
			for _, impl := range []string{"old", "new"} {
				b.Run("impl="+impl+"/dist="+dist+"/capacity="+strconv.Itoa(capacity), func(b *testing.B) {
					b.ReportAllocs()
					i := 0
					if impl == "old" {
						s := oldNew(capacity)
						for b.Loop() {
							s.Add(addrs[i&(streamLen-1)], 1, 1, now)
							i++
						}
						return
					}
					s := New(capacity)
					for b.Loop() {
						s.Add(addrs[i&(streamLen-1)], 1, 1, now)
						i++
					}
				})
			}
		}
	}
}

// BenchmarkSketchUpdate is BenchmarkSketchAdd's update alone, the addresses
// read into keys beforehand: the difference is what Add pays to read a
// netip.Addr. It reports the share of updates that find their key monitored
// (hits/op); the rest take a counter over.
func BenchmarkSketchUpdate(b *testing.B) {
	for _, dist := range dists {
		addrs := stream(dist, streamLen)
		for _, capacity := range []int{DefaultCapacity, 1024} {
			b.Run("dist="+dist+"/capacity="+strconv.Itoa(capacity), func(b *testing.B) {
				s := New(capacity)
				keys := make([]key, len(addrs))
				hits := 0
				for i, a := range addrs {
					k, _ := addrKey(a.AsSlice())
					keys[i] = s.masked(k)
					if s.find(keys[i], s.hash(keys[i])) != s.sentinel {
						hits++
					}
					s.add(keys[i], 1, 1, int64(i))
				}
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					s.add(keys[i&(streamLen-1)], 1, 1, int64(i))
					i++
				}
				b.ReportMetric(float64(hits)/float64(len(keys)), "hits/op")
			})
		}
	}
}

// BenchmarkSourcesObserve is the collector's per-packet cost: buffer, and
// every pendingMax packets both sketches under the lock.
func BenchmarkSourcesObserve(b *testing.B) {
	for _, dist := range dists {
		addrs := stream(dist, streamLen)
		for _, impl := range []string{"old", "new"} {
			b.Run("impl="+impl+"/dist="+dist, func(b *testing.B) {
				b.ReportAllocs()
				i := 0
				if impl == "old" {
					s, _ := oldNewSources(DefaultCapacity)
					for b.Loop() {
						s.Observe(addrs[i&(streamLen-1)], 1, int64(i))
						i++
					}
					return
				}
				s, _ := NewSources(DefaultCapacity)
				for b.Loop() {
					s.Observe(addrs[i&(streamLen-1)], 1, int64(i))
					i++
				}
			})
		}
	}
}

func BenchmarkSnapshot(b *testing.B) {
	addrs := benchAddrs(streamLen)
	s, _ := NewSources(DefaultCapacity)
	for i, a := range addrs {
		s.Observe(a, 1, int64(i))
	}
	s.Flush()
	b.ReportAllocs()
	for b.Loop() {
		s.Snapshot(ShowMax)
	}
}
