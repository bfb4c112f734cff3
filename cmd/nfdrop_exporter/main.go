// Command nfdrop_exporter exposes what the packets dropped by a Linux firewall
// are (late TCP teardown, handshakes, probes, other), read from NFLOG groups.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/alecthomas/units"
	"github.com/nfdrop/nfdrop_exporter/collector"
	"github.com/nfdrop/nfdrop_exporter/collector/source"
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
	groups         []string
	copyRange      uint32
	queueThreshold uint32
	flushTimeout   time.Duration
	batchSize      units.Base2Bytes
	receiveBuffer  units.Base2Bytes
	replayFile     string
	cpuProfile     string
	ports          string
	maxPrefixes    int
	telemetryPath  string
	disableExpMet  bool
	maxRequests    int
	web            *web.FlagConfig
	log            *promslog.Config
	explain        explainFlags
	conntrack      *conntrackFlags
}

func newApp(f *flags) (*kingpin.Application, *kingpin.CmdClause, *kingpin.CmdClause) {
	app := kingpin.New(name, "Prometheus exporter that classifies the packets a Linux firewall drops (read from NFLOG groups).")
	app.Version(version.Print(name))
	app.HelpFlag.Short('h')
	serve := app.Command("serve", "Read NFLOG groups and serve metrics (the default).").Default()
	app.Flag("nflog.group", "NFLOG group to read (iptables --nflog-group, nft 'log group'); repeat for several.").Default("0").StringsVar(&f.groups)
	app.Flag("nflog.copy-range", "Bytes of each packet the kernel copies to the exporter; enough for IPv6 with extension headers and TCP.").Default("256").Uint32Var(&f.copyRange)
	app.Flag("nflog.queue-threshold", "Messages the kernel batches before sending (qthreshold); 0 keeps the kernel default of 100.").Default("1000").Uint32Var(&f.queueThreshold)
	app.Flag("nflog.flush-timeout", "Longest a logged packet waits in a kernel batch (10ms steps).").Default("10ms").DurationVar(&f.flushTimeout)
	app.Flag("nflog.batch-size", "Kernel batch buffer per group (nlbufsiz, at most 128KiB); larger batches cost less CPU per packet.").Default("128KiB").BytesVar(&f.batchSize)
	app.Flag("nflog.socket.receive-buffer", "Socket receive buffer (SO_RCVBUFFORCE): how long a burst the kernel can hold while the exporter is busy.").Default("32MiB").BytesVar(&f.receiveBuffer)
	app.Flag("nflog.replay-file", "Replay an NFLOG pcap (tcpdump -i nflog:N -w FILE) instead of binding; for tests.").Hidden().StringVar(&f.replayFile)
	app.Flag("debug.cpu-profile", "Write a CPU profile of the whole run to this file at exit; for the profile-guided build (cmd/nfdrop_exporter/default.pgo).").Hidden().StringVar(&f.cpuProfile)
	app.Flag("collector.ports", "Service ports that are label values by number; other ports become system/user/dynamic.").Default(collector.DefaultPorts).StringVar(&f.ports)
	app.Flag("collector.max-prefixes", "Most distinct rule prefixes kept as label values; later ones become (other).").Default(fmt.Sprint(collector.DefaultMaxPrefixes)).IntVar(&f.maxPrefixes)
	app.Flag("web.telemetry-path", "Path under which to expose metrics.").Default("/metrics").StringVar(&f.telemetryPath)
	app.Flag("web.disable-exporter-metrics", "Exclude go_*, process_* and promhttp_* metrics about the exporter itself.").BoolVar(&f.disableExpMet)
	app.Flag("web.max-requests", "Maximum number of parallel scrape requests; 0 disables the limit.").Default("40").IntVar(&f.maxRequests)
	f.conntrack = addConntrackFlags(app)
	f.web = kingpinflag.AddFlags(app, ":9786")
	f.log = &promslog.Config{}
	promslogflag.AddFlags(app, f.log)
	explain := addExplainCommand(app, &f.explain)
	return app, serve, explain
}

// exitRequest carries kingpin's exit code (after --help or --version) out of Parse.
type exitRequest int

func run(args []string, stdin *os.File, stdout, stderr *os.File) (code int) {
	var f flags
	app, serve, explain := newApp(&f)
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
	cmd, err := app.Parse(args)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v; see --help\n", name, err)
		return 2
	}
	switch cmd {
	case explain.FullCommand():
		return runExplain(&f.explain, stdin, stdout, stderr)
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
// merge of such profiles taken under the lab bench's floods (README,
// Performance), so that the compiler inlines and devirtualizes the calls of
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

// validate checks what the kernel would otherwise reject late or silently.
func (f *flags) validate() (collector.Config, error) {
	cfg := collector.Config{MaxPrefixes: f.maxPrefixes}
	ports, err := collector.ParsePorts(f.ports)
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
	case f.maxPrefixes < 1 || f.maxPrefixes > 254:
		return cfg, fmt.Errorf("--collector.max-prefixes=%d: want 1 to 254", f.maxPrefixes)
	}
	if err := checkTelemetryPath(f.telemetryPath); err != nil {
		return cfg, err
	}
	seen := map[uint16]bool{}
	for _, s := range f.groups {
		g, err := strconv.ParseUint(s, 10, 16)
		if err != nil {
			return cfg, fmt.Errorf("--nflog.group=%s: want a group number from 0 to 65535", s)
		}
		if seen[uint16(g)] {
			return cfg, fmt.Errorf("--nflog.group=%d is given twice", g)
		}
		seen[uint16(g)] = true
		cfg.Groups = append(cfg.Groups, uint16(g))
	}
	return cfg, nil
}

