package classify

import (
	"strings"

	"github.com/nfdrop/nfdrop_exporter/collector/packet"
)

// Class is what a dropped packet looks like (see the package documentation).
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

// ReportOrder lists every class in the order reports show them: teardown,
// the class operators ask about, first; what cannot be read last.
var ReportOrder = [NumClasses]Class{ClassTeardown, ClassHandshake, ClassProbe, ClassOther, ClassFragment, ClassMalformed}

// ClassNames returns the class label values, by class number.
func ClassNames() []string { return classNames[:] }

// NamedCounts maps per-class counts (indexed by Class) to class label values,
// leaving out zero counts and indices that are no class.
func NamedCounts(byClass []uint64) map[string]uint64 {
	out := map[string]uint64{}
	for cl, n := range byClass {
		if n > 0 && cl < int(NumClasses) {
			out[Class(cl).String()] = n
		}
	}
	return out
}

// String returns the class label value.
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

// String returns the side label value; "" without ports.
func (s Side) String() string { return sideNames[s%numSides] }

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

// Classifier sorts packets into classes, service ports and sides. It is
// immutable and safe for concurrent use.
type Classifier struct {
	ports Ports
}

// NewClassifier returns a classifier that labels the given ports by number.
func NewClassifier(ports Ports) *Classifier { return &Classifier{ports: ports} }

// Ports returns the port vocabulary of the classifier.
func (c *Classifier) Ports() *Ports { return &c.ports }

const teardownShape = packet.FlagSYN | packet.FlagRST | packet.FlagACK

// Classify labels a decoded packet. It never allocates.
func (c *Classifier) Classify(p *packet.Packet) Labels { return c.Key(p).Labels(&c.ports) }

// Key classifies a decoded packet into its series key (prefix index 0). The
// per-packet path uses it rather than Classify: it works in registers, where
// filling a Labels struct byte by byte and copying it stalls on store
// forwarding.
func (c *Classifier) Key(p *packet.Packet) Key {
	if p.Err != packet.ErrNone {
		return KeyOf(p.Family, packet.ProtoUnknown, 0, SideNone, ClassMalformed, false, 0)
	}
	if p.Fragment {
		return KeyOf(p.Family, p.Proto, 0, SideNone, ClassFragment, false, 0)
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
	return KeyOf(p.Family, p.Proto, port, side, class, hasFlags, flags)
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

// classOfFlags sorts a masked flag byte into probe, handshake or teardown.
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
