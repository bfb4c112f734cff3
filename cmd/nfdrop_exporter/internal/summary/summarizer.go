package summary

import (
	"encoding/json"
	"net/http"
	"sync"
	"time"

	"github.com/nfdrop/nfdrop_exporter/collector"
	"github.com/nfdrop/nfdrop_exporter/collector/classify"
	"github.com/nfdrop/nfdrop_exporter/collector/topsources"
)

// Config is what a Summarizer reads and how much it shows.
type Config struct {
	Collector Snapshotter
	Evidence  EvidenceSource // nil: conntrack correlation is off
	Reasons   ReasonSource   // nil: no reasons split
	Rules     RuleSource     // nil: the log rules are not counted
	Sources   bool           // the collector keeps a top-sources sketch
	Exporter  string         // program name
	Version   string         // build version
	// TopN bounds the port and flag splits; TopSources the sources shown per
	// level (at most topsources.ShowMax). 0 takes the defaults.
	TopN, TopSources int
	Now              func() time.Time // nil: time.Now
}

// Rates compare the counts with a sample at least RateWindow old. Samples
// are taken when a summary is built (a view of the page or the JSON), at
// most one per SampleInterval, and kept for just over a window: nothing
// runs while nobody looks.
const (
	RateWindow     = time.Minute
	SampleInterval = 5 * time.Second
	ringSize       = int(RateWindow/SampleInterval) + 2
	defaultTopN    = 10
)

type groupSample struct {
	classes       [classify.NumClasses]uint64
	packets, lost uint64
}

type sample struct {
	at     time.Time
	groups []groupSample // in the collector's group order
}

// Summarizer builds summaries and keeps the samples rates are computed from.
type Summarizer struct {
	cfg  Config
	mu   sync.Mutex // guards ring
	ring []sample   // oldest first, at most ringSize
}

// New returns a Summarizer and takes the first sample, so that rates cover
// the time since start until a minute has passed.
func New(cfg Config) *Summarizer {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.TopN <= 0 {
		cfg.TopN = defaultTopN
	}
	if cfg.TopSources <= 0 || cfg.TopSources > topsources.ShowMax {
		cfg.TopSources = topsources.ShowMax
	}
	s := &Summarizer{cfg: cfg}
	s.Sample()
	return s
}

// Sample records the current counts for later rates.
func (s *Summarizer) Sample() {
	s.record(s.cfg.Now(), s.cfg.Collector.Snapshot(0))
}

// record keeps the counts of snaps, taken at now, as a sample, unless the
// newest sample is younger than SampleInterval.
func (s *Summarizer) record(now time.Time, snaps []collector.GroupSnapshot) {
	smp := sample{at: now, groups: make([]groupSample, len(snaps))}
	for i, gs := range snaps {
		g := &smp.groups[i]
		g.lost = gs.Lost
		for _, sc := range gs.Series {
			g.classes[sc.Class%classify.NumClasses] += sc.Packets
			g.packets += sc.Packets
		}
	}
	// One critical section: two views at once must not both find the ring
	// stale and both append.
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := len(s.ring); n > 0 && now.Sub(s.ring[n-1].at) < SampleInterval {
		return
	}
	if len(s.ring) == ringSize {
		s.ring = append(s.ring[:0], s.ring[1:]...)
	}
	s.ring = append(s.ring, smp)
}

// base is the sample rates are computed against: the newest one at least
// RateWindow old, else the oldest one. nil when there is none before now.
func (s *Summarizer) base(now time.Time) *sample {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b *sample
	for i := range s.ring {
		smp := &s.ring[i]
		if !smp.at.Before(now) {
			break
		}
		if b == nil || now.Sub(smp.at) >= RateWindow {
			c := *smp
			b = &c
		}
	}
	return b
}

// Summary builds the document now, and keeps its counts as a sample for the
// rates of later views.
func (s *Summarizer) Summary() Summary {
	now := s.cfg.Now()
	snaps := s.cfg.Collector.Snapshot(s.cfg.TopSources)
	sum := s.build(now, snaps, s.base(now))
	s.record(now, snaps)
	return sum
}

// ServeHTTP serves the summary as JSON.
func (s *Summarizer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(s.Summary())
}
