package collector

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/nfdrop/nfdrop_exporter/collector/packet"
)

// Class is the verdict of design §4: what a dropped packet looks like.
type Class uint8

const (
	ClassMalformed Class = iota
	ClassFragment
	ClassProbe
	ClassHandshake
	ClassTeardown
	ClassOther
	NumClasses
)

var classNames = [NumClasses]string{"malformed", "fragment", "probe", "handshake", "teardown", "other"}

// ClassNames returns the class label values, by class number.
func ClassNames() []string { return classNames[:] }

func (c Class) String() string {
	if c < NumClasses {
		return classNames[c]
	}
	return "other"
}

// Side says which end of the conversation sent the packet, relative to the service port.
type Side uint8

const (
	SideNone   Side = iota // no ports: not TCP/UDP/UDP-Lite/SCTP, or a fragment/malformed packet
	SideClient             // the service port is the destination: a visitor's packet to our service
	SideServer             // the service port is the source: a remote service answering us
	numSides
)

var sideNames = [numSides]string{"", "client", "server"}

func (s Side) String() string { return sideNames[s%numSides] }

// DefaultPorts is the default --collector.ports list.
const DefaultPorts = "22,25,53,80,123,443,3389"

// maxListedPorts bounds the port label vocabulary; the index must fit a byte
// next to the three IANA range buckets.
const maxListedPorts = 64

// Ports is the parsed --collector.ports list: services whose number is a label value.
// index maps a port to 1+its position in names, 0 when not listed; a flat array keeps
// the per-packet lookup a single load.
type Ports struct {
	index  *[65536]uint8
	listed *[65536 / 64]uint64 // bit per port: listed; 8 KiB stay in L1 where the 64 KiB index would not
	names  []string            // label value per index: "", listed ports..., "system", "user", "dynamic"
}

// ParsePorts parses a comma-separated list of port numbers.
func ParsePorts(s string) (Ports, error) {
	var list []int
	seen := map[int]bool{}
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 0 || n > 65535 {
			return Ports{}, fmt.Errorf("invalid port %q: want a number from 0 to 65535", f)
		}
		if !seen[n] {
			seen[n] = true
			list = append(list, n)
		}
	}
	if len(list) > maxListedPorts {
		return Ports{}, fmt.Errorf("%d ports listed, at most %d allowed: each becomes a label value", len(list), maxListedPorts)
	}
	sort.Ints(list)
	p := Ports{index: new([65536]uint8), listed: new([65536 / 64]uint64), names: []string{""}}
	for _, n := range list {
		p.names = append(p.names, strconv.Itoa(n))
		p.index[n] = uint8(len(p.names) - 1)
		p.listed[n/64] |= 1 << (n % 64)
	}
	p.names = append(p.names, "system", "user", "dynamic")
	return p, nil
}

// MustParsePorts is ParsePorts for constants known to be valid.
func MustParsePorts(s string) Ports {
	p, err := ParsePorts(s)
	if err != nil {
		panic(err)
	}
	return p
}

// List returns the listed port numbers in ascending order.
func (p Ports) List() []uint16 {
	var out []uint16
	for _, n := range p.names[1 : len(p.names)-3] {
		v, _ := strconv.Atoi(n)
		out = append(out, uint16(v))
	}
	return out
}

func (p *Ports) isListed(port uint16) bool { return p.listed[port/64]&(1<<(port%64)) != 0 }

// labelOf returns the port label index of a service port: its own index when
// listed, else the IANA range it falls in.
func (p *Ports) labelOf(port uint16, listed bool) uint8 {
	if listed {
		return p.index[port]
	}
	ranges := uint8(len(p.names) - 3)
	switch {
	case port < 1024:
		return ranges
	case port < 49152:
		return ranges + 1
	default:
		return ranges + 2
	}
}

// Labels is the classification of one packet: every label of nfdrop_packets_total
// except group and prefix, as small integers; the *Label methods give the strings.
type Labels struct {
	Family    packet.Family
	Proto     packet.Proto
	Side      Side
	Class     Class
	PortIndex uint8 // index into the port vocabulary; 0 = ""
	HasFlags  bool
	Flags     uint8 // TCP flags with ECE and CWR masked off
	ports     *Ports
}

// Classifier applies design §4 and §5. It is immutable and safe for concurrent use.
type Classifier struct {
	ports Ports
}

// NewClassifier returns a classifier that labels the given ports by number.
func NewClassifier(ports Ports) *Classifier { return &Classifier{ports: ports} }

// Ports returns the port vocabulary of the classifier.
func (c *Classifier) Ports() *Ports { return &c.ports }

