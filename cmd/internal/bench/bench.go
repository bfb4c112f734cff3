// Package bench floods the lab's server namespace with packets that hit N
// identical NFLOG rules and measures, side by side in the same run, how
// nfdrop_exporter, a minimal reference receiver (the floor any NFLOG reader
// pays) and Debian's ulogd2 keep up: offered and logged rate, received and
// lost messages, CPU seconds per million messages, peak RSS, the longest gap
// between the reader's receive calls and (for the exporter) scrape latency
// and series count during the flood. The exporter's eBPF drop source runs on
// the same floods (the NFLOG rules in place, nobody reading them) and is
// measured per million drops, its BPF program's kernel run time included.
// It follows one method throughout: a
// fresh namespace pair per run, sender pinned to one CPU and receiver to
// another, receivers alternating within each point, medians over
// repetitions.
package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop-lab/lab"
	"golang.org/x/sys/unix"
)

// Options configures Run.
type Options struct {
	Receivers      []Receiver // a KindReference receiver without Path is built with CC
	Points         []Point
	Reps           int           // repetitions per point and receiver (medians); default 3
	RulesDir       string        // deploy/firewall (iptables.rules, ip6tables.rules)
	Prefix         string        // namespace prefix; default "nfdG-b<pid>"
	Group          int           // NFLOG group of the ruleset (deploy/firewall: 0)
	SenderCPU      int           // default 0
	ReceiverCPU    int           // default 1
	Settle         time.Duration // wait after the receiver's socket queue is empty; default 500ms
	ScrapeEvery    time.Duration // exporter scrape interval during the flood unless the point sets one; default 2s (the first one 500ms after the start)
	MaxFlood       time.Duration // cap of one flood; default 30s, or twice the flood's planned length plus 5s
	Settings       GroupSettings // group settings of the reference receiver and ulogd2; default ExporterSettings()
	CC             string        // C compiler of the reference receiver; default gcc
	NoRecvTrace    bool          // do not load the receive-call tracer (no gaps, no exited-thread CPU)
	QuietBelow     float64       // wait (up to 2s) until the machine's other load is below this fraction; default 0.15; <0 disables
	UlogdPluginDir string        // default /usr/lib/x86_64-linux-gnu/ulogd
	UlogdDefaults  bool          // run ulogd with Debian's defaults instead of the exporter's group settings
	JSON           bool          // write JSON instead of the tables to out
	PerfDir        string        // if set, record a perf profile of every exporter run there (perf record -g)
	ExtraNft       string        // if set, an nftables file loaded into the receiver's namespace after the bench's rules (a large ruleset for the scrapes to read)
	Progress       io.Writer     // one line per run; nil = quiet
}

func (o *Options) defaults() error {
	if o.Reps == 0 {
		o.Reps = 3
	}
	if o.Prefix == "" {
		// Unique per process: two benches (or a bench and a test) on one
		// machine must never delete each other's namespaces.
		o.Prefix = fmt.Sprintf("nfdG-b%d", os.Getpid())
	}
	if o.ReceiverCPU == 0 && o.SenderCPU == 0 {
		o.ReceiverCPU = 1
	}
	if o.Settle == 0 {
		o.Settle = 500 * time.Millisecond
	}
	if o.ScrapeEvery == 0 {
		// A scrape costs the exporter a few ms of CPU (gzip, sorting):
		// scraping much more often than Prometheus does would dominate the
		// CPU per message at low rates.
		o.ScrapeEvery = 2 * time.Second
	}
	if o.MaxFlood == 0 {
		o.MaxFlood = 30 * time.Second
	}
	if o.QuietBelow == 0 {
		o.QuietBelow = 0.15
	}
	if o.Settings == (GroupSettings{}) {
		o.Settings = ExporterSettings()
	}
	if o.UlogdPluginDir == "" {
		o.UlogdPluginDir = "/usr/lib/x86_64-linux-gnu/ulogd"
	}
	if o.RulesDir == "" {
		o.RulesDir = "deploy/firewall"
	}
	if len(o.Points) == 0 {
		o.Points = DefaultPoints()
	}
	if len(o.Receivers) == 0 {
		return errors.New("bench: no receivers")
	}
	if o.Reps < 1 || o.Reps > 20 {
		return fmt.Errorf("bench: %d repetitions: want 1 to 20", o.Reps)
	}
	for _, p := range o.Points {
		if p.Rules < 1 || p.Rules > 16 || p.Packets == 0 || p.Packets > 50_000_000 || p.Rate < 0 {
			return fmt.Errorf("bench: point %q: want 1-16 rules, 1-50M packets, rate >= 0", p.Name)
		}
	}
	for _, r := range o.Receivers {
		if r.Kind == KindReference && r.Path == "" {
			continue // built by Run
		}
		if _, err := os.Stat(r.Path); err != nil {
			return fmt.Errorf("bench: receiver %s: %w", r.Name, err)
		}
	}
	if runtime.NumCPU() < 2 || o.SenderCPU == o.ReceiverCPU {
		return fmt.Errorf("bench: needs two CPUs, one for the sender (%d) and one for the receiver (%d)", o.SenderCPU, o.ReceiverCPU)
	}
	if os.Geteuid() != 0 {
		return errors.New("bench: must run as root (network namespaces, NFLOG, AF_PACKET)")
	}
	return nil
}

