package bench

import (
	"time"

	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop-lab/lab"
)

// Point is one offered load.
type Point struct {
	Name    string  `json:"name"`
	Rate    float64 `json:"rate_pps"` // packets per second; 0 = as fast as the sender core can
	Rules   int     `json:"rules"`    // identical NFLOG rules: messages per packet
	Packets uint64  `json:"packets"`  // packets to send
	Mix     lab.Mix `json:"mix"`
	// ScrapeEvery is the exporter's scrape interval during the flood;
	// 0 means Options.ScrapeEvery.
	ScrapeEvery time.Duration `json:"scrape_interval_ns,omitempty"`
	// NoScrapes leaves the exporter unscraped during the flood, to tell
	// what scrapes do to its reader.
	NoScrapes bool `json:"no_scrapes,omitempty"`
}

// DefaultPoints is the full bench.
func DefaultPoints() []Point {
	return []Point{
		{Name: "50k pps", Rate: 50_000, Rules: 1, Packets: 250_000, Mix: lab.MixTeardown},
		{Name: "200k pps", Rate: 200_000, Rules: 1, Packets: 600_000, Mix: lab.MixTeardown},
		{Name: "max pps", Rate: 0, Rules: 1, Packets: 600_000, Mix: lab.MixTeardown},
		{Name: "100k pps x4 rules", Rate: 100_000, Rules: 4, Packets: 300_000, Mix: lab.MixTeardown},
		{Name: "max pps x8 rules", Rate: 0, Rules: 8, Packets: 300_000, Mix: lab.MixTeardown},
		{Name: "random max pps", Rate: 0, Rules: 1, Packets: 600_000, Mix: lab.MixRandom},
	}
}

// QuickPoints is the --quick bench (three short points, run once).
func QuickPoints() []Point {
	return []Point{
		{Name: "200k pps", Rate: 200_000, Rules: 1, Packets: 200_000, Mix: lab.MixTeardown},
		{Name: "max pps x8 rules", Rate: 0, Rules: 8, Packets: 100_000, Mix: lab.MixTeardown},
		{Name: "random max pps", Rate: 0, Rules: 1, Packets: 200_000, Mix: lab.MixRandom},
	}
}

// FloorPoints compare the exporter with the reference receiver at fixed
// offered rates that both sustain without loss, at least 3 million messages
// per run, each with the exporter scraped every second and without scrapes
// (~4.5 minutes per repetition with the exporter and the reference).
func FloorPoints() []Point {
	var out []Point
	for _, p := range []Point{
		{Name: "150k pps x8 rules", Rate: 150_000, Rules: 8, Packets: 750_000, Mix: lab.MixTeardown},
		{Name: "50k pps", Rate: 50_000, Rules: 1, Packets: 3_000_000, Mix: lab.MixTeardown},
	} {
		p.ScrapeEvery = time.Second
		q := p
		q.Name, q.NoScrapes, q.ScrapeEvery = p.Name+", no scrapes", true, 0
		out = append(out, p, q)
	}
	return out
}

// PointSets names the point sets: full (DefaultPoints), quick and floor.
func PointSets() map[string]func() []Point {
	return map[string]func() []Point{"full": DefaultPoints, "quick": QuickPoints, "floor": FloorPoints}
}

// DefaultReceivers are the exporter at exporterPath with its default flags,
// the reference receiver (built at run time), ulogd2 from the Debian package,
// and the exporter reading the eBPF drop source alone.
func DefaultReceivers(exporterPath string) []Receiver {
	return []Receiver{
		{Name: "nfdrop_exporter", Kind: KindExporter, Path: exporterPath},
		{Name: "reference", Kind: KindReference},
		{Name: "ulogd2", Kind: KindUlogd, Path: "/usr/sbin/ulogd"},
		{Name: EBPFReceiverName, Kind: KindEBPF, Path: exporterPath},
	}
}

// EBPFReceiverName is the default eBPF receiver's name in the tables.
const EBPFReceiverName = "exporter eBPF"
