// Command nfdrop_exporter exposes what the packets dropped by a Linux firewall
// are (late TCP teardown, handshakes, probes, other), read from NFLOG groups.
package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/alecthomas/units"
	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop_exporter/internal/landing"
	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop_exporter/internal/summary"
	"github.com/nfdrop/nfdrop_exporter/collector"
	"github.com/nfdrop/nfdrop_exporter/collector/classify"
	"github.com/nfdrop/nfdrop_exporter/collector/ebpf"
	"github.com/nfdrop/nfdrop_exporter/collector/source"
	"github.com/nfdrop/nfdrop_exporter/collector/topsources"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/promslog"
	promslogflag "github.com/prometheus/common/promslog/flag"
	"github.com/prometheus/common/version"
	"github.com/prometheus/exporter-toolkit/web"
	"github.com/prometheus/exporter-toolkit/web/kingpinflag"
)

const name = "nfdrop_exporter"

func main() { os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) }

// flags holds every command-line setting of the exporter.
type flags struct {
	groups                 []string
	copyRange              uint32
	queueThreshold         uint32
	flushTimeout           time.Duration
	batchSize              units.Base2Bytes
	receiveBuffer          units.Base2Bytes
	replayFile             string
	cpuProfile             string
	ports                  string
	maxPrefixes            int
	telemetryPath          string
	disableExporterMetrics bool
	maxRequests            int
	landingSources         bool
	web                    *web.FlagConfig
	log                    *promslog.Config
	explain                explainFlags
	doctor                 doctorFlags
	conntrack              *conntrackFlags
	reasons                *reasonsFlags
	audit                  *auditFlags
	ebpf                   *ebpfFlags
}

// newApp defines the commands and flags; versionText is what --version prints.
func newApp(f *flags, versionText string) (*kingpin.Application, *kingpin.CmdClause, *kingpin.CmdClause) {
	app := kingpin.New(name, "Prometheus exporter that classifies the packets a Linux firewall drops (read from NFLOG groups).")
	app.Version(versionText)
	app.HelpFlag.Short('h')
	// The serving flags belong to serve, the default command, so that
	// explain neither lists nor accepts them; "nfdrop_exporter --flag ..."
	// without a command still serves (see defaultCommand).
	serve := app.Command("serve", "Read NFLOG groups and serve metrics. The default command: its flags may be given without it. \""+name+" help\" lists the other commands (explain reads recorded drops offline).").Default()
	serve.Flag("nflog.group", "NFLOG group to read (iptables --nflog-group, nft 'log group'); repeat for several.").Default("0").StringsVar(&f.groups)
	serve.Flag("nflog.copy-range", "Bytes of each packet the kernel copies to the exporter; enough for IPv6 with extension headers and TCP.").Default("256").Uint32Var(&f.copyRange)
	serve.Flag("nflog.queue-threshold", "Messages the kernel batches before sending (qthreshold); 0 keeps the kernel default of 100.").Default("1000").Uint32Var(&f.queueThreshold)
	serve.Flag("nflog.flush-timeout", "Longest a logged packet waits in a kernel batch (10ms steps).").Default("10ms").DurationVar(&f.flushTimeout)
	serve.Flag("nflog.batch-size", "Kernel batch buffer per group (nlbufsiz, at most 128KiB); larger batches cost less CPU per packet.").Default("128KiB").BytesVar(&f.batchSize)
	serve.Flag("nflog.socket.receive-buffer", "Socket receive buffer (SO_RCVBUFFORCE): how long a burst the kernel can hold while the exporter is busy.").Default("32MiB").BytesVar(&f.receiveBuffer)
	serve.Flag("nflog.replay-file", "Replay an NFLOG pcap (tcpdump -i nflog:N -w FILE) instead of binding; for tests.").Hidden().StringVar(&f.replayFile)
	serve.Flag("debug.cpu-profile", "Write a CPU profile of the whole run to this file at exit; for the profile-guided build (cmd/nfdrop_exporter/default.pgo).").Hidden().StringVar(&f.cpuProfile)
	serve.Flag("collector.ports", "Service ports that are label values by number; other ports become system/user/dynamic.").Default(classify.DefaultPorts).StringVar(&f.ports)
	serve.Flag("collector.max-prefixes", "Most distinct rule prefixes kept as label values; later ones become (other).").Default(fmt.Sprint(classify.DefaultMaxPrefixes)).IntVar(&f.maxPrefixes)
	serve.Flag("web.telemetry-path", "Path under which to expose metrics.").Default("/metrics").StringVar(&f.telemetryPath)
	serve.Flag("web.disable-exporter-metrics", "Exclude go_*, process_* and promhttp_* metrics about the exporter itself.").BoolVar(&f.disableExporterMetrics)
	serve.Flag("web.landing-page.sources", "Show the heaviest sources of non-teardown drops on the landing page and in "+summary.Path+" (a fixed-size sketch per group; addresses are never metric labels). --no-web.landing-page.sources turns the view and its per-packet cost off.").Default("true").BoolVar(&f.landingSources)
	serve.Flag("web.max-requests", "Maximum number of parallel scrape requests; 0 disables the limit.").Default("40").IntVar(&f.maxRequests)
	f.conntrack = addConntrackFlags(serve)
	f.reasons = addReasonsFlags(serve)
	f.audit = addAuditFlags(serve)
	f.ebpf = addEBPFFlags(serve)
	f.web = kingpinflag.AddFlags(serve, ":9786")
	f.log = &promslog.Config{Level: promslog.NewLevel(), Format: promslog.NewFormat()}
	serve.Flag(promslogflag.LevelFlagName, promslogflag.LevelFlagHelp).Default("info").HintOptions(promslog.LevelFlagOptions...).SetValue(f.log.Level)
	serve.Flag(promslogflag.FormatFlagName, promslogflag.FormatFlagHelp).Default("logfmt").HintOptions(promslog.FormatFlagOptions...).SetValue(f.log.Format)
	explain := addExplainCommand(app, &f.explain)
	addDoctorCommand(app, &f.doctor)
	return app, serve, explain
}

