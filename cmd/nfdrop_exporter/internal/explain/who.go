package explain

import (
	"cmp"
	"encoding/binary"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/nfdrop/nfdrop_exporter/collector/classify"
	"github.com/nfdrop/nfdrop_exporter/collector/packet"
	"github.com/nfdrop/nfdrop_exporter/collector/topsources"
)

// Who and where, in fixed memory whatever the input's size: the heaviest
// sources (exact addresses and /24 or /48 networks, through the same
// Space-Saving sketch as the landing page), exact counts per destination
// port, and capped tables of interfaces and log prefixes, kept apart for
// teardown-shaped drops (mostly harmless) and all the others.

// Sizes of the tables. A sketch's counts are exact while no more than
// sketchCapacity distinct sources were seen, and the top shown entries are
// accurate to within Total/sketchCapacity otherwise.
const (
	sketchCapacity = 1024
	showSources    = 10 // sources and networks shown per list
	showPorts      = 10 // destination ports shown per group
	portsPerSource = 4  // destination ports remembered per source (Space-Saving)
	maxInterfaces  = 256
	showInterfaces = 10
)

// Group indexes: teardown-shaped drops and all others.
const (
	groupOther = iota
	groupTeardown
	numGroups
)

var groupNames = [numGroups]string{"non_teardown", "teardown"}

// portTop is a tiny Space-Saving summary of one source's destination ports.
type portTop struct {
	port [portsPerSource]uint16
	n    [portsPerSource]uint64
	err  [portsPerSource]uint64 // inherited on take-over: n - err <= true count <= n
	used uint8
}

func (t *portTop) add(port uint16, n uint64) {
	m := 0
	for i := 0; i < int(t.used); i++ {
		if t.port[i] == port {
			t.n[i] += n
			return
		}
		if t.n[i] < t.n[m] {
			m = i
		}
	}
	if int(t.used) < portsPerSource {
		t.port[t.used], t.n[t.used], t.err[t.used] = port, n, 0
		t.used++
		return
	}
	t.port[m], t.n[m], t.err[m] = port, t.n[m]+n, t.n[m]
}

// sourcePorts remembers the destination ports of the heaviest sources in a
// fixed table: each source hashes to one slot; a source that finds its slot
// taken by another wears the incumbent's weight down by its packets and
// takes the slot once it reaches zero (Misra-Gries per slot), so a heavy
// source keeps its slot against a long tail of light ones. Fixed memory, no
// map, nothing allocated per packet.
type sourcePorts struct {
	bits4, bits6 int
	slots        []portSlot
	mask         uint64
}

type portSlot struct {
	hi, lo uint64 // the masked address; fam tells IPv4 from IPv6
	fam    uint8
	weight uint64
	ports  portTop
}

func newSourcePorts(s *topsources.Sketch) *sourcePorts {
	b4, b6 := s.Bits()
	size := 1
	for size < 2*s.Capacity() {
		size <<= 1
	}
	return &sourcePorts{bits4: b4, bits6: b6, slots: make([]portSlot, size), mask: uint64(size - 1)}
}

// slotKey masks a to the table's prefix length.
func (sp *sourcePorts) slotKey(a netip.Addr) (hi, lo uint64, fam uint8) {
	if a.Is4() {
		b := a.As4()
		v := uint64(binary.BigEndian.Uint32(b[:]))
		return v &^ (1<<(32-sp.bits4) - 1), 0, 4
	}
	b := a.As16()
	hi, lo = binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])
	switch {
	case sp.bits6 <= 64:
		return hi &^ (1<<(64-sp.bits6) - 1), 0, 6
	case sp.bits6 < 128:
		return hi, lo &^ (1<<(128-sp.bits6) - 1), 6
	}
	return hi, lo, 6
}

func (sp *sourcePorts) slot(hi, lo uint64) *portSlot {
	h := hi ^ lo*0x9e3779b97f4a7c15
	h ^= h >> 29
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 32
	return &sp.slots[h&sp.mask]
}

func (sp *sourcePorts) add(a netip.Addr, port uint16, n uint64) {
	hi, lo, fam := sp.slotKey(a)
	s := sp.slot(hi, lo)
	switch {
	case s.hi == hi && s.lo == lo && s.fam == fam:
		s.weight += n
	case s.weight > n:
		s.weight -= n
		return
	default:
		w := n - s.weight
		*s = portSlot{hi: hi, lo: lo, fam: fam, weight: max(w, 1)}
	}
	s.ports.add(port, n)
}

func (sp *sourcePorts) top(p netip.Prefix) []PortCount {
	hi, lo, fam := sp.slotKey(p.Addr())
	s := sp.slot(hi, lo)
	if s.hi != hi || s.lo != lo || s.fam != fam || s.weight == 0 {
		return []PortCount{}
	}
	t := &s.ports
	out := make([]PortCount, 0, t.used)
	for j := 0; j < int(t.used); j++ {
		out = append(out, PortCount{Port: t.port[j], Packets: t.n[j], Error: t.err[j]})
	}
	sortPorts(out)
	return out
}