// Run executes the bench and writes the tables (or JSON) to out.
func Run(ctx context.Context, o Options, out io.Writer) (Report, error) {
	rep := Report{Started: time.Now().UTC(), CPUs: runtime.NumCPU()}
	o.Receivers = slices.Clone(o.Receivers) // Run fills in the reference's path
	if err := o.defaults(); err != nil {
		return rep, err
	}
	rep.Reps, rep.Points, rep.Settings = o.Reps, o.Points, o.Settings
	for i, r := range o.Receivers {
		rep.Receivers = append(rep.Receivers, ReceiverInfo{Name: r.Name, Kind: r.Kind})
		if r.Kind == KindReference && r.Path == "" {
			dir, err := os.MkdirTemp("", "nfdG-reference-")
			if err != nil {
				return rep, err
			}
			defer os.RemoveAll(dir)
			if o.Receivers[i].Path, err = BuildReference(o.CC, dir); err != nil {
				return rep, err
			}
		}
		if r.Kind == KindExporter && o.Progress != nil {
			if f := changedGroupFlags(r.Args); len(f) > 0 {
				fmt.Fprintf(o.Progress, "note: %s runs with %s; the reference receiver and ulogd2 keep the exporter's defaults\n", r.Name, strings.Join(f, " "))
			}
		}
	}
	var uts unix.Utsname
	if unix.Uname(&uts) == nil {
		rep.Kernel = unix.ByteSliceToString(uts.Release[:])
	}
	// The whole bench process (the generator, scrapes, the tools it runs)
	// stays on the sender's CPU, so that the receiver has its CPU to itself.
	restore, err := pinProcess(o.SenderCPU)
	if err != nil {
		return rep, err
	}
	defer restore()

	pools := map[lab.Mix][]lab.Frame{}
	for _, p := range o.Points {
		if pools[p.Mix] == nil {
			if pools[p.Mix], err = lab.BuildPool(p.Mix, lab.PoolSize, 1); err != nil {
				return rep, err
			}
		}
	}
	for _, p := range o.Points {
		for r := 0; r < o.Reps; r++ {
			for i := range o.Receivers {
				// Rotate the order per repetition so that neither receiver
				// always runs first (warm caches, thermal state).
				rcv := o.Receivers[(i+r)%len(o.Receivers)]
				if err := ctx.Err(); err != nil {
					return rep, err
				}
				res := runOne(ctx, &o, p, rcv, r, pools[p.Mix])
				rep.Runs = append(rep.Runs, res)
				if o.Progress != nil {
					fmt.Fprintln(o.Progress, progressLine(res))
				}
			}
		}
	}
	rep.Summary = summarize(rep.Runs, o.Points, o.Receivers)
	rep.Duration = time.Since(rep.Started).Seconds()
	if o.JSON {
		err = WriteJSON(out, rep)
	} else {
		err = WriteTables(out, rep)
	}
	return rep, err
}