// defaultCommand puts "serve" in front of arguments that name no command,
// so that the serving flags work without it. kingpin only reads flags of the
// default command once it is on the line.
func defaultCommand(args []string) []string {
	if len(args) == 0 {
		return args
	}
	if len(args) == 1 && (args[0] == "--help" || args[0] == "-h") {
		// Operators look for the serving flags under --help: show them once
		// (--help-long repeats the default command's flags under it); the
		// usage names the other commands.
		return []string{"serve", "--help"}
	}
	switch args[0] {
	case "serve", "explain", "doctor", "help", "--help", "-h", "--help-long", "--help-man", "--version",
		"--completion-bash", "--completion-script-bash", "--completion-script-zsh":
		return args
	}
	return append([]string{"serve"}, args...)
}

// exitRequest carries kingpin's exit code (after --help or --version) out of Parse.
type exitRequest int

func run(args []string, stdin *os.File, stdout, stderr *os.File) (code int) {
	var f flags
	versionText := version.Print(name)
	if slices.Contains(args, "--help-man") {
		// The man page's .TH line takes one word of version, not the
		// multi-line --version text.
		versionText = cmp.Or(version.Version, "unknown")
	}
	app, serve, explain := newApp(&f, versionText)
	app.Writer(stdout).UsageWriter(stdout).ErrorWriter(stderr)
	app.Terminate(func(c int) { panic(exitRequest(c)) })
	defer func() {
		if r := recover(); r != nil {
			c, ok := r.(exitRequest)
			if !ok {
				panic(r)
			}
			code = int(c)
		}
	}()
	args = defaultCommand(args)
	cmd, err := app.Parse(args)
	if err != nil {
		if len(args) > 0 && args[0] == "explain" {
			if strings.Contains(err.Error(), "unknown") {
				fmt.Fprintf(stderr, "%s explain: %v; explain takes only --format, --ports and --max-prefixes (see %s explain --help)\n", name, err, name)
			} else {
				fmt.Fprintf(stderr, "%s explain: %v; see %s explain --help\n", name, err, name)
			}
			return 2
		}
		fmt.Fprintf(stderr, "%s: %v; see --help\n", name, err)
		return 2
	}
	switch cmd {
	case explain.FullCommand():
		return runExplain(&f.explain, stdin, stdout, stderr)
	case "doctor":
		return runDoctor(&f.doctor, stdout, stderr)
	case serve.FullCommand():
	}
	cfg, err := f.validate()
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 2
	}
	logger := promslog.New(f.log)
	if f.cpuProfile != "" {
		stopProfile, err := startCPUProfile(f.cpuProfile)
		if err != nil {
			fmt.Fprintf(stderr, "%s: --debug.cpu-profile: %v\n", name, err)
			return 2
		}
		defer stopProfile()
	}
	return serveMetrics(&f, cfg, logger)
}

