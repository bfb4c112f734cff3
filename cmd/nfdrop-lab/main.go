// Command nfdrop-lab recreates the late-teardown deny-log problem (a deny log
// full of the last packets of connections the firewall had already
// forgotten) on any Linux machine with network namespaces: a client and a server
// namespace joined by a veth pair, the deploy/firewall ruleset on the server,
// nfdrop_exporter inside the server namespace, and traffic of every kind the
// exporter classifies. It needs root and removes everything on exit.
package main

import (
	"context"
	"errors"
	"fmt"
	"github.com/nfdrop/nfdrop_exporter/cmd/internal/bench"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/alecthomas/kingpin/v2"

	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop-lab/lab"
)

func main() {
	app := kingpin.New("nfdrop-lab", "Network-namespace lab for nfdrop_exporter: recreates late TCP teardown drops and scans against the deploy/firewall ruleset.")
	app.HelpFlag.Short('h')

	demo := app.Command("demo", "Build the lab, run nfdrop_exporter in it, send every kind of dropped traffic, print what the exporter counted, remove the lab.")
	exporter := demo.Flag("exporter", "nfdrop_exporter binary (default: next to nfdrop-lab, else $PATH).").String()
	ruleset := demo.Flag("ruleset", "Firewall ruleset from deploy/firewall to apply: iptables (iptables.rules + ip6tables.rules) or nftables (nftables.nft).").Default("iptables").Enum("iptables", "nftables")
	fwDir := demo.Flag("firewall.dir", "Directory with the rulesets (default: deploy/firewall of the source tree, found from the working directory or the executable).").String()
	prefix := demo.Flag("prefix", "Namespace name prefix: the lab is <prefix>-srv and <prefix>-cli.").Default("nfdrop-lab").String()
	visitors := demo.Flag("visitors", "Late-teardown packets from distinct visitor ports per family (the deny-log noise).").Default("200").Int()
	realTCP := demo.Flag("real-tcp", "Also run real TCP connections to 443 with late teardown (takes ~25 s).").Default("true").Bool()
	reasons := demo.Flag("reasons", "Finally turn on conntrack's INVALID logging in the server namespace and send packets conntrack rejects for each reason; print the reasons beside the classes.").Default("true").Bool()
	wait := demo.Flag("wait", "Keep the lab and the exporter running after the summary until Ctrl-C, to look at /metrics yourself.").Bool()
	verbose := demo.Flag("verbose", "Print every scenario step and the exporter's log.").Short('v').Bool()

	bench := app.Command("bench", "Flood the lab and measure nfdrop_exporter, a minimal reference receiver (the floor any NFLOG reader pays), Debian's ulogd2 and the exporter's eBPF drop source side by side on the same floods: logged, received and lost messages, CPU per million messages (and per million drops, the BPF program's run time included), peak RSS, the longest gap between receive calls, scrape latency and series count (needs root, two CPUs, gcc for the reference, ulogd2 + ulogd2-pcap for the ulogd2 column, a kernel with BTF for the eBPF column).")
	bExporter := bench.Flag("exporter", "nfdrop_exporter binary (default: next to nfdrop-lab, else $PATH).").String()
	bUlogd := bench.Flag("ulogd", "ulogd binary; empty to bench the exporter alone.").Default("/usr/sbin/ulogd").String()
	bUlogdPlugins := bench.Flag("ulogd.plugin-dir", "Directory with ulogd's NFLOG, BASE and PCAP plugins.").Default("/usr/lib/x86_64-linux-gnu/ulogd").String()
	bEBPF := bench.Flag("ebpf", "Also measure the exporter reading the eBPF drop source alone (--no-nflog.enable --ebpf.enable) on the same floods; --no-ebpf leaves it out.").Default("true").Bool()
	bUlogdDefaults := bench.Flag("ulogd.debian-defaults", "Run ulogd2 with Debian's NFLOG defaults instead of the exporter's group settings (32 MiB buffer, qthreshold 1000, 10 ms flush).").Bool()
	bReference := bench.Flag("reference", "Bench the reference receiver (C, built with --reference.cc): it binds the group with the exporter's default settings and only counts messages and sequence gaps.").Default("true").Bool()
	bCC := bench.Flag("reference.cc", "C compiler for the reference receiver.").Default("gcc").String()
	bQuick := bench.Flag("quick", "--points=quick with one repetition.").Bool()
	bReps := bench.Flag("reps", "Repetitions per point and receiver (medians).").Default("3").Int()
	bSet := bench.Flag("points", "Point set: full (six points from 50k pps to max x8 rules), quick (three short ones) or floor (150k pps x8 rules and 50k pps, 3M+ messages each, scraped every second and unscraped, for the exporter against the reference receiver).").Default("full").Enum("full", "quick", "floor")
	bPoints := bench.Flag("point", "Load RATE:RULES:PACKETS[:MIX][:noscrape], repeatable, instead of a set: RATE in packets/s ('max', '200k'), RULES identical NFLOG rules (messages per packet), PACKETS ('3M', '750k'), MIX teardown or random, noscrape to leave the exporter unscraped during the flood.").Strings()
	bScrapeSet := false
	bScrape := bench.Flag("scrape-interval", "Scrape interval of the exporter during the flood (default: 1s for the floor points, else 2s); a value given here applies to every point.").Default("2s").IsSetByUser(&bScrapeSet).Duration()
	bTrace := bench.Flag("recv-trace", "Trace the receivers' receive calls with BPF (longest gap between them; CPU time of threads that exit during a run).").Default("true").Bool()
	bFwDir := bench.Flag("firewall.dir", "Directory with iptables.rules and ip6tables.rules (default: deploy/firewall, found as for demo).").String()
	bExpFlags := bench.Flag("exporter.flag", "Extra flag for nfdrop_exporter, repeatable (e.g. --exporter.flag=--nflog.socket.receive-buffer=4MiB).").Strings()
	bSenderCPU := bench.Flag("sender-cpu", "CPU of the flood generator (and of this process).").Default("0").Int()
	bReceiverCPU := bench.Flag("receiver-cpu", "CPU the receivers are pinned to.").Default("1").Int()
	bFormat := bench.Flag("format", "Output: markdown tables or the full JSON report.").Default("table").Enum("table", "json")
	bPrefix := bench.Flag("prefix", "Namespace name prefix of the labs (default nfdG-b<pid>).").String()
	bPerf := bench.Flag("perf-dir", "Record a perf profile (perf record -g) of every exporter run into this directory.").String()
	bExtraNft := bench.Flag("extra-nft", "Also load this nftables file into the receiver's namespace, for example a large ruleset whose chains do not hook: every scrape reads it.").ExistingFile()

	eb := app.Command("explain-bench", "Measure nfdrop_exporter explain on a large kern.log built from real kernel LOG lines (source addresses and ports varied), next to mawk '/DPT=/ {n++}' on the same file: lines/s, MB/s, peak RSS, load average.")
	ebExporter := eb.Flag("exporter", "nfdrop_exporter binary (default: next to nfdrop-lab, else $PATH).").String()
	ebFile := eb.Flag("file", "The file to build, or reuse when it is at least --size.").Default("/tmp/nfdrop-explain-bench.log").String()
	ebSize := eb.Flag("size", "Size of the file.").Default("600MB").Bytes()
	ebSeeds := eb.Flag("seed", "File of real kernel LOG lines to build from, repeatable (default: cmd/nfdrop_exporter/internal/explain/testdata/lab-*.log).").Strings()
	ebReps := eb.Flag("reps", "Runs of each program.").Default("3").Int()

	cmd := kingpin.MustParse(app.Parse(os.Args[1:]))
	switch cmd {
	case "demo":
		err := runDemo(demoConfig{
			exporter: *exporter, ruleset: lab.Ruleset(*ruleset), fwDir: *fwDir, prefix: *prefix,
			visitors: *visitors, realTCP: *realTCP, wait: *wait, verbose: *verbose, reasons: *reasons,
		})
		if err != nil {
			fmt.Fprintln(os.Stderr, "nfdrop-lab:", err)
			os.Exit(1)
		}
	case "explain-bench":
		seeds := *ebSeeds
		if len(seeds) == 0 {
			seeds = defaultSeeds()
		}
		if err := runExplainBench(explainBenchConfig{exporter: *ebExporter, file: *ebFile, size: int64(*ebSize), seeds: seeds, reps: *ebReps}); err != nil {
			fmt.Fprintln(os.Stderr, "nfdrop-lab:", err)
			os.Exit(1)
		}
	case "bench":
		err := runBench(benchConfig{
			exporter: *bExporter, ulogd: *bUlogd, ulogdPlugins: *bUlogdPlugins, ulogdDefaults: *bUlogdDefaults,
			reference: *bReference, ebpf: *bEBPF, cc: *bCC, quick: *bQuick, reps: *bReps, set: *bSet, points: *bPoints,
			scrapeEvery: *bScrape, scrapeSet: bScrapeSet, recvTrace: *bTrace, fwDir: *bFwDir, expFlags: *bExpFlags,
			senderCPU: *bSenderCPU, receiverCPU: *bReceiverCPU, asJSON: *bFormat == "json", perfDir: *bPerf, extraNft: *bExtraNft, prefix: *bPrefix,
		})
		if err != nil {
			fmt.Fprintln(os.Stderr, "nfdrop-lab:", err)
			os.Exit(1)
		}
	}
}