// Transport families of the destination port table.
const (
	portTCP = iota
	portUDP
	portOther // SCTP, UDP-Lite
	numPortProtos
)

var portProtoNames = [numPortProtos]string{"tcp", "udp", "other"}

// who is one group's breakdowns.
type who struct {
	packets   uint64
	addrs     *topsources.Sketch
	nets      *topsources.Sketch
	addrPorts *sourcePorts
	netPorts  *sourcePorts
	dports    *[numPortProtos][65536]uint64 // exact; allocated at the first port
	prefixes  [256]uint64                   // by prefix label index
	ifaces    map[string]*uint64            // "in\x00out"; at most maxInterfaces keys
	ifOther   uint64                        // packets of interfaces past the cap
	ifKey     []byte
	lastIf    *uint64 // the counter of ifKey
}

func newWho() *who {
	nets, err := topsources.NewPrefix(sketchCapacity, topsources.NetBits4, topsources.NetBits6)
	if err != nil {
		panic(err) // constant sizes
	}
	w := &who{addrs: topsources.New(sketchCapacity), nets: nets, ifaces: make(map[string]*uint64)}
	w.addrPorts, w.netPorts = newSourcePorts(w.addrs), newSourcePorts(w.nets)
	return w
}

// observe counts n packets. in and out are interface names (may be empty).
func (w *who) observe(p *packet.Packet, class classify.Class, prefix uint8, in, out []byte, n uint64, ts time.Time) {
	w.packets += n
	w.prefixes[prefix] += n
	var src netip.Addr
	switch p.Family {
	case packet.FamilyIPv4:
		src = netip.AddrFrom4([4]byte(p.Src[:4]))
	case packet.FamilyIPv6:
		src = netip.AddrFrom16(p.Src)
	}
	if src.IsValid() && !src.IsUnspecified() {
		w.addrs.Add(src, uint8(class), n, ts)
		w.nets.Add(src, uint8(class), n, ts)
		if p.HasPorts {
			w.addrPorts.add(src, p.DstPort, n)
			w.netPorts.add(src, p.DstPort, n)
		}
	}
	if p.HasPorts {
		if w.dports == nil {
			w.dports = new([numPortProtos][65536]uint64)
		}
		pp := portOther
		switch p.Proto {
		case packet.ProtoTCP:
			pp = portTCP
		case packet.ProtoUDP:
			pp = portUDP
		}
		w.dports[pp][p.DstPort] += n
	}
	// Lines of one log mostly share their interfaces: skip the map then.
	if w.lastIf != nil && len(in)+1+len(out) == len(w.ifKey) && string(w.ifKey[:len(in)]) == string(in) && string(w.ifKey[len(in)+1:]) == string(out) {
		*w.lastIf += n
		return
	}
	w.ifKey = append(append(append(w.ifKey[:0], in...), 0), out...)
	// a lookup by string(bytes) does not allocate; only a new key does
	if c, ok := w.ifaces[string(w.ifKey)]; ok {
		*c += n
		w.lastIf = c
	} else if len(w.ifaces) < maxInterfaces {
		c := new(uint64)
		*c = n
		w.ifaces[string(w.ifKey)] = c
		w.lastIf = c
	} else {
		w.ifOther += n
		w.lastIf = nil
	}
}

// PortCount is a destination port and its packets.
type PortCount struct {
	Port    uint16 `json:"port"`
	Packets uint64 `json:"packets"`
	Error   uint64 `json:"error"` // packets - error <= true count <= packets
}

func sortPorts(p []PortCount) {
	slices.SortFunc(p, func(x, y PortCount) int {
		if c := cmp.Compare(y.Packets, x.Packets); c != 0 {
			return c
		}
		return cmp.Compare(x.Port, y.Port)
	})
}

// Source is one address or network of a top list.
type Source struct {
	Source  string            `json:"source"` // address, or network in CIDR notation
	Packets uint64            `json:"packets"`
	Error   uint64            `json:"error"`   // packets - error <= true count <= packets
	Classes map[string]uint64 `json:"classes"` // class -> packets counted since the source entered the list
	// Ports are the source's most frequent destination ports, at most four
	// (a small summary per source: approximate when the source used more
	// ports, or shared its table slot with other sources).
	Ports     []PortCount `json:"ports"`
	FirstSeen string      `json:"first_seen"` // on the report's clock (time_span.clock); "" when the input has no times
	LastSeen  string      `json:"last_seen"`
}

// Accuracy says how far a top list can be trusted.
type Accuracy struct {
	PrefixLengthIPv4 int    `json:"prefix_length_ipv4"` // 32 for exact addresses
	PrefixLengthIPv6 int    `json:"prefix_length_ipv6"` // 128 for exact addresses
	Exact            bool   `json:"exact"`              // every count is exact and no source is missing
	ErrorBound       uint64 `json:"error_bound"`        // no count is over by more; no unlisted source has more
	Capacity         int    `json:"capacity"`           // sources the sketch follows at once
}

