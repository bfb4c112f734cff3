// Package summary answers "harmless or real?" per NFLOG group: the model
// behind the landing page and its JSON (/api/v1/summary, schema in
// README.md). It reads the collector's and the conntrack tracker's own
// counters, never /metrics, so a view costs what a scrape costs.
package summary

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/nfdrop/nfdrop_exporter/collector"
	"github.com/nfdrop/nfdrop_exporter/collector/classify"
	"github.com/nfdrop/nfdrop_exporter/collector/conntrack"
	"github.com/nfdrop/nfdrop_exporter/collector/topsources"
)

// APIVersion is the version of the JSON schema; Path is where it is served.
// A change that removes or renames a field gets a new version and path.
const (
	APIVersion = "v1"
	Path       = "/api/" + APIVersion + "/summary"
)

// Summary is the whole document.
type Summary struct {
	APIVersion     string    `json:"api_version"`
	Exporter       string    `json:"exporter"`
	Version        string    `json:"version"`
	GeneratedAt    time.Time `json:"generated_at"`
	SourcesEnabled bool      `json:"sources_enabled"`
	Groups         []Group   `json:"groups"`
}

// Group is one group: an NFLOG group, or the eBPF source's drops.
type Group struct {
	Group                GroupID    `json:"group"` // the NFLOG group number, or "ebpf"
	Up                   bool       `json:"up"`
	LastPacket           *time.Time `json:"last_packet"`             // null before the first packet
	LastPacketAgeSeconds *float64   `json:"last_packet_age_seconds"` // null before the first packet
	Packets              uint64     `json:"packets"`
	Lost                 uint64     `json:"lost"`
	Rate                 Rate       `json:"rate"`
	Classes              []Count    `json:"classes"`        // every class, in a fixed order
	TeardownShare        float64    `json:"teardown_share"` // teardown / packets; 0 without packets
	LogRules             *int       `json:"log_rules"`      // nf_tables rules that log to the group; null when not known
	Verdict              string     `json:"verdict"`        // the answer in one sentence
	Level                string     `json:"level"`          // "idle", "harmless" or "look": how to colour the verdict
	Evidence             *Evidence  `json:"evidence"`       // null when conntrack correlation is off
	Reasons              []Count    `json:"reasons,omitempty"`
	Ports                []Count    `json:"ports"` // top service ports of non-teardown drops
	Flags                []Count    `json:"flags"` // top TCP flag sets of non-teardown drops
	Sources              *Sources   `json:"sources,omitempty"`
}

// GroupID is a group in the JSON: the NFLOG group number, or the string
// "ebpf" for the drops the eBPF source reads. In the page it prints as
// the group label value.
type GroupID classify.Group

// MarshalJSON writes an NFLOG group as its number and the eBPF source as "ebpf".
func (g GroupID) MarshalJSON() ([]byte, error) {
	if n, ok := classify.Group(g).NFLOG(); ok {
		return strconv.AppendUint(nil, uint64(n), 10), nil
	}
	return strconv.AppendQuote(nil, classify.Group(g).String()), nil
}

// UnmarshalJSON reads what MarshalJSON writes.
func (g *GroupID) UnmarshalJSON(b []byte) error {
	if string(b) == `"ebpf"` {
		*g = GroupID(classify.GroupEBPF)
		return nil
	}
	n, err := strconv.ParseUint(string(b), 10, 16)
	if err != nil {
		return fmt.Errorf("group %s: want an NFLOG group number or \"ebpf\"", b)
	}
	*g = GroupID(n)
	return nil
}

func (g GroupID) String() string { return classify.Group(g).String() }

// Rate is the traffic over the last minute (or since start, if shorter).
type Rate struct {
	WindowSeconds    float64 `json:"window_seconds"` // 0: no earlier sample yet, rates are 0
	PacketsPerSecond float64 `json:"packets_per_second"`
	LostPerSecond    float64 `json:"lost_per_second"`
}

// Count is one value of a split.
type Count struct {
	Name      string  `json:"name"`
	Packets   uint64  `json:"packets"`
	Share     float64 `json:"share"`                // of the split's total
	PerSecond float64 `json:"per_second,omitempty"` // classes only: over Rate.WindowSeconds
}

// Evidence is what conntrack says about the group's teardown-shaped drops.
type Evidence struct {
	Proven   uint64  `json:"proven"`   // destroyed + closing + established: a real connection ended or lives
	Unproven uint64  `json:"unproven"` // none: no trace of a connection (a scan looks like this)
	Skipped  uint64  `json:"skipped"`  // not looked up
	Values   []Count `json:"values"`   // every evidence value
}

