package topsources

import (
	"net/netip"
	"sync"
)

// Default sizes: the page shows at most ShowMax entries; the sketches keep
// more counters so that the shown ones are accurate (an entry's error is at
// most Total/DefaultCapacity).
const (
	ShowMax         = 20
	DefaultCapacity = 64
	NetBits4        = 24 // IPv4 networks: /24
	NetBits6        = 48 // IPv6 networks: /48, a site
)

// pendingMax is how many observations a writer buffers before it takes the
// lock; a kernel batch usually ends (Flush) before that.
const pendingMax = 64

// pending is a buffered observation, its address already a key: the
// network key is cut from it at Flush.
type pending struct {
	key   key
	class uint8
	ts    int64
}

// Sources tracks the heaviest source addresses and source networks of one
// packet stream (one NFLOG group). One goroutine writes (Observe, Flush); any
// number read (Snapshot).
//
// The writer buffers observations and applies them under a per-Sources lock
// once per batch (Flush) or every pendingMax packets, so the per-packet cost
// is a buffer store and the lock is taken once per batch; a reader takes the
// same lock only to copy the counters out. There is no lock shared between
// groups. Observations not yet flushed are not visible to readers.
type Sources struct {
	mu          sync.Mutex
	addrs, nets *Sketch // guarded by mu

	// Owned by the writer.
	buf [pendingMax]pending
	n   int
}

// NewSources returns a tracker keeping capacity counters per level.
func NewSources(capacity int) (*Sources, error) {
	nets, err := NewPrefix(capacity, NetBits4, NetBits6)
	if err != nil {
		return nil, err
	}
	return &Sources{addrs: New(capacity), nets: nets}, nil
}

// Observe counts one packet of class from addr seen at tsNs (unix
// nanoseconds); the zero Addr is ignored. Writer only; it allocates nothing.
func (s *Sources) Observe(addr netip.Addr, class uint8, tsNs int64) {
	if k, ok := addrKey(addr.AsSlice()); ok {
		s.observe(k, class, tsNs)
	}
}

// ObserveSrc is Observe for an address as a decoder holds it: src[:4] when
// v6 is false, else all of src. It spares the per-packet path a netip.Addr.
func (s *Sources) ObserveSrc(src *[16]byte, v6 bool, class uint8, tsNs int64) {
	s.observe(srcKey(src, v6), class, tsNs)
}

func (s *Sources) observe(k key, class uint8, tsNs int64) {
	// Field by field: a composite literal is built on the stack and copied
	// with 16-byte loads of narrower stores, which the CPU cannot forward.
	p := &s.buf[s.n]
	p.key.hi, p.key.lo, p.key.v6, p.class, p.ts = k.hi, k.lo, k.v6, class, tsNs
	s.n++
	if s.n == pendingMax {
		s.Flush()
	}
}

// Flush makes the buffered observations visible to readers. Writer only.
func (s *Sources) Flush() {
	if s.n == 0 {
		return
	}
	s.mu.Lock()
	for i := range s.buf[:s.n] {
		p := &s.buf[i]
		s.addrs.add(p.key, p.class, 1, p.ts) // the address sketch keeps every bit
		s.nets.add(s.nets.masked(p.key), p.class, 1, p.ts)
	}
	s.mu.Unlock()
	s.n = 0
}

// Top is a copy of one level of a sketch.
type Top struct {
	Entries    []Entry
	Total      uint64 // packets counted at this level
	Exact      bool   // every count is exact (Error 0)
	ErrorBound uint64 // no entry overestimates by more; no unlisted source has more
	Capacity   int
	Bits4      int // prefix lengths: 32/128 for addresses
	Bits6      int
}

// Snapshot copies the k heaviest addresses and networks. Any goroutine.
func (s *Sources) Snapshot(k int) (addrs, nets Top) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return topOf(s.addrs, k), topOf(s.nets, k)
}

func topOf(s *Sketch, k int) Top {
	b4, b6 := s.Bits()
	return Top{Entries: s.Top(k), Total: s.Total(), Exact: s.Exact(), ErrorBound: s.ErrorBound(),
		Capacity: s.Capacity(), Bits4: b4, Bits6: b6}
}

// TopOf copies the k heaviest entries of a sketch with its accuracy; for
// callers that own a Sketch (explain).
func TopOf(s *Sketch, k int) Top { return topOf(s, k) }