type demoConfig struct {
	reasons                 bool
	exporter, fwDir, prefix string
	ruleset                 lab.Ruleset
	visitors                int
	realTCP, wait, verbose  bool
}

const (
	group      = "0"
	listenAddr = "127.0.0.1:9786"
)

func runDemo(cfg demoConfig) error {
	if os.Geteuid() != 0 {
		return errors.New("the lab needs root (it creates network namespaces and firewall rules): run it with sudo")
	}
	if cfg.visitors < 0 || cfg.visitors > 20000 {
		return fmt.Errorf("--visitors %d out of range 0..20000", cfg.visitors)
	}
	bin, err := findExporter(cfg.exporter)
	if err != nil {
		return err
	}
	dir, err := findFirewallDir(cfg.fwDir)
	if err != nil {
		return err
	}

	fmt.Printf("== creating lab: namespaces %s-srv (server %s, %s) and %s-cli (client %s, %s)\n",
		cfg.prefix, lab.ServerIPv4, lab.ServerIPv6, cfg.prefix, lab.ClientIPv4, lab.ClientIPv6)
	l, err := lab.New(cfg.prefix)
	if err != nil {
		return err
	}
	defer func() {
		if err := l.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "nfdrop-lab: cleanup:", err)
		} else {
			fmt.Println("== lab removed")
		}
	}()

	// Ctrl-C or SIGTERM: remove the namespaces (and with them the
	// exporter, rules and connections) before exiting, from wherever the
	// demo is at that moment.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		s, ok := <-sigs
		if !ok {
			return
		}
		fmt.Fprintf(os.Stderr, "\nnfdrop-lab: %v: removing the lab\n", s)
		cancel()
		if err := l.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "nfdrop-lab: cleanup:", err)
		}
		os.Exit(130)
	}()

	fmt.Printf("== applying the %s ruleset from %s in the server namespace\n", cfg.ruleset, dir)
	if err := l.Apply(cfg.ruleset, dir); err != nil {
		return err
	}
	if err := l.PrepareTCP(); err != nil {
		return err
	}

	var logw io.Writer = io.Discard
	if cfg.verbose {
		logw = prefixWriter{os.Stderr, "exporter | "}
	}
	// The demo sends its crafted "visitors" in a burst far above the default
	// conntrack lookup budget (100/s); raise it so they get evidence instead
	// of "skipped".
	args := []string{"--nflog.group=" + group, "--web.listen-address=" + listenAddr, "--conntrack.lookups-per-second=5000"}
	fmt.Printf("== starting %s %s inside %s\n", bin, strings.Join(args, " "), l.Server)
	exp, err := l.Start(l.Server, logw, logw, bin, args...)
	if err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- exp.Wait() }()
	client := lab.HTTPClient(l.Server, 2*time.Second)
	url := "http://" + listenAddr + "/metrics"
	if err := waitUp(ctx, client, url, exited); err != nil {
		return err
	}

	scenarios := []lab.Scenario{lab.Crafted(false), lab.Crafted(true)}
	if cfg.visitors > 0 {
		scenarios = append(scenarios, lab.Visitors(false, cfg.visitors), lab.Visitors(true, cfg.visitors))
	}
	if cfg.realTCP {
		scenarios = append(scenarios, lab.RealTeardown(false, 443), lab.RealTeardown(true, 443))
	}
	var progress func(string)
	if cfg.verbose {
		progress = func(s string) { fmt.Println("   ", s) }
	}
	before, err := l.RuleCounter(0)
	if err != nil {
		return err
	}
	for _, s := range scenarios {
		fmt.Printf("== scenario %-18s %s\n", s.Name, describe(s))
		if err := l.RunScenario(ctx, s, 2000, 2*time.Second, progress); err != nil {
			return err
		}
		after, err := l.RuleCounter(0)
		if err != nil {
			return err
		}
		// Real FIN/ACK retransmissions can still trickle into the next
		// scenario's count; the totals below are exact.
		fmt.Printf("   %d packets reached the log rule\n", after-before)
		before = after
	}

	fmt.Println("== waiting for the kernel to flush the last NFLOG batch")
	sc, counter, err := settle(ctx, l, client, url)
	if err != nil {
		return err
	}
	// Teardown evidence is decided after the exporter's conntrack hold
	// (--conntrack.hold, 2s), and the summary's headline rests on it: wait the
	// hold out and take the one scrape everything below is printed from.
	if sc["nfdrop_teardown_evidence_total"] != nil {
		fmt.Println("== waiting for conntrack's evidence on the last teardown drops")
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(3 * time.Second):
		}
		if sc, counter, err = settle(ctx, l, client, url); err != nil {
			return err
		}
	}
	fmt.Println()
	lab.WriteSummary(os.Stdout, sc, group, counter)
	if sc["nfdrop_teardown_evidence_total"] != nil {
		lab.WriteEvidence(os.Stdout, sc, group)
	}
	fmt.Println()
	check(sc, scenarios)
	if cfg.reasons {
		if err := demoReasons(ctx, l, client, url, group, progress); err != nil {
			return err
		}
	}
	if cfg.wait {
		fmt.Printf("\nThe lab keeps running; in another shell try:\n  ip netns exec %s curl -s http://%s/metrics | grep ^nfdrop_\n  ip netns exec %s iptables -nvxL INPUT   (or: nft list ruleset)\nPress Ctrl-C to remove it.\n", l.Server, listenAddr, l.Server)
		select {
		case <-ctx.Done():
		case err := <-exited:
			return fmt.Errorf("nfdrop_exporter exited: %v", err)
		}
	}
	return nil
}