// runOne floods one fresh lab against one receiver.
func runOne(ctx context.Context, o *Options, p Point, rcv Receiver, rep int, pool []lab.Frame) (res RunResult) {
	res = RunResult{Point: p.Name, Receiver: rcv.Name, Rep: rep, MallocsPerMsg: -1}
	fail := func(err error) RunResult {
		res.Err = err.Error()
		return res
	}
	if o.QuietBelow > 0 {
		res.ForeignCPU = waitQuiet(o.QuietBelow, 2*time.Second)
	}
	dir, err := os.MkdirTemp("", "nfdG-bench-")
	if err != nil {
		return fail(err)
	}
	defer os.RemoveAll(dir)
	l, err := lab.New(o.Prefix)
	if err != nil {
		return fail(err)
	}
	defer l.Close()
	if err := applyRules(l, o, p.Rules, dir); err != nil {
		return fail(err)
	}
	proc, err := startReceiver(ctx, l, rcv, o, dir)
	if err != nil {
		return fail(err)
	}
	fail = func(err error) RunResult {
		res.Err = err.Error()
		select {
		case werr := <-proc.done:
			proc.done <- werr
			res.Err += fmt.Sprintf(" (receiver exited: %v: %s)", werr, tail(proc.stderr.String()))
		default:
		}
		return res
	}
	stopped := false
	defer func() {
		if !stopped {
			proc.kill()
			<-proc.done
		}
	}()

	// The tracer is loaded before the CPU window opens: it also records the
	// final CPU time of threads that exit during the window. The eBPF source
	// has no NFLOG socket (fd -1 matches no receive call): only exits count.
	var tracer *recvTracer
	if !o.NoRecvTrace {
		fd, err := -1, error(nil)
		if rcv.Kind != KindEBPF {
			fd, err = nflogSocketFD(proc.pid, o.Group)
		}
		if err == nil {
			tracer, err = startRecvTracer(proc.pid, fd)
		}
		if err != nil {
			res.RecvTraceErr = traceNote(err)
		} else {
			defer tracer.close()
		}
	}

	var before scrape
	if rcv.exporter() {
		if before, err = scrapeOnce(proc.client, proc.url, proc.group); err != nil {
			return fail(err)
		}
	}
	logged0, _, err := ruleCounters(l, o.Group)
	if err != nil {
		return fail(err)
	}
	dropped0, err := dropCounter(l)
	if err != nil {
		return fail(err)
	}
	if tracer != nil {
		if err := tracer.reset(); err != nil {
			return fail(err)
		}
	}
	cpu0, err := procCPU(proc.pid)
	if err != nil {
		return fail(err)
	}
	rt0, err := procThreadRuntimes(proc.pid)
	if err != nil {
		return fail(err)
	}

	var meter *bpfMeter
	if rcv.Kind == KindEBPF {
		if meter, err = startBPFMeter(proc.pid); err != nil {
			return fail(err)
		}
		defer func() {
			if meter != nil {
				_ = meter.close()
			}
		}()
	}

	if o.PerfDir != "" && rcv.exporter() {
		out := filepath.Join(o.PerfDir, fmt.Sprintf("perf-%s-%s-%d.data", strings.ReplaceAll(p.Name, " ", "_"), rcv.Name, rep))
		perf := exec.Command("perf", "record", "-q", "-F", "1999", "-g", "-p", strconv.Itoa(proc.pid), "-o", out)
		if err := perf.Start(); err != nil {
			return fail(fmt.Errorf("bench: perf: %w", err))
		}
		defer func() {
			_ = perf.Process.Signal(os.Interrupt)
			_ = perf.Wait()
		}()
		time.Sleep(300 * time.Millisecond) // perf attaches asynchronously
	}

	// The flood runs on its own locked thread in the client namespace.
	type floodOut struct {
		res lab.FloodResult
		err error
	}
	limit := floodLimit(o.MaxFlood, p)
	fc := make(chan floodOut, 1)
	floodStart := monotonicNow()
	go func() {
		var fr lab.FloodResult
		err := lab.InNetns(l.Client, func() error {
			var err error
			fr, err = lab.Flood(lab.ClientIf, pool, p.Packets, p.Rate, limit, ctx.Done())
			return err
		})
		fc <- floodOut{fr, err}
	}()
	every := p.ScrapeEvery
	if every <= 0 {
		every = o.ScrapeEvery
	}
	scrapes := rcv.exporter() && !p.NoScrapes
	var lat []time.Duration
	var windows [][2]int64 // CLOCK_MONOTONIC start and end of every scrape
	var fo floodOut
	tick := time.NewTimer(min(500*time.Millisecond, every))
	if !scrapes {
		tick.Stop()
	}
wait:
	for {
		select {
		case fo = <-fc:
			break wait
		case <-tick.C:
			tick.Reset(every)
			start := monotonicNow()
			s, err := scrapeOnce(proc.client, proc.url, proc.group)
			windows = append(windows, [2]int64{start, monotonicNow()})
			if err == nil {
				lat = append(lat, s.Latency)
			} else {
				lat = append(lat, time.Hour) // a failed scrape counts as unbounded
				res.ScrapeErrors++
			}
		}
	}
	tick.Stop()
	if fo.err != nil {
		return fail(fo.err)
	}
	floodEnd := time.Now()
	if tracer != nil && rcv.Kind != KindEBPF {
		g, err := tracer.gaps()
		if err != nil {
			return fail(err)
		}
		res.RecvTraced = true
		res.RecvCalls, res.RecvDataCalls = g.Calls, g.DataCalls
		res.RecvGapMaxMs = float64(g.MaxGap) / 1e6
		res.RecvBusyGapMaxMs = float64(g.MaxBusyGap) / 1e6
		if g.MaxGap > 0 {
			res.RecvGapMaxAtS = float64(g.MaxGapEnd-floodStart) / 1e9
			res.RecvGapInScrape = overlapsAny(g.MaxGapEnd-int64(g.MaxGap), g.MaxGapEnd, windows)
		}
	}
	res.Sent, res.SentPPS = fo.res.Sent, fo.res.PPS()
	if fo.res.Sent > 0 {
		res.SenderUSPerPacket = fo.res.CPU.Seconds() * 1e6 / float64(fo.res.Sent)
	}

	// Softirq work of the last frames may still run for a moment.
	time.Sleep(50 * time.Millisecond)
	logged1, accepted, err := ruleCounters(l, o.Group)
	if err != nil {
		return fail(err)
	}
	dropped1, err := dropCounter(l)
	if err != nil {
		return fail(err)
	}
	res.Logged, res.Accepted, res.Dropped = logged1-logged0, accepted, dropped1-dropped0
	if rcv.Kind == KindEBPF {
		// Its ground truth is every drop, not what the NFLOG rules logged.
		res.Logged = res.Dropped
	}
	res.LoggedRate = float64(res.Logged) / fo.res.Elapsed.Seconds()

	drops, err := waitDrained(proc.pid, 20*time.Second)
	if err != nil {
		return fail(err)
	}
	res.Drain = time.Since(floodEnd).Seconds()
	res.SockDrops = drops
	time.Sleep(o.Settle) // the last partial kernel batch (flush timeout)
	// CPU ends here: the scrapes that follow only check the counts.
	cpu1, err := procCPU(proc.pid)
	if err != nil {
		return fail(err)
	}
	rt1, err := procThreadRuntimes(proc.pid)
	if err != nil {
		return fail(err)
	}
	var exited map[int]time.Duration
	if tracer != nil {
		if exited, err = tracer.exitedRuntimes(); err != nil {
			return fail(err)
		}
	}
	cpu, threads := windowCPU(rt0, rt1, exited)
	res.CPUSeconds = cpu.Seconds()
	res.CPUThreads, res.CPUThreadsExited, res.CPUThreadsMissed = threads.counted, threads.exited, threads.missed
	res.TickCPUSeconds = (cpu1 - cpu0).Seconds()
	if meter != nil {
		bpf, runs, err := meter.stop()
		meter = nil
		if err != nil {
			return fail(err)
		}
		res.BPFSeconds, res.BPFRuns = bpf.Seconds(), runs
	}

	var final *scrape
	if rcv.exporter() {
		// Until every logged message is either counted or counted as lost,
		// or the counts stop moving.
		var last float64 = -1
		drainScrapes := 0
		for deadline := time.Now().Add(5 * time.Second); ; {
			s, err := scrapeOnce(proc.client, proc.url, proc.group)
			if err != nil {
				return fail(err)
			}
			drainScrapes++
			final = &s
			if uint64(s.Packets+s.Lost) >= res.Logged+uint64(before.Packets+before.Lost) || s.Packets+s.Lost == last || time.Now().After(deadline) {
				break
			}
			last = s.Packets + s.Lost
			time.Sleep(100 * time.Millisecond)
		}
		res.Series, res.PacketSeries = final.Series, final.PacketSeries
		// A few more scrapes at rest tell what one scrape costs (CPU and
		// allocations), so the flood's own cost can be separated from the
		// scrapes' (which a 15 s Prometheus interval makes much rarer).
		rtA, err := procRuntime(proc.pid)
		if err != nil {
			return fail(err)
		}
		const probes = 5
		var again scrape
		for i := 0; i < probes; i++ {
			if again, err = scrapeOnce(proc.client, proc.url, proc.group); err != nil {
				return fail(err)
			}
		}
		rtB, err := procRuntime(proc.pid)
		if err != nil {
			return fail(err)
		}
		res.ScrapeCPUMs = float64(rtB-rtA) / probes / 1e6
		if final.Packets > before.Packets {
			// The "before" scrape read its memstats before it encoded its
			// answer, so the interval holds one scrape more than it started.
			perScrape := (again.Mallocs - final.Mallocs) / probes
			floodMallocs := final.Mallocs - before.Mallocs - perScrape*float64(len(lat)+drainScrapes+1)
			res.MallocsPerMsg = math.Max(0, floodMallocs) / (final.Packets - before.Packets)
		}
		fs := *final
		fs.Packets -= before.Packets
		fs.Lost -= before.Lost
		final = &fs
	}
	if res.PeakRSS, err = procHWM(proc.pid); err != nil {
		return fail(err)
	}

	stopped = true
	r, err := proc.stop(final)
	if err != nil {
		return fail(err)
	}
	res.Received = r.Received
	if rcv.Kind != KindExporter {
		// Messages already logged before the flood (none in a silent lab)
		// are part of what these receivers report.
		res.Received -= min(res.Received, logged0)
	}
	if r.HasLost {
		res.Lost = r.Lost
	} else if res.Logged > res.Received {
		res.Lost = res.Logged - res.Received
	}
	if r.Mallocs > 0 && res.Received > 0 {
		res.MallocsPerMsg = float64(r.Mallocs) / float64(res.Received)
	}
	res.Unaccounted = int64(res.Logged) - int64(res.Received) - int64(res.Lost)
	if res.Logged > 0 {
		res.LossPct = 100 * float64(int64(res.Logged)-int64(res.Received)) / float64(res.Logged)
		res.CPUPerM = (res.CPUSeconds + res.BPFSeconds) / (float64(res.Logged) / 1e6)
		res.BPFPerM = res.BPFSeconds / (float64(res.Logged) / 1e6)
		res.TickCPUPerM = res.TickCPUSeconds / (float64(res.Logged) / 1e6)
		res.CPUPerMNoScrape = res.CPUPerM
		if rcv.exporter() {
			res.CPUPerMNoScrape = math.Max(0, res.CPUSeconds+res.BPFSeconds-float64(len(lat))*res.ScrapeCPUMs/1e3) / (float64(res.Logged) / 1e6)
		}
	}
	if res.Dropped > 0 {
		res.CPUPerMDrops = (res.CPUSeconds + res.BPFSeconds) / (float64(res.Dropped) / 1e6)
	}
	if scrapes {
		res.ScrapeEveryS = every.Seconds()
	}
	if len(lat) > 0 {
		res.Scrapes = len(lat)
		for _, d := range lat {
			res.ScrapeMs = append(res.ScrapeMs, float64(d)/1e6)
		}
		st := scrapeStats(lat)
		res.ScrapeMedMs, res.ScrapeP99Ms, res.ScrapeMaxMs = float64(st.p50)/1e6, float64(st.p99)/1e6, float64(st.max)/1e6
		res.ScrapesOver100 = st.over100ms
	}
	return res
}

// floodLimit caps one flood: limit, or for a paced flood twice its planned
// length plus 5 s if that is longer, at most an hour.
func floodLimit(limit time.Duration, p Point) time.Duration {
	if p.Rate > 0 {
		planned := 2 * float64(p.Packets) / p.Rate * float64(time.Second)
		if d := time.Duration(min(planned, float64(time.Hour))) + 5*time.Second; d > limit {
			return d
		}
	}
	return limit
}
