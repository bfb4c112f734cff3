package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop-lab/lab"
)

// summarize computes the median [min-max] of every point and receiver over
// the runs that succeeded.
func summarize(runs []RunResult, points []Point, rcvs []Receiver) []Cell {
	var out []Cell
	for _, p := range points {
		for _, r := range rcvs {
			var sel []RunResult
			for _, x := range runs {
				if x.Point == p.Name && x.Receiver == r.Name && x.Err == "" {
					sel = append(sel, x)
				}
			}
			if len(sel) == 0 {
				continue
			}
			c := Cell{Point: p.Name, Receiver: r.Name, Kind: r.Kind, N: len(sel)}
			c.SentPPS = stat(sel, func(x RunResult) float64 { return x.SentPPS })
			c.LoggedRate = stat(sel, func(x RunResult) float64 { return x.LoggedRate })
			c.LossPct = stat(sel, func(x RunResult) float64 { return x.LossPct })
			c.Lost = stat(sel, func(x RunResult) float64 { return float64(x.Lost) })
			c.Unaccounted = stat(sel, func(x RunResult) float64 { return float64(x.Unaccounted) })
			c.CPUPerM = stat(sel, func(x RunResult) float64 { return x.CPUPerM })
			c.BPFPerM = stat(sel, func(x RunResult) float64 { return x.BPFPerM })
			c.CPUPerMDrops = stat(sel, func(x RunResult) float64 { return x.CPUPerMDrops })
			c.TickCPUPerM = stat(sel, func(x RunResult) float64 { return x.TickCPUPerM })
			c.CPUPerMNoScrape = stat(sel, func(x RunResult) float64 { return x.CPUPerMNoScrape })
			c.ScrapeCPUMs = stat(sel, func(x RunResult) float64 { return x.ScrapeCPUMs })
			c.PeakRSS = stat(sel, func(x RunResult) float64 { return float64(x.PeakRSS) })
			c.Scrapes = stat(sel, func(x RunResult) float64 { return float64(x.Scrapes) })
			if scraped := filter(sel, func(x RunResult) bool { return x.Scrapes > 0 }); len(scraped) > 0 {
				c.ScrapeMedMs = stat(scraped, func(x RunResult) float64 { return x.ScrapeMedMs })
				c.ScrapeP99Ms = stat(scraped, func(x RunResult) float64 { return x.ScrapeP99Ms })
				c.ScrapeMaxMs = stat(scraped, func(x RunResult) float64 { return x.ScrapeMaxMs })
				c.ScrapesOver100 = stat(scraped, func(x RunResult) float64 { return float64(x.ScrapesOver100) })
			}
			if traced := filter(sel, func(x RunResult) bool { return x.RecvTraced }); len(traced) > 0 {
				c.Traced = len(traced)
				c.RecvGapMaxMs = stat(traced, func(x RunResult) float64 { return x.RecvGapMaxMs })
				c.RecvBusyGapMaxMs = stat(traced, func(x RunResult) float64 { return x.RecvBusyGapMaxMs })
			}
			c.Series = stat(sel, func(x RunResult) float64 { return float64(x.Series) })
			c.MallocsPerMsg = stat(sel, func(x RunResult) float64 { return x.MallocsPerMsg })
			c.SenderUSPerPacket = stat(sel, func(x RunResult) float64 { return x.SenderUSPerPacket })
			out = append(out, c)
		}
	}
	return out
}

func filter(xs []RunResult, keep func(RunResult) bool) []RunResult {
	var out []RunResult
	for _, x := range xs {
		if keep(x) {
			out = append(out, x)
		}
	}
	return out
}

// stat returns median, min and max (the median of an even count is the
// mean of the two middle values).
func stat(xs []RunResult, f func(RunResult) float64) [3]float64 {
	v := make([]float64, len(xs))
	for i, x := range xs {
		v[i] = f(x)
	}
	return median3(v)
}

