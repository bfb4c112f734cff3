package conntrack

import (
	"testing"
	"time"
)

// TestStats: what the tracker counted, as a scrape reads it; an ended flow
// outside the window is no longer remembered.
func TestStats(t *testing.T) {
	tr, err := New(testConfig(), nopLogger())
	if err != nil {
		t.Fatal(err)
	}
	if s := tr.Stats(); s.Up || s.Preexisting != -1 || len(s.Groups) != 2 || s.Groups[0].Group != 0 || s.Groups[1].Group != 5 {
		t.Fatalf("fresh tracker: %+v", s)
	}
	t0 := time.Now()
	tr.up.Store(true)
	tr.preexisting.Store(17)
	tr.destroys.Add(3)
	tr.undecodable.Add(1)
	tr.lostBase.Add(4)
	tp := tup(t, "10.99.0.2", 40000, "10.99.0.1", 443)
	tr.recordDestroy(&tp, t0.Add(-2*time.Second).UnixNano())
	old := tup(t, "10.99.0.2", 40001, "10.99.0.1", 443)
	tr.recordDestroy(&old, t0.Add(-time.Hour).UnixNano())
	tr.groups[0].evidence[EvidenceDestroyed].Add(2)
	tr.groups[1].evidence[EvidenceNone].Add(1)
	tr.lookups[LookupNotFound].Add(1)
	s := tr.Stats()
	want := Stats{Up: true, Destroys: 3, EventsLost: 5, Remembered: 2, Lookups: [NumLookupResults]uint64{0, 1, 0}, Preexisting: 17,
		Groups: []GroupStats{{Group: 0, Evidence: [NumEvidence]uint64{EvidenceDestroyed: 2}}, {Group: 5, Evidence: [NumEvidence]uint64{EvidenceNone: 1}}}}
	// The flow that ended an hour ago was remembered when its DESTROY came
	// (now) and is forgotten a window after that, not before.
	if s.Up != want.Up || s.Destroys != want.Destroys || s.EventsLost != want.EventsLost || s.Remembered != want.Remembered ||
		s.Lookups != want.Lookups || s.Preexisting != want.Preexisting || len(s.Groups) != 2 || s.Groups[0] != want.Groups[0] || s.Groups[1] != want.Groups[1] {
		t.Errorf("Stats() = %+v\nwant %+v", s, want)
	}
	if c, ok := tr.EvidenceCounts(5); !ok || c != want.Groups[1].Evidence {
		t.Errorf("EvidenceCounts(5) = %v, %v", c, ok)
	}
	if _, ok := tr.EvidenceCounts(7); ok {
		t.Error("EvidenceCounts of a group the tracker does not serve")
	}
	if LookupNotFound.String() != "not_found" || LookupError.String() != "error" || LookupFound.String() != "found" {
		t.Error("lookup result names changed")
	}
}