// Sources are the heaviest sources of non-teardown drops.
type Sources struct {
	Addresses Top `json:"addresses"`
	Networks  Top `json:"networks"`
}

// Top is one level of the sketch: exact addresses or networks.
type Top struct {
	PrefixLengthIPv4 int      `json:"prefix_length_ipv4"`
	PrefixLengthIPv6 int      `json:"prefix_length_ipv6"`
	Total            uint64   `json:"total"`       // packets counted at this level
	Exact            bool     `json:"exact"`       // every count is exact
	ErrorBound       uint64   `json:"error_bound"` // no count is over by more; no unlisted source has more
	Capacity         int      `json:"capacity"`
	Entries          []Source `json:"entries"`
}

// Source is one address or network.
type Source struct {
	Source    string            `json:"source"` // address, or network in CIDR notation
	Packets   uint64            `json:"packets"`
	Error     uint64            `json:"error"` // packets - error <= true count <= packets
	Classes   map[string]uint64 `json:"classes"`
	FirstSeen time.Time         `json:"first_seen"`
	LastSeen  time.Time         `json:"last_seen"`
}

// Snapshotter is the collector's read-only view.
type Snapshotter interface {
	Snapshot(k int) []collector.GroupSnapshot
}

// EvidenceSource is the teardown evidence: ok is false when there is none
// for the group.
type EvidenceSource interface {
	EvidenceCounts(group classify.Group) (counts [conntrack.NumEvidence]uint64, ok bool)
}

// ReasonSource splits a group's drops by the reason the firewall dropped
// them. Optional: without one the split is absent from the JSON and the page.
type ReasonSource interface {
	// DropReasons returns the group's drops by reason; ok is false when
	// there is no split for the group.
	DropReasons(group classify.Group) (drops map[string]uint64, ok bool)
}

// RuleSource counts the firewall rules that log to a group. Optional: without
// one, or when ok is false, the count is null and the verdict says nothing
// about rules.
type RuleSource interface {
	LogRules(group classify.Group) (n int, ok bool)
}

// build turns snapshots into the document; rates come from prev (nil: none).
func (s *Summarizer) build(now time.Time, snaps []collector.GroupSnapshot, prev *sample) Summary {
	out := Summary{
		APIVersion: APIVersion, Exporter: s.cfg.Exporter, Version: s.cfg.Version,
		GeneratedAt: now.UTC(), SourcesEnabled: s.cfg.Sources, Groups: make([]Group, 0, len(snaps)),
	}
	window := 0.0
	if prev != nil {
		window = now.Sub(prev.at).Seconds()
	}
	for i, gs := range snaps {
		g := Group{Group: GroupID(gs.Group), Up: gs.Up, Lost: gs.Lost}
		if gs.LastPacket != 0 {
			t := time.Unix(0, gs.LastPacket).UTC()
			age := max(now.Sub(t).Seconds(), 0)
			g.LastPacket, g.LastPacketAgeSeconds = &t, &age
		}
		var classes [classify.NumClasses]uint64
		ports, flags := map[string]uint64{}, map[string]uint64{}
		for _, sc := range gs.Series {
			classes[sc.Class%classify.NumClasses] += sc.Packets
			g.Packets += sc.Packets
			if sc.Class == classify.ClassTeardown {
				continue
			}
			if p := sc.PortLabel(); p != "" {
				ports[p] += sc.Packets
			}
			if f := sc.FlagsLabel(); f != "" {
				flags[f] += sc.Packets
			}
		}
		for _, cl := range classify.ReportOrder {
			c := Count{Name: cl.String(), Packets: classes[cl], Share: share(classes[cl], g.Packets)}
			if prev != nil && i < len(prev.groups) && window > 0 {
				c.PerSecond = float64(classes[cl]-min(prev.groups[i].classes[cl], classes[cl])) / window
			}
			g.Classes = append(g.Classes, c)
		}
		g.TeardownShare = share(classes[classify.ClassTeardown], g.Packets)
		if prev != nil && i < len(prev.groups) && window > 0 {
			p := &prev.groups[i]
			g.Rate = Rate{
				WindowSeconds:    window,
				PacketsPerSecond: float64(g.Packets-min(p.packets, g.Packets)) / window,
				LostPerSecond:    float64(g.Lost-min(p.lost, g.Lost)) / window,
			}
		}
		g.Ports, g.Flags = topCounts(ports, s.cfg.TopN), topCounts(flags, s.cfg.TopN)
		if s.cfg.Evidence != nil {
			if counts, ok := s.cfg.Evidence.EvidenceCounts(gs.Group); ok {
				g.Evidence = evidenceOf(counts)
			}
		}
		if s.cfg.Rules != nil {
			if n, ok := s.cfg.Rules.LogRules(gs.Group); ok {
				g.LogRules = &n
			}
		}
		g.Level, g.Verdict = verdict(&g)
		if s.cfg.Reasons != nil {
			if drops, ok := s.cfg.Reasons.DropReasons(gs.Group); ok {
				g.Reasons = topCounts(drops, len(drops))
			}
		}
		if gs.Sources != nil {
			g.Sources = &Sources{Addresses: topOf(gs.Sources.Addresses), Networks: topOf(gs.Sources.Networks)}
		}
		out.Groups = append(out.Groups, g)
	}
	return out
}

