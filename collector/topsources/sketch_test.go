package topsources

import (
	"encoding/binary"
	"net/netip"
	"testing"
	"time"
)

type add struct {
	addr  string
	class uint8
	n     uint64
	t     int64 // seconds
}

type want struct {
	prefix       string
	count, error uint64
	classes      map[uint8]uint64
	first, last  int64
}

func TestSketch(t *testing.T) {
	for _, tc := range []struct {
		name         string
		capacity     int
		bits4, bits6 int
		adds         []add
		k            int
		want         []want
		exact        bool
		bound, total uint64
	}{
		{
			name: "within capacity every count is exact", capacity: 3, bits4: 32, bits6: 128,
			adds: []add{{"10.0.0.1", 1, 1, 1}, {"10.0.0.2", 2, 1, 2}, {"10.0.0.1", 3, 1, 3}, {"10.0.0.3", 2, 1, 4}},
			want: []want{
				{"10.0.0.1/32", 2, 0, map[uint8]uint64{1: 1, 3: 1}, 1, 3},
				{"10.0.0.2/32", 1, 0, map[uint8]uint64{2: 1}, 2, 2},
				{"10.0.0.3/32", 1, 0, map[uint8]uint64{2: 1}, 4, 4},
			},
			exact: true, total: 4,
		},
		{
			// a and b tie at 1; a was updated least recently and is taken over.
			name: "a new key takes over the smallest, least recently updated counter", capacity: 2, bits4: 32, bits6: 128,
			adds: []add{{"10.0.0.1", 0, 1, 1}, {"10.0.0.2", 0, 1, 2}, {"10.0.0.3", 4, 1, 3}},
			want: []want{
				{"10.0.0.3/32", 2, 1, map[uint8]uint64{4: 1}, 3, 3},
				{"10.0.0.2/32", 1, 0, map[uint8]uint64{0: 1}, 2, 2},
			},
			bound: 1, total: 3,
		},
		{
			name: "a heavy hitter survives a scan of one-off sources", capacity: 2, bits4: 32, bits6: 128,
			adds: []add{{"192.0.2.9", 0, 10, 1}, {"10.0.0.1", 0, 1, 2}, {"10.0.0.2", 0, 1, 3}, {"10.0.0.3", 0, 1, 4}},
			want: []want{
				{"192.0.2.9/32", 10, 0, map[uint8]uint64{0: 10}, 1, 1},
				{"10.0.0.3/32", 3, 2, map[uint8]uint64{0: 1}, 4, 4},
			},
			bound: 3, total: 13,
		},
		{
			name: "networks: /24 and /48", capacity: 4, bits4: 24, bits6: 48,
			adds: []add{{"10.0.0.1", 0, 1, 1}, {"10.0.0.200", 1, 2, 2}, {"2001:db8:1:2::1", 0, 1, 3}, {"2001:db8:1:ffff::2", 0, 1, 4}, {"2001:db8:2::1", 0, 1, 5}},
			want: []want{
				{"10.0.0.0/24", 3, 0, map[uint8]uint64{0: 1, 1: 2}, 1, 2},
				{"2001:db8:1::/48", 2, 0, map[uint8]uint64{0: 2}, 3, 4},
				{"2001:db8:2::/48", 1, 0, map[uint8]uint64{0: 1}, 5, 5},
			},
			exact: true, total: 6,
		},
		{
			name: "IPv4 and IPv4-mapped IPv6 are different sources; ties sort by address", capacity: 4, bits4: 32, bits6: 128,
			adds: []add{{"::ffff:10.0.0.1", 0, 1, 1}, {"10.0.0.1", 0, 1, 2}},
			want: []want{
				{"10.0.0.1/32", 1, 0, map[uint8]uint64{0: 1}, 2, 2},
				{"::ffff:10.0.0.1/128", 1, 0, map[uint8]uint64{0: 1}, 1, 1},
			},
			exact: true, total: 2,
		},
		{
			name: "zero address and n=0 are ignored; a class beyond MaxClasses counts in the last", capacity: 2, bits4: 32, bits6: 128,
			adds:  []add{{"", 0, 5, 1}, {"10.0.0.1", 0, 0, 2}, {"10.0.0.1", 200, 3, 3}},
			want:  []want{{"10.0.0.1/32", 3, 0, map[uint8]uint64{MaxClasses - 1: 3}, 3, 3}},
			exact: true, total: 3,
		},
		{
			name: "Top(k) cuts after the k largest", capacity: 8, bits4: 32, bits6: 128, k: 2,
			adds: []add{{"10.0.0.1", 0, 1, 1}, {"10.0.0.2", 0, 3, 1}, {"10.0.0.3", 0, 2, 1}, {"10.0.0.4", 0, 1, 1}},
			want: []want{
				{"10.0.0.2/32", 3, 0, map[uint8]uint64{0: 3}, 1, 1},
				{"10.0.0.3/32", 2, 0, map[uint8]uint64{0: 2}, 1, 1},
			},
			exact: true, total: 7,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := NewPrefix(tc.capacity, tc.bits4, tc.bits6)
			if err != nil {
				t.Fatal(err)
			}
			for _, a := range tc.adds {
				var addr netip.Addr
				if a.addr != "" {
					addr = netip.MustParseAddr(a.addr)
				}
				s.Add(addr, a.class, a.n, time.Unix(a.t, 0))
			}
			got := s.Top(tc.k)
			if len(got) != len(tc.want) {
				t.Fatalf("Top(%d) has %d entries, want %d: %+v", tc.k, len(got), len(tc.want), got)
			}
			for i, w := range tc.want {
				g := got[i]
				var classes [MaxClasses]uint64
				for c, n := range w.classes {
					classes[c] = n
				}
				if g.Prefix.String() != w.prefix || g.Count != w.count || g.Error != w.error || g.Classes != classes ||
					g.First.Unix() != w.first || g.Last.Unix() != w.last {
					t.Errorf("entry %d = %v count %d error %d classes %v first %d last %d, want %+v",
						i, g.Prefix, g.Count, g.Error, g.Classes, g.First.Unix(), g.Last.Unix(), w)
				}
			}
			if s.Exact() != tc.exact || s.ErrorBound() != tc.bound || s.Total() != tc.total {
				t.Errorf("exact %v bound %d total %d, want %v %d %d", s.Exact(), s.ErrorBound(), s.Total(), tc.exact, tc.bound, tc.total)
			}
		})
	}
}