func median3(v []float64) [3]float64 {
	if len(v) == 0 {
		return [3]float64{}
	}
	v = slices.Clone(v)
	slices.Sort(v)
	m := v[len(v)/2]
	if len(v)%2 == 0 {
		m = (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	return [3]float64{m, v[0], v[len(v)-1]}
}

// WriteJSON writes the report as indented JSON.
func WriteJSON(w io.Writer, r Report) error {
	e := json.NewEncoder(w)
	e.SetIndent("", "  ")
	return e.Encode(r)
}

// WriteTables writes the summary (medians [min-max]), the CPU ratios per
// point (the exporter against the reference receiver, the others against
// the exporter), and every failed run.
func WriteTables(w io.Writer, r Report) error {
	fmt.Fprintf(w, "nfdrop bench: kernel %s, %d CPUs, %d repetitions, %s, %.0f s\n\n", r.Kernel, r.CPUs, r.Reps, r.Started.Format("2006-01-02 15:04 UTC"), r.Duration)
	fmt.Fprintln(w, "| point | receiver | n | sent pps | logged msg/s | loss % | lost | unaccounted | CPU s / M msgs | without scrapes | tick CPU s / M | peak RSS MiB | scrapes | scrape p50 / p99 / max ms | scrapes > 100 ms | scrape CPU ms | max recv gap ms | max busy gap ms | series | allocs/msg | sender µs/pkt |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, c := range r.Summary {
		lat, over := "–", "–"
		if c.Scrapes[0] > 0 {
			lat = fmt.Sprintf("%s / %s / %s", fmtF(c.ScrapeMedMs, 1), fmtF(c.ScrapeP99Ms, 1), fmtF(c.ScrapeMaxMs, 1))
			over = fmtF(c.ScrapesOver100, 0)
		}
		gap, busy := "–", "–"
		if c.Traced > 0 {
			gap, busy = fmtF(c.RecvGapMaxMs, 1), fmtF(c.RecvBusyGapMaxMs, 2)
		}
		fmt.Fprintf(w, "| %s | %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
			c.Point, c.Receiver, c.N, fmtK(c.SentPPS), fmtK(c.LoggedRate), fmtF(c.LossPct, 2), fmtF(c.Lost, 0),
			fmtF(c.Unaccounted, 0), fmtF(c.CPUPerM, 3), fmtF(c.CPUPerMNoScrape, 3), fmtF(c.TickCPUPerM, 2), fmtF(scale(c.PeakRSS, 1.0/(1<<20)), 1),
			dash(c.Scrapes, 0), lat, over, dash(c.ScrapeCPUMs, 1), gap, busy, dash(c.Series, 0), allocs(c.MallocsPerMsg), fmtF(c.SenderUSPerPacket, 2))
	}
	for _, c := range r.Summary {
		if c.Kind == KindEBPF {
			fmt.Fprintf(w, "\n%s: the eBPF drop source; its messages are drops, its CPU includes its BPF program's kernel run time.\n", c.Receiver)
			break
		}
	}
	writeRatios(w, r)
	writeDropsTable(w, r)
	failed, untraced := 0, map[string]bool{}
	for _, x := range r.Runs {
		if x.Err != "" {
			if failed == 0 {
				fmt.Fprintln(w, "\nfailed runs:")
			}
			failed++
			fmt.Fprintf(w, "  %s / %s rep %d: %s\n", x.Point, x.Receiver, x.Rep, x.Err)
		}
		if x.RecvTraceErr != "" && !untraced[x.Receiver+x.RecvTraceErr] {
			untraced[x.Receiver+x.RecvTraceErr] = true
			fmt.Fprintf(w, "\nno receive-call gaps for %s: %s\n", x.Receiver, x.RecvTraceErr)
		}
		if x.CPUThreadsMissed > 0 {
			fmt.Fprintf(w, "\n%s / %s rep %d: %d threads exited during the flood without an exit record; their last CPU time is missing\n", x.Point, x.Receiver, x.Rep, x.CPUThreadsMissed)
		}
	}
	return nil
}

// writeRatios writes one row per point: every receiver's CPU s per million
// messages (medians), each exporter against the reference receiver, every
// other receiver against the first exporter (or the first receiver), and
// loss % and the longest receive-call gap per receiver.
func writeRatios(w io.Writer, r Report) {
	var names []string
	for _, c := range r.Summary {
		// The eBPF source counts drops, not messages: writeDropsTable compares it.
		if c.Kind != KindEBPF && !slices.Contains(names, c.Receiver) {
			names = append(names, c.Receiver)
		}
	}
	if len(names) < 2 {
		return
	}
	kind := map[string]string{}
	for _, ri := range r.Receivers {
		kind[ri.Name] = ri.Kind
	}
	first := func(k string) int { return slices.IndexFunc(names, func(n string) bool { return kind[n] == k }) }
	base, ref := names[0], ""
	if i := first(KindExporter); i >= 0 {
		base = names[i]
	}
	if i := first(KindReference); i >= 0 {
		ref = names[i]
	}
	type ratio struct{ num, den string }
	var ratios []ratio
	if ref != "" {
		for _, n := range names {
			if kind[n] == KindExporter {
				ratios = append(ratios, ratio{n, ref})
			}
		}
	}
	for _, n := range names {
		if n != base && n != ref && kind[n] != KindExporter {
			ratios = append(ratios, ratio{n, base})
		}
	}
	if len(ratios) == 0 {
		return
	}
	head := []string{"point"}
	for _, n := range names {
		head = append(head, n+" CPU s/M")
	}
	for _, q := range ratios {
		head = append(head, q.num+" / "+q.den)
	}
	for _, n := range names {
		head = append(head, n+" loss %")
	}
	for _, n := range names {
		head = append(head, n+" max recv gap ms")
	}
	fmt.Fprintf(w, "\n| %s |\n|%s\n", strings.Join(head, " | "), strings.Repeat("---|", len(head)))
	for _, p := range r.Points {
		cells := map[string]Cell{}
		for _, n := range names {
			if c, ok := cell(r.Summary, p.Name, n); ok {
				cells[n] = c
			}
		}
		if len(cells) == 0 {
			continue
		}
		row := []string{p.Name}
		for _, n := range names {
			row = append(row, pick(cells, n, func(c Cell) string { return fmt.Sprintf("%.3f", c.CPUPerM[0]) }))
		}
		for _, q := range ratios {
			a, okA := cells[q.num]
			b, okB := cells[q.den]
			if okA && okB && b.CPUPerM[0] > 0 {
				row = append(row, fmt.Sprintf("%.2fx", a.CPUPerM[0]/b.CPUPerM[0]))
			} else {
				row = append(row, "–")
			}
		}
		for _, n := range names {
			row = append(row, pick(cells, n, func(c Cell) string { return fmt.Sprintf("%.2f", c.LossPct[0]) }))
		}
		for _, n := range names {
			row = append(row, pick(cells, n, func(c Cell) string {
				if c.Traced == 0 {
					return "–"
				}
				return fmt.Sprintf("%.1f", c.RecvGapMaxMs[0])
			}))
		}
		fmt.Fprintf(w, "| %s |\n", strings.Join(row, " | "))
	}
}

func pick(cells map[string]Cell, name string, f func(Cell) string) string {
	if c, ok := cells[name]; ok {
		return f(c)
	}
	return "–"
}

// writeDropsTable sets the exporter's eBPF source next to its NFLOG path at
// the same floods, per million dropped packets (an NFLOG point with N rules
// logs each drop N times), the BPF program's kernel run time included.
func writeDropsTable(w io.Writer, r Report) {
	var nflog, ebpf string
	for _, c := range r.Summary {
		switch {
		case c.Kind == KindExporter && nflog == "":
			nflog = c.Receiver
		case c.Kind == KindEBPF && ebpf == "":
			ebpf = c.Receiver
		}
	}
	if nflog == "" || ebpf == "" {
		return
	}
	fmt.Fprintf(w, "\n| point | %s CPU s / M drops | %s CPU s / M drops | of it BPF program | %s / %s | %s loss %% |\n", nflog, ebpf, ebpf, nflog, ebpf)
	fmt.Fprintln(w, "|---|---|---|---|---|---|")
	for _, p := range r.Points {
		a, okA := cell(r.Summary, p.Name, nflog)
		b, okB := cell(r.Summary, p.Name, ebpf)
		if !okA || !okB {
			continue
		}
		ratio := "–"
		if a.CPUPerMDrops[0] > 0 {
			ratio = fmt.Sprintf("%.2fx", b.CPUPerMDrops[0]/a.CPUPerMDrops[0])
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s |\n", p.Name, fmtF(a.CPUPerMDrops, 3), fmtF(b.CPUPerMDrops, 3), fmtF(b.BPFPerM, 3), ratio, fmtF(b.LossPct, 2))
	}
}

func cell(cs []Cell, point, rcv string) (Cell, bool) {
	for _, c := range cs {
		if c.Point == point && c.Receiver == rcv {
			return c, true
		}
	}
	return Cell{}, false
}

func scale(v [3]float64, f float64) [3]float64 { return [3]float64{v[0] * f, v[1] * f, v[2] * f} }

func fmtF(v [3]float64, prec int) string {
	if v[1] == v[2] {
		return fmt.Sprintf("%.*f", prec, v[0])
	}
	return fmt.Sprintf("%.*f [%.*f–%.*f]", prec, v[0], prec, v[1], prec, v[2])
}

func fmtK(v [3]float64) string {
	k := func(x float64) string { return fmt.Sprintf("%.0fk", x/1000) }
	if k(v[1]) == k(v[2]) {
		return k(v[0])
	}
	return fmt.Sprintf("%s [%s–%s]", k(v[0]), k(v[1]), k(v[2]))
}

func dash(v [3]float64, prec int) string {
	if v == [3]float64{} {
		return "–"
	}
	return fmtF(v, prec)
}

func allocs(v [3]float64) string {
	if v[0] < 0 {
		return "–"
	}
	return strings.TrimSpace(fmtF(v, 2))
}

func progressLine(r RunResult) string {
	if r.Err != "" {
		return fmt.Sprintf("%-20s %-16s rep %d: ERROR %s", r.Point, r.Receiver, r.Rep, r.Err)
	}
	line := fmt.Sprintf("%-20s %-16s rep %d: sent %7.0f pps, logged %8.0f msg/s, loss %.3f %%, unaccounted %d, %.3f CPU s/M (ticks %.2f), RSS %.1f MiB",
		r.Point, r.Receiver, r.Rep, r.SentPPS, r.LoggedRate, r.LossPct, r.Unaccounted, r.CPUPerM, r.TickCPUPerM, float64(r.PeakRSS)/(1<<20))
	if r.Scrapes > 0 {
		line += fmt.Sprintf(", %d scrapes p50/p99/max %.1f/%.1f/%.1f ms", r.Scrapes, r.ScrapeMedMs, r.ScrapeP99Ms, r.ScrapeMaxMs)
	}
	if r.RecvTraced {
		line += fmt.Sprintf(", max recv gap %.1f ms (busy %.2f ms, %d calls)", r.RecvGapMaxMs, r.RecvBusyGapMaxMs, r.RecvCalls)
	}
	return line
}

// ParsePoint parses a --point value "RATE:RULES:PACKETS[:MIX][:noscrape]":
// RATE in packets per second ("max" for as fast as the sender can, a "k"
// suffix for thousands), RULES identical NFLOG rules, PACKETS to send ("k"
// and "M" suffixes), MIX teardown (default) or random, and noscrape to leave
// the exporter unscraped during the flood. The name is derived from the
// values.
func ParsePoint(s string) (Point, error) {
	f := strings.Split(s, ":")
	if len(f) < 3 || len(f) > 5 {
		return Point{}, fmt.Errorf("point %q: want RATE:RULES:PACKETS[:MIX][:noscrape], e.g. 200k:1:600000 or max:8:300k:random", s)
	}
	var p Point
	num := func(v string) (float64, error) {
		mult := 1.0
		if k, ok := strings.CutSuffix(v, "k"); ok {
			v, mult = k, 1000
		} else if m, ok := strings.CutSuffix(v, "M"); ok {
			v, mult = m, 1e6
		}
		n, err := strconv.ParseFloat(v, 64)
		if err != nil || !(n*mult >= 1) || math.IsInf(n, 0) {
			return 0, fmt.Errorf("point %q: %q is not a number of at least 1", s, v)
		}
		return n * mult, nil
	}
	rateName := "max pps"
	if f[0] != "max" {
		r, err := num(f[0])
		if err != nil {
			return Point{}, err
		}
		p.Rate, rateName = r, fmt.Sprintf("%gk pps", r/1000)
	}
	rules, err := strconv.Atoi(f[1])
	if err != nil {
		return Point{}, fmt.Errorf("point %q: rules %q: %v", s, f[1], err)
	}
	n, err := num(f[2])
	if err != nil {
		return Point{}, err
	}
	p.Rules, p.Packets, p.Mix = rules, uint64(n), lab.MixTeardown
	mixSet := false
	for _, opt := range f[3:] {
		switch {
		case opt == "noscrape" && !p.NoScrapes:
			p.NoScrapes = true
		case (lab.Mix(opt) == lab.MixTeardown || lab.Mix(opt) == lab.MixRandom) && !mixSet:
			p.Mix, mixSet = lab.Mix(opt), true
		default:
			return Point{}, fmt.Errorf("point %q: %q: want %s, %s or noscrape, each at most once", s, opt, lab.MixTeardown, lab.MixRandom)
		}
	}
	if p.Rules < 1 || p.Rules > 16 || p.Packets < 1 || p.Packets > 50_000_000 {
		return Point{}, fmt.Errorf("point %q: want 1-16 rules and 1-50M packets", s)
	}
	p.Name = rateName
	if p.Rules > 1 {
		p.Name += fmt.Sprintf(" x%d rules", p.Rules)
	}
	if p.Mix == lab.MixRandom {
		p.Name = "random " + p.Name
	}
	if p.NoScrapes {
		p.Name += ", no scrapes"
	}
	return p, nil
}
