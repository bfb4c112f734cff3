package classify

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// DefaultPorts is the default --collector.ports list.
const DefaultPorts = "22,25,53,80,123,443,3389"

// Port label values of service ports that are not listed: their IANA range.
const (
	PortSystem  = "system"  // 0-1023
	PortUser    = "user"    // 1024-49151
	PortDynamic = "dynamic" // 49152-65535
)

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
	p.names = append(p.names, PortSystem, PortUser, PortDynamic)
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

// Empty reports whether p is the zero Ports, not made by ParsePorts.
func (p Ports) Empty() bool { return p.index == nil }