func share(n, total uint64) float64 {
	if total == 0 {
		return 0
	}
	return float64(n) / float64(total)
}

// topCounts returns the k largest values (ties by name), with shares of the whole map.
func topCounts(m map[string]uint64, k int) []Count {
	var total uint64
	out := make([]Count, 0, len(m))
	for name, n := range m {
		out = append(out, Count{Name: name, Packets: n})
		total += n
	}
	slices.SortFunc(out, func(a, b Count) int {
		return cmp.Or(cmp.Compare(b.Packets, a.Packets), cmp.Compare(a.Name, b.Name))
	})
	if len(out) > k {
		out = out[:k]
	}
	for i := range out {
		out[i].Share = share(out[i].Packets, total)
	}
	return out
}

func evidenceOf(c [conntrack.NumEvidence]uint64) *Evidence {
	e := &Evidence{
		Proven:   c[conntrack.EvidenceDestroyed] + c[conntrack.EvidenceClosing] + c[conntrack.EvidenceEstablished],
		Unproven: c[conntrack.EvidenceNone],
		Skipped:  c[conntrack.EvidenceSkipped],
	}
	var total uint64
	for _, n := range c {
		total += n
	}
	for v := conntrack.Evidence(0); v < conntrack.NumEvidence; v++ {
		e.Values = append(e.Values, Count{Name: v.String(), Packets: c[v], Share: share(c[v], total)})
	}
	return e
}

func topOf(t topsources.Top) Top {
	out := Top{
		PrefixLengthIPv4: t.Bits4, PrefixLengthIPv6: t.Bits6, Total: t.Total, Exact: t.Exact,
		ErrorBound: t.ErrorBound, Capacity: t.Capacity, Entries: make([]Source, 0, len(t.Entries)),
	}
	for _, e := range t.Entries {
		out.Entries = append(out.Entries, Source{Source: e.Source(), Packets: e.Count, Error: e.Error, Classes: classify.NamedCounts(e.Classes[:]),
			FirstSeen: e.First.UTC(), LastSeen: e.Last.UTC()})
	}
	return out
}

// verdict sums the group up: mostly late teardown (of connections conntrack
// knew, when it was asked) is the normal noise of a stateful firewall; the
// rest is worth a look at ports and sources.
func verdict(g *Group) (level, text string) {
	switch {
	case g.Packets == 0 && g.LogRules != nil && *g.LogRules == 0:
		// Not a quiet firewall: nothing this exporter can see feeds the group.
		return "look", "No nf_tables rule logs to NFLOG group " + g.Group.String() + ", so no drop can reach it unless an iptables-legacy rule logs to it: iptables-legacy rules are invisible to nf_tables. Check the group number of your log rule."
	case g.Packets == 0:
		return "idle", "No drops yet."
	case g.TeardownShare < 0.5:
		return "look", "Mostly not teardown: traffic the firewall refuses on purpose or by mistake; see the ports and sources."
	case g.Evidence == nil || g.Evidence.Proven+g.Evidence.Unproven == 0:
		return "harmless", "Mostly late teardown of closed connections: likely harmless."
	case g.Evidence.Proven >= g.Evidence.Unproven:
		return "harmless", "Mostly late teardown, and conntrack knew the connections: harmless."
	}
	return "look", "Teardown-shaped, but conntrack knew no connection for most: could be a scan; see the sources."
}