// startCPUProfile profiles the process until the returned function runs.
// It exists for the profile-guided build: default.pgo next to main.go is a
// merge of such profiles taken under the lab bench's floods
// (cmd/nfdrop-lab/README.md, Reproduce), so that the compiler inlines and devirtualizes the calls of
// the real receive path.
func startCPUProfile(path string) (func(), error) {
	out, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(out); err != nil {
		out.Close()
		return nil, err
	}
	return func() {
		pprof.StopCPUProfile()
		out.Close()
	}, nil
}

// validate checks what the kernel would otherwise reject late or silently,
// and builds the collector's configuration.
func (f *flags) validate() (collector.Config, error) {
	cfg := collector.Config{MaxPrefixes: f.maxPrefixes, KernelSettings: f.replayFile == ""}
	ports, err := classify.ParsePorts(f.ports)
	if err != nil {
		return cfg, fmt.Errorf("--collector.ports: %v", err)
	}
	cfg.Ports = ports
	switch {
	case f.copyRange < 64 || f.copyRange > 65531:
		return cfg, fmt.Errorf("--nflog.copy-range=%d: want 64 to 65531 bytes, so that the IP and TCP headers fit", f.copyRange)
	case f.flushTimeout < 0 || f.flushTimeout > time.Hour:
		return cfg, fmt.Errorf("--nflog.flush-timeout=%s: want 0 to 1h", f.flushTimeout)
	case f.batchSize != 0 && (f.batchSize < 4*units.KiB || f.batchSize > 128*units.KiB):
		return cfg, fmt.Errorf("--nflog.batch-size=%s: the kernel accepts 4KiB to 128KiB (or 0 for its default)", f.batchSize)
	case f.receiveBuffer < 0 || f.receiveBuffer > 1*units.GiB:
		return cfg, fmt.Errorf("--nflog.socket.receive-buffer=%s: want 0 to 1GiB", f.receiveBuffer)
	}
	if err := checkTelemetryPath(f.telemetryPath); err != nil {
		return cfg, err
	}
	if err := checkListenAddresses(f.web); err != nil {
		return cfg, err
	}
	if err := f.audit.validate(); err != nil {
		return cfg, err
	}
	if err := classify.CheckMaxPrefixes("--collector.max-prefixes", f.maxPrefixes); err != nil {
		return cfg, err
	}
	replay := f.replayFile != ""
	if err := f.ebpf.validate(replay); err != nil {
		return cfg, err
	}
	if f.ebpf.nflog {
		if cfg.Groups, err = classify.ParseGroups("--nflog.group", f.groups); err != nil {
			return cfg, err
		}
	} else if f.reasons.bind {
		return cfg, fmt.Errorf("--conntrack.reasons.bind binds NFLOG group 0: it needs --nflog.enable")
	}
	// After the NFLOG groups: --conntrack.reasons.bind may add group 0.
	if cfg.Reasons, err = f.reasons.config(&cfg.Groups); err != nil {
		return cfg, err
	}
	if f.ebpf.enable {
		cfg.Groups = append(cfg.Groups, classify.GroupEBPF)
	}
	cfg.Conntrack = f.conntrack.config(replay) // collector.New validates it
	cfg.RuleAudit = f.audit.ruleAuditConfig(replay)
	cfg.ConntrackStats = f.audit.conntrackStats(replay)
	if f.landingSources {
		cfg.SourcesCapacity = topsources.DefaultCapacity
	}
	return cfg, nil
}

// nflogGroups are the NFLOG group numbers among groups.
func nflogGroups(groups []classify.Group) []uint16 {
	var out []uint16
	for _, g := range groups {
		if n, ok := g.NFLOG(); ok {
			out = append(out, n)
		}
	}
	return out
}

