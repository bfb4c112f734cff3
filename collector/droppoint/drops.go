package droppoint

import (
	"cmp"
	"slices"

	"github.com/nfdrop/nfdrop_exporter/collector/classify"
)

// MaxChainSeries caps the chains FirewallDrops returns: chain names are the
// operator's (or a container manager's, one per container). Beyond the cap,
// in family, table, chain order, the counts are summed into table and chain
// "(other)" of their family, so that the family's sum stays exact.
const MaxChainSeries = 64

// MaxTableSeries caps the tables FirewallDrops returns uncounted drop
// points for, the same way.
const MaxTableSeries = 64

// Other is the table and chain label of the series beyond the caps.
const Other = "(other)"

// ChainDrops is the kernel's count of the packets one chain's drop points
// dropped: the counters of its drop and reject rules and its policy
// counter. Family, Table and Chain are valid label values
// (classify.LabelText).
type ChainDrops struct {
	Family, Table, Chain string
	Packets              uint64
}

// TableUncounted is the number of one table's drop points whose packets the
// kernel does not count (a rule without a counter, a counter that also sees
// packets the rule does not drop, a verdict map's drop elements, a native
// base chain's drop policy); 0 for a table whose drop points are all
// counted.
type TableUncounted struct {
	Family, Table string
	DropPoints    int
}

// FirewallDrops returns, per chain, the packets the kernel counted at the
// chain's drop points (chains with at least one counted drop point, even at
// 0), and, per table with drop points, how many of them the kernel does not
// count (0 when it counts them all, so that the series exists). Both are
// sorted and capped (MaxChainSeries, MaxTableSeries); names are made valid
// label values and series whose names become equal are summed.
func (a *Analysis) FirewallDrops() ([]ChainDrops, []TableUncounted) {
	type ck struct{ f, t, c string }
	type tk struct{ f, t string }
	chains := map[ck]uint64{}
	tables := map[tk]int{}
	for _, p := range a.DropPoints {
		f, t := p.Chain.Table.Family.String(), classify.LabelText(p.Chain.Table.Name)
		if p.Counted {
			chains[ck{f, t, classify.LabelText(p.Chain.Name)}] += p.Packets
			tables[tk{f, t}] += 0
		} else {
			tables[tk{f, t}]++
		}
	}
	var cd []ChainDrops
	for k, n := range chains {
		cd = append(cd, ChainDrops{k.f, k.t, k.c, n})
	}
	slices.SortFunc(cd, func(x, y ChainDrops) int {
		return cmp.Or(cmp.Compare(x.Family, y.Family), cmp.Compare(x.Table, y.Table), cmp.Compare(x.Chain, y.Chain))
	})
	if len(cd) > MaxChainSeries {
		other := map[string]uint64{}
		for _, c := range cd[MaxChainSeries:] {
			other[c.Family] += c.Packets
		}
		cd = cd[:MaxChainSeries]
		for _, f := range sortedKeys(other) {
			// A kept chain may itself be called "(other)": add to it.
			if i := slices.IndexFunc(cd, func(c ChainDrops) bool { return c == ChainDrops{f, Other, Other, c.Packets} }); i >= 0 {
				cd[i].Packets += other[f]
				continue
			}
			cd = append(cd, ChainDrops{f, Other, Other, other[f]})
		}
	}
	var tu []TableUncounted
	for k, n := range tables {
		tu = append(tu, TableUncounted{k.f, k.t, n})
	}
	slices.SortFunc(tu, func(x, y TableUncounted) int {
		return cmp.Or(cmp.Compare(x.Family, y.Family), cmp.Compare(x.Table, y.Table))
	})
	if len(tu) > MaxTableSeries {
		other := map[string]int{}
		for _, t := range tu[MaxTableSeries:] {
			other[t.Family] += t.DropPoints
		}
		tu = tu[:MaxTableSeries]
		for _, f := range sortedKeys(other) {
			if i := slices.IndexFunc(tu, func(t TableUncounted) bool { return t.Family == f && t.Table == Other }); i >= 0 {
				tu[i].DropPoints += other[f]
				continue
			}
			tu = append(tu, TableUncounted{f, Other, other[f]})
		}
	}
	return cd, tu
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