const teardownShape = packet.FlagSYN | packet.FlagRST | packet.FlagACK

// Classify labels a decoded packet. It never allocates.
func (c *Classifier) Classify(p *packet.Packet) Labels { return c.key(p).labels(&c.ports) }

// key classifies a decoded packet into its series key (prefix 0). The
// per-packet path uses it rather than Classify: it works in registers, where
// filling a Labels struct byte by byte and copying it stalls on store
// forwarding.
func (c *Classifier) key(p *packet.Packet) seriesKey {
	if p.Err != packet.ErrNone {
		return keyOf(p.Family, packet.ProtoUnknown, 0, SideNone, ClassMalformed, false, 0)
	}
	if p.Fragment {
		return keyOf(p.Family, p.Proto, 0, SideNone, ClassFragment, false, 0)
	}
	var (
		class    = ClassOther
		hasFlags bool
		flags    uint8
		side     = SideNone
		port     uint8
	)
	if p.Proto == packet.ProtoTCP && p.HasFlags {
		flags = p.TCPFlags &^ (packet.FlagECE | packet.FlagCWR)
		hasFlags = true
		class = tcpClass(flags)
	}
	if p.HasPorts {
		// Each port's bit is read once: a second read of a random port's
		// bitmap word is a second likely cache miss.
		dstListed, srcListed := c.ports.isListed(p.DstPort), c.ports.isListed(p.SrcPort)
		service, listed := p.DstPort, dstListed
		side = SideClient
		switch {
		case hasFlags && flags&packet.FlagSYN != 0:
			// A SYN tells the direction itself: the client's SYN has no ACK,
			// the server's SYN+ACK answers it.
			if flags&packet.FlagACK != 0 {
				service, listed, side = p.SrcPort, srcListed, SideServer
			}
		case dstListed:
		case srcListed, p.SrcPort < p.DstPort:
			service, listed, side = p.SrcPort, srcListed, SideServer
		}
		port = c.ports.labelOf(service, listed)
	}
	return keyOf(p.Family, p.Proto, port, side, class, hasFlags, flags)
}

// tcpClass is classOfFlags as a table: under a flood of random flags the
// branches of classOfFlags are unpredictable, a table load is not.
func tcpClass(f uint8) Class { return tcpClasses[f&63] }

var tcpClasses = func() (t [64]Class) {
	for f := range t {
		t[f] = classOfFlags(uint8(f))
	}
	return t
}()

// classOfFlags implements rules 3-5 of design §4 on the masked flag byte.
func classOfFlags(f uint8) Class {
	syn, fin, rst := f&packet.FlagSYN != 0, f&packet.FlagFIN != 0, f&packet.FlagRST != 0
	switch {
	case syn && (fin || rst), fin && rst, f&teardownShape == 0:
		return ClassProbe
	case syn:
		return ClassHandshake
	default:
		return ClassTeardown
	}
}

// flagNames holds the flags label for every masked flag byte, in the kernel LOG
// order URG,ACK,PSH,RST,SYN,FIN, computed once so labelling never formats.
var flagNames = func() (t [64]string) {
	order := []struct {
		bit  uint8
		name string
	}{{packet.FlagURG, "URG"}, {packet.FlagACK, "ACK"}, {packet.FlagPSH, "PSH"}, {packet.FlagRST, "RST"}, {packet.FlagSYN, "SYN"}, {packet.FlagFIN, "FIN"}}
	for f := range t {
		var parts []string
		for _, o := range order {
			if uint8(f)&o.bit != 0 {
				parts = append(parts, o.name)
			}
		}
		if len(parts) == 0 {
			t[f] = "NONE"
		} else {
			t[f] = strings.Join(parts, ",")
		}
	}
	return t
}()

// FamilyLabel is the family label value.
func (l Labels) FamilyLabel() string { return l.Family.String() }

// ProtoLabel is the proto label value.
func (l Labels) ProtoLabel() string { return l.Proto.String() }

// PortLabel is the port label value: the number if listed, else its range, "" without ports.
func (l Labels) PortLabel() string {
	if l.ports == nil || int(l.PortIndex) >= len(l.ports.names) {
		return ""
	}
	return l.ports.names[l.PortIndex]
}

// SideLabel is the side label value.
func (l Labels) SideLabel() string { return l.Side.String() }

// FlagsLabel is the flags label value; "" when not TCP.
func (l Labels) FlagsLabel() string {
	if !l.HasFlags {
		return ""
	}
	return flagNames[l.Flags&0x3f]
}

// ClassLabel is the class label value.
func (l Labels) ClassLabel() string { return l.Class.String() }
