package conntrack

import "github.com/nfdrop/nfdrop_exporter/collector/classify"

// LookupResult is the outcome of one direct conntrack lookup.
type LookupResult uint8

const (
	LookupFound LookupResult = iota
	LookupNotFound
	LookupError
	NumLookupResults
)

var lookupResultNames = [NumLookupResults]string{"found", "not_found", "error"}

// String returns the result label value.
func (r LookupResult) String() string { return lookupResultNames[r%NumLookupResults] }

// Stats is a snapshot of the tracker's counters.
type Stats struct {
	Up          bool   // subscribed to DESTROY events
	Destroys    uint64 // DESTROY events received
	EventsLost  uint64 // events the kernel dropped or that could not be decoded
	Remembered  int    // ended flows remembered now
	Evicted     uint64 // remembered flows forgotten early because memory was full
	Lookups     [NumLookupResults]uint64
	Preexisting int64 // conntrack entries when subscribing; -1 unknown
	// Groups has every group's evidence counts, in configuration order.
	Groups []GroupStats
}

// GroupStats is one group's evidence counts.
type GroupStats struct {
	Group    classify.Group
	Evidence [NumEvidence]uint64
}

// Stats returns the tracker's counters. Remembered flows whose window has
// ended are forgotten first, so that the count is what a drop can still
// match.
func (t *Tracker) Stats() Stats {
	s := Stats{
		Up:          t.up.Load(),
		Destroys:    t.destroys.Load(),
		EventsLost:  t.lostBase.Load() + t.undecodable.Load() + t.sock.drops(),
		Evicted:     t.evicted.Load(),
		Preexisting: t.preexisting.Load(),
		Groups:      make([]GroupStats, len(t.groups)),
	}
	now := t.now().UnixNano()
	t.mu.Lock()
	t.mem.expire(now)
	s.Remembered = t.mem.len()
	t.mu.Unlock()
	for r := range s.Lookups {
		s.Lookups[r] = t.lookups[r].Load()
	}
	for i := range t.groups {
		s.Groups[i].Group = t.cfg.Groups[i]
		s.Groups[i].Evidence = t.evidenceOf(i)
	}
	return s
}

// EvidenceCounts returns a group's teardown evidence counts (what
// nfdrop_teardown_evidence_total has); ok is false for a group the tracker
// does not serve.
func (t *Tracker) EvidenceCounts(g classify.Group) (counts [NumEvidence]uint64, ok bool) {
	i := t.groupIndex(g)
	if i < 0 {
		return counts, false
	}
	return t.evidenceOf(i), true
}

func (t *Tracker) evidenceOf(i int) (counts [NumEvidence]uint64) {
	for e := range counts {
		counts[e] = t.groups[i].evidence[e].Load()
	}
	return counts
}
