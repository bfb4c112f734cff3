package classify

import (
	"errors"
	"fmt"
	"strconv"
)

// Group is one input of drops and the value of the group label: an NFLOG
// group number (0 to 65535), or GroupEBPF.
type Group uint32

// GroupEBPF is the drops read from the kernel's drop tracepoint by the eBPF
// source; its label value is "ebpf". It lies outside the NFLOG numbers, so
// the label is not always a number.
const GroupEBPF Group = 1 << 16

// NFLOGGroup is the Group of NFLOG group n.
func NFLOGGroup(n uint16) Group { return Group(n) }

// NFLOG returns the NFLOG group number; ok is false for GroupEBPF.
func (g Group) NFLOG() (n uint16, ok bool) { return uint16(g), g <= 0xffff }

// String returns the group label value: the NFLOG group number in decimal,
// or "ebpf".
func (g Group) String() string {
	if g == GroupEBPF {
		return "ebpf"
	}
	if n, ok := g.NFLOG(); ok {
		return strconv.Itoa(int(n))
	}
	return "invalid"
}

// ParseGroups parses the values of a repeatable NFLOG group flag
// (--nflog.group): each a group number, none twice. flag names the flag in
// the error.
func ParseGroups(flag string, values []string) ([]Group, error) {
	groups := make([]Group, 0, len(values))
	for _, s := range values {
		g, err := strconv.ParseUint(s, 10, 16)
		if err != nil {
			return nil, fmt.Errorf("%s=%s: want a group number from 0 to 65535", flag, s)
		}
		groups = append(groups, NFLOGGroup(uint16(g)))
	}
	if len(groups) == 0 {
		return nil, fmt.Errorf("%s: give at least one group", flag)
	}
	if g, dup := duplicate(groups); dup {
		return nil, fmt.Errorf("%s=%s is given twice: give each group once", flag, g)
	}
	return groups, nil
}

// CheckGroups rejects an empty list, a group given twice and a value that is
// no group: each group is one value of the group label and one input.
func CheckGroups(groups []Group) error {
	if len(groups) == 0 {
		return errors.New("no NFLOG group configured: give at least one group")
	}
	for _, g := range groups {
		if _, ok := g.NFLOG(); !ok && g != GroupEBPF {
			return fmt.Errorf("group %d is neither an NFLOG group (0 to 65535) nor the eBPF source", uint32(g))
		}
	}
	if g, dup := duplicate(groups); dup {
		return fmt.Errorf("NFLOG group %s is given twice: give each group once", g)
	}
	return nil
}

// duplicate returns the first group that appears twice.
func duplicate(groups []Group) (Group, bool) {
	seen := make(map[Group]bool, len(groups))
	for _, g := range groups {
		if seen[g] {
			return g, true
		}
		seen[g] = true
	}
	return 0, false
}
