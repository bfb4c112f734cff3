package classify

import (
	"errors"
	"fmt"
	"strconv"
)

// ParseGroups parses the values of a repeatable group flag (--nflog.group):
// each a group number, none twice. flag names the flag in the error.
func ParseGroups(flag string, values []string) ([]uint16, error) {
	groups := make([]uint16, 0, len(values))
	for _, s := range values {
		g, err := strconv.ParseUint(s, 10, 16)
		if err != nil {
			return nil, fmt.Errorf("%s=%s: want a group number from 0 to 65535", flag, s)
		}
		groups = append(groups, uint16(g))
	}
	if len(groups) == 0 {
		return nil, fmt.Errorf("%s: give at least one group", flag)
	}
	if g, dup := duplicate(groups); dup {
		return nil, fmt.Errorf("%s=%d is given twice: give each group once", flag, g)
	}
	return groups, nil
}

// CheckGroups rejects an empty list and a group given twice: each group is
// one value of the group label and one socket binding.
func CheckGroups(groups []uint16) error {
	if len(groups) == 0 {
		return errors.New("no NFLOG group configured: give at least one group")
	}
	if g, dup := duplicate(groups); dup {
		return fmt.Errorf("NFLOG group %d is given twice: give each group once", g)
	}
	return nil
}

// duplicate returns the first group that appears twice.
func duplicate(groups []uint16) (uint16, bool) {
	seen := make(map[uint16]bool, len(groups))
	for _, g := range groups {
		if seen[g] {
			return g, true
		}
		seen[g] = true
	}
	return 0, false
}