// DstPort is one destination port of a transport.
type DstPort struct {
	Proto   string `json:"proto"` // tcp, udp, other (SCTP, UDP-Lite)
	Port    uint16 `json:"port"`
	Packets uint64 `json:"packets"`
}

// PortList is the top destination ports; counts are always exact.
type PortList struct {
	Exact   bool      `json:"exact"`
	Entries []DstPort `json:"entries"`
}

// Interface is one IN=/OUT= pair (NFLOG captures without names: "if<index>").
type Interface struct {
	In      string `json:"in"`
	Out     string `json:"out"`
	Packets uint64 `json:"packets"`
}

// InterfaceList is the top interface pairs; Other counts the packets of
// pairs beyond the table's size, which makes the list inexact.
type InterfaceList struct {
	Exact   bool        `json:"exact"`
	Other   uint64      `json:"other"`
	Entries []Interface `json:"entries"`
}

// PrefixList is the packets per log prefix label.
type PrefixList struct {
	Exact   bool          `json:"exact"`
	Entries []PrefixCount `json:"entries"`
}

// Breakdown is where one group's packets came from and went.
type Breakdown struct {
	Packets    uint64        `json:"packets"`
	Sources    Accuracy      `json:"sources"`  // of top_sources / top_teardown_sources
	Networks   Accuracy      `json:"networks"` // of top_networks / top_teardown_networks
	DstPorts   PortList      `json:"dst_ports"`
	Interfaces InterfaceList `json:"interfaces"`
	Prefixes   PrefixList    `json:"prefixes"`
}

// clockOf renders the sketch's times on the report's clock.
type clockOf func(t time.Time) string

func (w *who) report(names []string, clock clockOf) (addrs, nets []Source, b Breakdown) {
	at, nt := topsources.TopOf(w.addrs, showSources), topsources.TopOf(w.nets, showSources)
	addrs, nets = sourcesOf(at, w.addrPorts, clock), sourcesOf(nt, w.netPorts, clock)
	b = Breakdown{Packets: w.packets, Sources: accuracyOf(at), Networks: accuracyOf(nt)}
	b.DstPorts = PortList{Exact: true, Entries: []DstPort{}}
	if w.dports != nil {
		for pp := range w.dports {
			for port, n := range w.dports[pp] {
				if n > 0 {
					b.DstPorts.Entries = append(b.DstPorts.Entries, DstPort{portProtoNames[pp], uint16(port), n})
				}
			}
		}
		slices.SortFunc(b.DstPorts.Entries, func(x, y DstPort) int {
			if c := cmp.Compare(y.Packets, x.Packets); c != 0 {
				return c
			}
			if c := cmp.Compare(x.Proto, y.Proto); c != 0 {
				return c
			}
			return cmp.Compare(x.Port, y.Port)
		})
		if len(b.DstPorts.Entries) > showPorts {
			b.DstPorts.Entries = b.DstPorts.Entries[:showPorts]
		}
	}
	b.Interfaces = InterfaceList{Exact: w.ifOther == 0, Other: w.ifOther, Entries: []Interface{}}
	for k, n := range w.ifaces {
		in, out, _ := strings.Cut(k, "\x00")
		b.Interfaces.Entries = append(b.Interfaces.Entries, Interface{in, out, *n})
	}
	slices.SortFunc(b.Interfaces.Entries, func(x, y Interface) int {
		if c := cmp.Compare(y.Packets, x.Packets); c != 0 {
			return c
		}
		return cmp.Compare(x.In+"\x00"+x.Out, y.In+"\x00"+y.Out)
	})
	if len(b.Interfaces.Entries) > showInterfaces {
		b.Interfaces.Entries = b.Interfaces.Entries[:showInterfaces]
	}
	b.Prefixes = PrefixList{Exact: true, Entries: []PrefixCount{}}
	for i, n := range w.prefixes {
		if n > 0 && i < len(names) {
			b.Prefixes.Entries = append(b.Prefixes.Entries, PrefixCount{names[i], n})
		}
	}
	sortPrefixes(b.Prefixes.Entries)
	return addrs, nets, b
}

func accuracyOf(t topsources.Top) Accuracy {
	return Accuracy{PrefixLengthIPv4: t.Bits4, PrefixLengthIPv6: t.Bits6, Exact: t.Exact, ErrorBound: t.ErrorBound, Capacity: t.Capacity}
}

func sourcesOf(t topsources.Top, sp *sourcePorts, clock clockOf) []Source {
	out := make([]Source, 0, len(t.Entries))
	for _, e := range t.Entries {
		out = append(out, Source{Source: e.Source(), Packets: e.Count, Error: e.Error, Classes: classify.NamedCounts(e.Classes[:]),
			Ports: sp.top(e.Prefix), FirstSeen: clock(e.First), LastSeen: clock(e.Last)})
	}
	return out
}