func serveMetrics(f *flags, cfg collector.Config, logger *slog.Logger) int {
	logger.Info("Starting "+name, "version", version.Info())
	logger.Info("Build context", "build_context", version.BuildContext())
	if os.Geteuid() == 0 {
		logger.Warn("nfdrop_exporter is running as root; it only needs CAP_NET_ADMIN (see deploy/systemd for an unprivileged unit)")
	}

	teardown, ctColl, stopConntrack, err := f.conntrack.build(cfg.Groups, f.replayFile != "", logger)
	if err != nil {
		logger.Error("invalid flag: " + err.Error())
		return 2
	}
	defer stopConntrack()
	cfg.Teardown = teardown
	var extra []prometheus.Collector
	if ctColl != nil {
		extra = append(extra, ctColl)
	}

	coll, err := collector.New(cfg, logger)
	if err != nil {
		logger.Error(err.Error())
		return 2
	}
	sources, err := openSources(f, cfg, coll, logger)
	if err != nil {
		logger.Error(err.Error())
		return 1
	}

	// SIGHUP would end the process by default, which systemd counts as a clean
	// exit; there is no configuration to reload, so it changes nothing.
	signal.Ignore(syscall.SIGHUP)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	var readers sync.WaitGroup
	for _, s := range sources {
		readers.Add(1)
		go func() {
			defer readers.Done()
			if err := s.Run(ctx, coll); err != nil {
				logger.Error("NFLOG source stopped", "err", err)
			}
		}()
	}

	server := newServer(newHandler(f, coll, logger, extra...), serverTimeouts)
	serveErr := make(chan error, 1)
	go func() { serveErr <- web.ListenAndServe(server, f.web, logger) }()

	code := 0
	select {
	case <-ctx.Done():
		logger.Info("Shutting down: unbinding NFLOG groups")
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

// openSources binds every group before serving, so that a misconfiguration
// exits at once with the reason instead of serving nfdrop_up 0 forever.
func openSources(f *flags, cfg collector.Config, coll *collector.Collector, logger *slog.Logger) ([]source.Source, error) {
	if f.replayFile != "" {
		return []source.Source{&source.Replay{Path: f.replayFile, Groups: cfg.Groups}}, nil
	}
	if !source.HasNetAdmin() {
		return nil, errors.New("nfdrop_exporter needs CAP_NET_ADMIN to bind NFLOG groups: run it as root or grant the capability (systemd AmbientCapabilities=CAP_NET_ADMIN, or setcap cap_net_admin+ep on the binary)")
	}
	var out []source.Source
	for _, g := range cfg.Groups {
		l, err := source.NewLive(source.Config{
			Group:          g,
			CopyRange:      f.copyRange,
			QueueThreshold: f.queueThreshold,
			FlushTimeout:   f.flushTimeout,
			BatchSize:      uint32(f.batchSize),
			ReceiveBuffer:  int(f.receiveBuffer),
		}, logger.With("group", g))
		if err == nil {
			err = l.Start(coll)
		}
		if err != nil {
			for _, s := range out {
				s.(*source.Live).Close()
			}
			return nil, err
		}
		logger.Info("Bound NFLOG group", "group", g)
		out = append(out, l)
	}
	return out, nil
}

// newHandler serves the exporter's metrics from its own registry, and the
// exporter's own go_/process_ metrics from another one, as node_exporter does.
func newHandler(f *flags, coll prometheus.Collector, logger *slog.Logger, extra ...prometheus.Collector) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(coll, versioncollector.NewCollector(name))
	reg.MustRegister(extra...)
	gatherers := prometheus.Gatherers{reg}
	var instrument func(http.Handler) http.Handler = func(h http.Handler) http.Handler { return h }
	if !f.disableExpMet {
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
	mux.Handle(f.telemetryPath, metrics) // checkTelemetryPath keeps it clear of "/"
	landing, err := web.NewLandingPage(web.LandingConfig{
		Name:        name,
		Description: "What the packets your firewall drops really are",
		Version:     version.Info(),
		Links:       []web.LandingLinks{{Address: f.telemetryPath, Text: "Metrics"}},
	})
	if err != nil {
		logger.Error("landing page", "err", err)
	} else {
		mux.Handle("/", landing)
	}
	return mux
}