func serveMetrics(f *flags, cfg collector.Config, logger *slog.Logger) int {
	logger.Info("Starting "+name, "version", version.Info())
	logger.Info("Build context", "build_context", version.BuildContext())
	if os.Geteuid() == 0 {
		if f.ebpf.enable {
			logger.Warn("nfdrop_exporter is running as root; with --ebpf.enable it only needs CAP_NET_ADMIN, CAP_BPF and CAP_PERFMON: run it as an unprivileged user holding those (systemd: DynamicUser=yes and AmbientCapabilities=, as the shipped nfdrop_exporter-ebpf.service does)")
		} else {
			logger.Warn("nfdrop_exporter is running as root; it only needs CAP_NET_ADMIN: run it as an unprivileged user holding that capability (systemd: DynamicUser=yes and AmbientCapabilities=CAP_NET_ADMIN, as the shipped nfdrop_exporter.service does)")
		}
	}
	// Load the eBPF program and bind every group before serving, so that a
	// misconfiguration or a missing kernel feature exits at once with the
	// reason instead of serving nfdrop_up 0 forever.
	prog, err := f.ebpf.load()
	if err != nil {
		logger.Error(err.Error())
		return 2
	}
	var sources []source.Source
	if prog != nil {
		cfg.EBPF = prog
		sources = append(sources, ebpf.NewSource(prog))
		defer prog.Close()
	}
	coll, err := collector.New(cfg, logger)
	if err != nil {
		logger.Error("invalid flag: " + err.Error())
		return 2
	}
	if groups := nflogGroups(cfg.Groups); len(groups) > 0 {
		src, err := source.New(source.Config{
			Groups:         groups,
			ReplayFile:     f.replayFile,
			CopyRange:      f.copyRange,
			QueueThreshold: f.queueThreshold,
			FlushTimeout:   f.flushTimeout,
			BatchSize:      uint32(f.batchSize),
			ReceiveBuffer:  int(f.receiveBuffer),
			ProbeConntrackAttrs: &source.ConntrackAttrsProbe{Group: 0, Report: func(ok bool) {
				coll.SetConntrackAttrs(ok)
				logger.Info("NFLOG conntrack attributes (NFULNL_CFG_F_CONNTRACK) probed; not used: INVALID packets carry none", "supported", ok)
			}},
		}, logger)
		if err != nil {
			logger.Error(err.Error())
			return 1
		}
		sources = append(sources, src)
	}
	for i, src := range sources {
		if err := src.Open(coll); err != nil {
			for _, opened := range sources[:i] {
				opened.Close()
			}
			logger.Error(f.reasons.bindError(err).Error())
			return 1
		}
		defer src.Close()
	}
	coll.Start()
	defer coll.Stop()

	// SIGHUP would end the process by default, which systemd counts as a clean
	// exit; there is no configuration to reload, so it changes nothing.
	signal.Ignore(syscall.SIGHUP)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	var readers sync.WaitGroup
	for _, src := range sources {
		readers.Add(1)
		go func() {
			defer readers.Done()
			if err := src.Run(ctx, coll); err != nil {
				logger.Error("A drop source stopped", "err", err)
			}
		}()
	}

	sum := summary.New(summary.Config{Collector: coll, Evidence: coll, Reasons: coll, Rules: coll, Sources: f.landingSources, Exporter: name, Version: version.Version})
	server := newServer(newHandler(f, coll, sum, logger), serverTimeouts)
	serveErr := make(chan error, 1)
	go func() { serveErr <- web.ListenAndServe(server, f.web, logger) }()

	code := 0
	select {
	case <-ctx.Done():
		logger.Info("Shutting down: unbinding the drop sources")
	case err := <-serveErr:
		if !errors.Is(err, http.ErrServerClosed) {
			logger.Error("HTTP server failed", "err", err)
			code = 1
		}
	}
	stop()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = server.Shutdown(shutdownCtx)
	readers.Wait()
	return code
}

// newHandler serves the exporter's metrics from its own registry, and the
// exporter's own go_/process_ metrics from another one, as node_exporter does.
func newHandler(f *flags, coll prometheus.Collector, sum *summary.Summarizer, logger *slog.Logger) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(coll, versioncollector.NewCollector(name))
	gatherers := prometheus.Gatherers{reg}
	var instrument func(http.Handler) http.Handler = func(h http.Handler) http.Handler { return h }
	if !f.disableExporterMetrics {
		self := prometheus.NewRegistry()
		self.MustRegister(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), collectors.NewGoCollector())
		gatherers = append(gatherers, self)
		instrument = func(h http.Handler) http.Handler { return promhttp.InstrumentMetricHandler(self, h) }
	}
	metrics := instrument(promhttp.HandlerFor(gatherers, promhttp.HandlerOpts{
		ErrorLog:            slog.NewLogLogger(logger.Handler(), slog.LevelError),
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: f.maxRequests,
		EnableOpenMetrics:   true,
	}))
	mux := http.NewServeMux()
	mux.Handle(f.telemetryPath, metrics)
	// The summary and the page go through the same server, so the web
	// config's TLS and basic auth cover them as they cover the metrics.
	mux.Handle(summary.Path, sum)
	page, err := landing.New(landing.Config{LandingConfig: web.LandingConfig{
		Name:        name,
		Description: "What the packets your firewall drops really are",
		Version:     version.Info(),
		Links: []web.LandingLinks{
			{Address: f.telemetryPath, Text: "Metrics"},
			{Address: summary.Path, Text: "Summary as JSON", Description: "the numbers below, for scripts"},
		},
	}, Summary: sum})
	if err != nil {
		logger.Error("landing page", "err", err)
	} else {
		mux.Handle("/", page)
	}
	return mux
}