func describe(s lab.Scenario) string {
	switch {
	case len(s.TCP) > 0:
		var rs []string
		for _, r := range s.TCP {
			rs = append(rs, string(r.Recipe))
		}
		return "real TCP to :443: " + strings.Join(rs, ", ")
	case strings.HasPrefix(s.Name, "visitors"):
		return fmt.Sprintf("%d late FIN/ACK and RST from distinct visitors to 443/80", s.Packets())
	}
	return fmt.Sprintf("%d crafted packets of every class, flag combination and port rule", s.Packets())
}

// waitUp waits until the exporter reports its group bound.
func waitUp(ctx context.Context, client *http.Client, url string, exited <-chan error) error {
	var lastErr error
	for i := 0; i < 100; i++ {
		select {
		case err := <-exited:
			return fmt.Errorf("nfdrop_exporter exited: %v (run with -v to see its log)", err)
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		sc, err := lab.FetchMetrics(ctx, client, url)
		if err == nil {
			if up, ok := sc.Value("nfdrop_up", map[string]string{"group": group}); ok && up == 1 {
				return nil
			}
			err = fmt.Errorf("nfdrop_up{group=%q} is not 1", group)
		}
		lastErr = err
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("nfdrop_exporter not ready after 10s: %v", lastErr)
}

// settle polls until sum(nfdrop_packets_total)+lost equals the log rule
// counter and stays so (late retransmissions may still be on their way),
// bounded to 15 s.
func settle(ctx context.Context, l *lab.Lab, client *http.Client, url string) (lab.Scrape, uint64, error) {
	var sc lab.Scrape
	var counter uint64
	stable := 0
	for i := 0; i < 75 && stable < 5; i++ {
		var err error
		if counter, err = l.RuleCounter(0); err != nil {
			return nil, 0, err
		}
		if sc, err = lab.FetchMetrics(ctx, client, url); err != nil {
			return nil, 0, err
		}
		lost, _ := sc.Value("nfdrop_messages_lost_total", map[string]string{"group": group})
		if lab.Sum(sc.Packets(group))+lost == float64(counter) {
			stable++
		} else {
			stable = 0
		}
		time.Sleep(200 * time.Millisecond)
	}
	return sc, counter, nil
}

// check compares the counted series with the scenarios' hand-written
// expectations: exact for crafted packets and the late RST,
// at least one more for real FIN/ACK recipes whose retransmission count
// depends on timing.
func check(sc lab.Scrape, scenarios []lab.Scenario) {
	exact := map[lab.Series]float64{}
	atLeast := map[lab.Series]float64{}
	for _, s := range scenarios {
		for k, v := range s.Expected(group, "denied") {
			exact[k] += v
		}
		for _, r := range s.TCP {
			if r.Exact < 0 {
				w := r.Want
				w.Group, w.Prefix = group, "denied"
				atLeast[w]++
			}
		}
	}
	got := sc.Packets(group)
	var bad []string
	for k, v := range got {
		if n, ok := atLeast[k]; ok {
			if v < exact[k]+n {
				bad = append(bad, fmt.Sprintf("%s = %v, want at least %v", k, v, exact[k]+n))
			}
			continue
		}
		if v != exact[k] {
			bad = append(bad, fmt.Sprintf("%s = %v, want %v", k, v, exact[k]))
		}
	}
	for k, v := range exact {
		if _, ok := got[k]; !ok && v != 0 {
			bad = append(bad, fmt.Sprintf("%s missing, want %v", k, v))
		}
	}
	if len(bad) == 0 {
		fmt.Printf("Check: all %d series match the hand-written expectations.\n", len(got))
		return
	}
	fmt.Printf("Check: %d series differ from the hand-written expectations:\n  %s\n", len(bad), strings.Join(bad, "\n  "))
}

// findExporter resolves --exporter: explicit path, else nfdrop_exporter
// next to this executable, else $PATH.
func findExporter(p string) (string, error) {
	if p != "" {
		return filepath.Abs(p)
	}
	if self, err := os.Executable(); err == nil {
		sib := filepath.Join(filepath.Dir(self), "nfdrop_exporter")
		if st, err := os.Stat(sib); err == nil && !st.IsDir() {
			return sib, nil
		}
	}
	if p, err := exec.LookPath("nfdrop_exporter"); err == nil {
		return filepath.Abs(p)
	}
	return "", errors.New("nfdrop_exporter not found next to nfdrop-lab or in $PATH: build both with `go build -o bin/ ./cmd/...` or pass --exporter")
}

// findFirewallDir resolves --firewall.dir: explicit, else deploy/firewall
// under the working directory or above the executable (bin/ of a checkout).
func findFirewallDir(p string) (string, error) {
	cands := []string{p}
	if p == "" {
		cands = []string{"deploy/firewall"}
		if self, err := os.Executable(); err == nil {
			d := filepath.Dir(self)
			cands = append(cands, filepath.Join(d, "deploy", "firewall"), filepath.Join(d, "..", "deploy", "firewall"))
		}
	}
	for _, c := range cands {
		if st, err := os.Stat(filepath.Join(c, "iptables.rules")); err == nil && !st.IsDir() {
			return filepath.Abs(c)
		}
	}
	return "", fmt.Errorf("no firewall rulesets (iptables.rules, ip6tables.rules, nftables.nft) in %s: run from the source tree or pass --firewall.dir", strings.Join(cands, ", "))
}

// prefixWriter prefixes each written chunk (the exporter logs one line per
// write).
type prefixWriter struct {
	w      io.Writer
	prefix string
}

func (p prefixWriter) Write(b []byte) (int, error) {
	if _, err := io.WriteString(p.w, p.prefix+string(b)); err != nil {
		return 0, err
	}
	return len(b), nil
}

type benchConfig struct {
	exporter, ulogd, ulogdPlugins  string
	ulogdDefaults, reference, ebpf bool
	cc                             string
	quick                          bool
	reps                           int
	set                            string
	points                         []string
	scrapeEvery                    time.Duration
	scrapeSet, recvTrace           bool
	fwDir                          string
	expFlags                       []string
	senderCPU, receiverCPU         int
	asJSON                         bool
	perfDir, prefix, extraNft      string
}

func runBench(c benchConfig) error {
	if os.Geteuid() != 0 {
		return errors.New("the bench needs root (network namespaces, firewall rules, NFLOG): run it with sudo")
	}
	bin, err := findExporter(c.exporter)
	if err != nil {
		return err
	}
	dir, err := findFirewallDir(c.fwDir)
	if err != nil {
		return err
	}
	o := bench.Options{
		Points:         bench.PointSets()[c.set](),
		Reps:           c.reps,
		RulesDir:       dir,
		SenderCPU:      c.senderCPU,
		ReceiverCPU:    c.receiverCPU,
		UlogdPluginDir: c.ulogdPlugins,
		UlogdDefaults:  c.ulogdDefaults,
		CC:             c.cc,
		NoRecvTrace:    !c.recvTrace,
		JSON:           c.asJSON,
		PerfDir:        c.perfDir,
		ExtraNft:       c.extraNft,
		Prefix:         c.prefix,
		Progress:       os.Stderr,
	}
	// The defaults, less the ones switched off; --exporter.flag applies to
	// the exporter in both roles.
	var rcvs []bench.Receiver
	for _, r := range bench.DefaultReceivers(bin) {
		switch {
		case r.Kind == bench.KindUlogd && c.ulogd == "", r.Kind == bench.KindEBPF && !c.ebpf, r.Kind == bench.KindReference && !c.reference:
			continue
		case r.Kind == bench.KindUlogd:
			r.Path = c.ulogd
		case r.Kind == bench.KindExporter, r.Kind == bench.KindEBPF:
			r.Args = c.expFlags
		}
		rcvs = append(rcvs, r)
	}
	o.Receivers = rcvs
	if c.quick {
		o.Points, o.Reps = bench.QuickPoints(), 1
	}
	if len(c.points) > 0 {
		o.Points = nil
		for _, s := range c.points {
			p, err := bench.ParsePoint(s)
			if err != nil {
				return err
			}
			o.Points = append(o.Points, p)
		}
	}
	if c.scrapeSet {
		if c.scrapeEvery <= 0 {
			return fmt.Errorf("--scrape-interval=%s: want a positive interval (a point with :noscrape is not scraped)", c.scrapeEvery)
		}
		o.ScrapeEvery = c.scrapeEvery
		for i := range o.Points {
			o.Points[i].ScrapeEvery = 0
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	_, err = bench.Run(ctx, o, os.Stdout)
	return err
}

// demoReasons makes conntrack log its INVALID packets to group 0 (sysctls
// inside the server namespace only), sends the reasons scenario for both
// families and prints the drops by reason and class.
func demoReasons(ctx context.Context, l *lab.Lab, client *http.Client, url, group string, progress func(string)) error {
	fmt.Printf("\n== conntrack reasons: %s inside %s\n", strings.Join(lab.ConntrackLogSysctls, " "), l.Server)
	if err := l.EnableConntrackLog(); err != nil {
		return err
	}
	for _, v6 := range []bool{false, true} {
		fam := map[bool]string{false: "IPv4", true: "IPv6"}[v6]
		fmt.Printf("== scenario reasons-%s: %d packets conntrack rejects or ignores\n", strings.ToLower(fam), int(sumValues(lab.ExpectedReasons(v6))))
		var each func(lab.ReasonSend)
		if progress != nil {
			each = func(s lab.ReasonSend) {
				progress(fmt.Sprintf("%-48s x%-2d -> class=%s reason=%s", s.Desc, s.Count, s.Class, s.Reason))
			}
		}
		if err := l.RunReasons(ctx, v6, each); err != nil {
			return err
		}
	}
	// Drops wait for their reason at most --conntrack.reasons.window (1s).
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(1500 * time.Millisecond):
	}
	sc, err := lab.FetchMetrics(ctx, client, url)
	if err != nil {
		return err
	}
	lab.WriteReasons(os.Stdout, sc, group)
	return nil
}

func sumValues[K comparable](m map[K]float64) float64 {
	var s float64
	for _, v := range m {
		s += v
	}
	return s
}