func TestNewPrefixRejects(t *testing.T) {
	for _, tc := range []struct{ capacity, b4, b6 int }{{0, 32, 128}, {MaxCapacity + 1, 32, 128}, {4, 33, 128}, {4, 32, 129}, {4, -1, 0}} {
		if _, err := NewPrefix(tc.capacity, tc.b4, tc.b6); err == nil {
			t.Errorf("NewPrefix(%d, %d, %d) accepted", tc.capacity, tc.b4, tc.b6)
		}
	}
}

func TestSourcesSnapshot(t *testing.T) {
	s, err := NewSources(4)
	if err != nil {
		t.Fatal(err)
	}
	a := netip.MustParseAddr("198.51.100.7")
	s.Observe(a, 2, 1e9)
	if addrs, _ := s.Snapshot(ShowMax); addrs.Total != 0 {
		t.Fatalf("an unflushed observation is visible: %+v", addrs)
	}
	s.Observe(netip.MustParseAddr("198.51.100.8"), 3, 2e9)
	s.Flush()
	addrs, nets := s.Snapshot(ShowMax)
	if addrs.Total != 2 || len(addrs.Entries) != 2 || !addrs.Exact || addrs.Capacity != 4 || addrs.Bits4 != 32 || addrs.Bits6 != 128 {
		t.Errorf("addresses %+v", addrs)
	}
	if nets.Total != 2 || len(nets.Entries) != 1 || nets.Entries[0].Prefix.String() != "198.51.100.0/24" ||
		nets.Entries[0].Classes[2] != 1 || nets.Entries[0].Classes[3] != 1 || nets.Bits4 != 24 || nets.Bits6 != 48 {
		t.Errorf("networks %+v", nets)
	}
	for range pendingMax { // a full buffer flushes by itself
		s.Observe(a, 0, 3e9)
	}
	if addrs, _ := s.Snapshot(1); addrs.Total != 2+pendingMax || addrs.Entries[0].Count != 1+pendingMax {
		t.Errorf("after a full buffer: %+v", addrs)
	}
}

func TestAddAllocatesNothing(t *testing.T) {
	s, _ := NewSources(DefaultCapacity)
	addrs := benchAddrs(4096)
	i := 0
	got := testing.AllocsPerRun(1000, func() {
		s.Observe(addrs[i&4095], uint8(i&7), int64(i))
		i++
	})
	if got != 0 {
		t.Errorf("Observe: %v allocations, want 0", got)
	}
}

// benchAddrs is a skewed mix: a few heavy sources among many one-offs, both families.
func benchAddrs(n int) []netip.Addr {
	out := make([]netip.Addr, n)
	x := uint32(2463534242)
	for i := range out {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		switch {
		case x%4 == 0: // heavy: 8 sources take a quarter
			out[i] = netip.AddrFrom4([4]byte{203, 0, 113, byte(x >> 8 & 7)})
		case x%4 == 1:
			var b [16]byte
			binary.BigEndian.PutUint64(b[:], 0x20010db800000000|uint64(x>>16))
			binary.BigEndian.PutUint32(b[12:], x)
			out[i] = netip.AddrFrom16(b)
		default:
			out[i] = netip.AddrFrom4([4]byte{10, byte(x >> 24), byte(x >> 16), byte(x >> 8)})
		}
	}
	return out
}
