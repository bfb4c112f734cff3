// Package collector is the live pipeline and the exporter's Prometheus side:
// it decodes each dropped packet a source hands it, classifies it with
// package classify, counts it in an allocation-free table, passes
// teardown-shaped drops to the conntrack tracker and every drop to the
// reasons join, and at scrape time emits its own counts and those of the
// parts it builds (conntrack evidence and statistics, conntrack's log
// messages, the rule audit, the netfilter settings). It is the only package
// of the pipeline that imports the Prometheus client library: the others
// count and return snapshots.
package collector

import (
	"encoding/binary"
	"errors"
	"log/slog"
	"time"

	"github.com/nfdrop/nfdrop_exporter/collector/classify"
	"github.com/nfdrop/nfdrop_exporter/collector/conntrack"
	"github.com/nfdrop/nfdrop_exporter/collector/ctlog"
	"github.com/nfdrop/nfdrop_exporter/collector/ctstats"
	"github.com/nfdrop/nfdrop_exporter/collector/ebpf"
	"github.com/nfdrop/nfdrop_exporter/collector/packet"
	"github.com/nfdrop/nfdrop_exporter/collector/ruleaudit"
	"github.com/nfdrop/nfdrop_exporter/collector/source"
	"github.com/prometheus/client_golang/prometheus"
)

// Config is everything the collector needs; main builds it from flags.
type Config struct {
	Groups      []classify.Group
	Ports       classify.Ports
	MaxPrefixes int
	// SourcesCapacity, if positive, keeps a top-sources sketch of that many
	// counters per group over the sources of non-teardown drops (Snapshot).
	SourcesCapacity int
	// Conntrack, if set, adds conntrack evidence to teardown-shaped drops;
	// its Groups are the collector's.
	Conntrack *conntrack.Config
	// Reasons, if set, counts conntrack's own log messages and, with Join,
	// joins drops to their reasons; its Groups are the collector's.
	// Conntrack's messages are never counted as drops, with or without it.
	Reasons *ctlog.Config
	// RuleAudit, if set, reads the nf_tables log rules of the groups at
	// scrape time; its Groups are the collector's NFLOG groups.
	RuleAudit *ruleaudit.Config
	// ConntrackStats, if set, reads conntrack's statistics at scrape time.
	ConntrackStats ctstats.Reader
	// EBPF, if set, is the eBPF drop source's kernel-side accounting, read at
	// scrape time; Groups must then hold classify.GroupEBPF.
	EBPF KernelCounter
	// KernelSettings exposes the netfilter sysctls of the exporter's network
	// namespace; off when the packets did not come from this kernel (a
	// replayed capture).
	KernelSettings bool
	// SysctlDir is where the sysctls are read; "" = /proc/sys/net/netfilter.
	SysctlDir string
}

// KernelCounter is what the eBPF drop source counts in the kernel
// (*ebpf.Program).
type KernelCounter interface {
	Counts() (ebpf.Counts, error)
	KernelDrops() ([]ebpf.ReasonCount, error)
}

// Collector implements prometheus.Collector and source.Handler.
type Collector struct {
	cfg        Config
	logger     *slog.Logger
	classifier *classify.Classifier
	prefixes   *classify.PrefixTable
	groups     map[classify.Group]*group // read-only after New: no lock on lookup
	order      []*group

	tracker  *conntrack.Tracker // nil: no teardown evidence
	reasons  *ctlog.Log         // nil: conntrack's messages are not counted
	auditor  *ruleaudit.Auditor // nil: no rule audit
	ctstats  *ctstats.Poller    // nil: no conntrack statistics
	ebpf     KernelCounter      // nil: no eBPF source
	delays   []prometheus.Histogram
	describe []*prometheus.Desc // every family Collect may emit
}

// New validates cfg and builds the collector and its parts; Start starts
// the parts that run on their own.
func New(cfg Config, logger *slog.Logger) (*Collector, error) {
	if err := classify.CheckGroups(cfg.Groups); err != nil {
		return nil, err
	}
	if err := classify.CheckMaxPrefixes("--collector.max-prefixes", cfg.MaxPrefixes); err != nil {
		return nil, err
	}
	if cfg.Ports.Empty() {
		cfg.Ports = classify.MustParsePorts(classify.DefaultPorts)
	}
	c := &Collector{
		cfg:        cfg,
		logger:     logger,
		classifier: classify.NewClassifier(cfg.Ports),
		prefixes:   classify.NewPrefixTable(cfg.MaxPrefixes),
		groups:     map[classify.Group]*group{},
	}
	for _, id := range cfg.Groups {
		g, err := newGroup(id, cfg.SourcesCapacity)
		if err != nil {
			return nil, err
		}
		c.groups[id] = g
		c.order = append(c.order, g)
	}
	if err := c.buildParts(); err != nil {
		return nil, err
	}
	return c, nil
}

// buildParts builds the optional parts and hands each group its share.
func (c *Collector) buildParts() error {
	cfg := &c.cfg
	if cfg.Conntrack != nil {
		ct := *cfg.Conntrack
		ct.Groups = cfg.Groups
		ct.NewDelay = func(g classify.Group) conntrack.Observer {
			h := prometheus.NewHistogram(teardownDelayOpts(g.String()))
			c.delays = append(c.delays, h)
			return h
		}
		t, err := conntrack.New(ct, c.logger.With("component", "conntrack"))
		if err != nil {
			return err
		}
		c.tracker = t
		for _, g := range c.order {
			if r := t.Reader(g.id); r != nil { // a nil *GroupReader must not become a non-nil interface
				g.teardown = r
			}
		}
	}
	if cfg.Reasons != nil {
		rc := *cfg.Reasons
		rc.Groups = cfg.Groups
		c.reasons = ctlog.New(rc)
		for _, g := range c.order {
			g.reasons = c.reasons.Group(g.id)
			g.joining = g.reasons != nil && g.reasons.Joining()
		}
	}
	if cfg.RuleAudit != nil {
		ac := *cfg.RuleAudit
		ac.Groups = nil
		for _, g := range cfg.Groups {
			if _, ok := g.NFLOG(); ok {
				ac.Groups = append(ac.Groups, g)
			}
		}
		if ac.Reader == nil {
			return errors.New("the rule audit needs a reader of the ruleset")
		}
		ac.LastPacket = c.LastPacket
		c.auditor = ruleaudit.New(ac, c.logger.With("collector", "rule-audit"))
	}
	if cfg.ConntrackStats != nil {
		c.ctstats = ctstats.NewPoller(cfg.ConntrackStats, c.logger.With("collector", "conntrack-stats"))
	}
	if cfg.EBPF != nil {
		if c.groups[classify.GroupEBPF] == nil {
			return errors.New("the eBPF source's counts need the ebpf group")
		}
		c.ebpf = cfg.EBPF
	}
	c.describe = c.families()
	return nil
}

// Start starts the parts that run on their own: the conntrack tracker's
// event listener and the reasons join's resolver.
func (c *Collector) Start() {
	if c.tracker != nil {
		c.tracker.Start()
	}
	if c.reasons != nil {
		c.reasons.Start()
	}
}

// Stop stops what Start started.
func (c *Collector) Stop() {
	if c.tracker != nil {
		c.tracker.Stop()
	}
	if c.reasons != nil {
		c.reasons.Stop()
	}
}

// Classifier returns the collector's classifier (shared with explain).
func (c *Collector) Classifier() *classify.Classifier { return c.classifier }

// Bound implements source.Handler.
func (c *Collector) Bound(id classify.Group, up bool) {
	if g := c.groups[id]; g != nil {
		g.up.Store(up)
	}
}

// Lost implements source.Handler.
func (c *Collector) Lost(id classify.Group, n uint64) {
	if g := c.groups[id]; g != nil {
		g.lost.Add(n)
	}
}

// Rebind implements source.Handler.
func (c *Collector) Rebind(id classify.Group) {
	if g := c.groups[id]; g != nil {
		g.rebinds.Add(1)
	}
}

// ReceiveError implements source.Handler.
func (c *Collector) ReceiveError(id classify.Group, r source.ErrorReason) {
	if g := c.groups[id]; g != nil {
		g.recvErrors[r%source.NumReasons].Add(1)
	}
}

// Packet implements source.Handler: the per-packet path. It looks the group
// up once, then decodes, classifies, counts and hands the drop to the
// group's evidence reader and reasons join, without allocating or taking a
// lock.
func (c *Collector) Packet(m *source.Message) {
	g := c.group(m.Group)
	if g == nil {
		return
	}
	if !g.inBatch {
		g.inBatch = true
		if g.reasons != nil {
			c.reasons.Tick() // one clock read per kernel batch, not per packet
		}
	}
	p := &g.pkt
	family := m.FamilyHint()
	packet.Decode(m.Payload, family, p)
	idx, r, isCT := c.prefixOf(g, m.Prefix)
	// Conntrack's own messages are not drops.
	if isCT {
		if g.reasons != nil {
			var k uint64
			if g.joining { // the key is only for the join
				k = ctlog.Key(family, m.Payload)
			}
			g.reasons.Message(p.Family, p.Proto, r, k, m.SeqGlobal, m.HasSeqGlobal)
		}
		return
	}
	if p.Err != packet.ErrNone {
		g.decodeErrors[p.Err%packet.NumErrors].Add(1)
	}
	k := c.classifier.Key(p)
	class := k.Class()
	g.counters.inc(k.WithPrefix(idx), class)
	if p.Err == packet.ErrNone {
		g.sizes[class].observe(p.Length)
	}
	ts := m.TimestampNs
	if !m.HasTimestamp {
		ts = time.Now().UnixNano()
	}
	g.last = ts
	if class == classify.ClassTeardown {
		if g.teardown != nil {
			g.teardown.Observe(p, ts)
		}
	} else if g.sources != nil {
		observeSource(g.sources, p, class, ts)
	}
	if g.joining {
		g.reasons.DropPacket(uint8(class), family, m.Payload, m.SeqGlobal, m.HasSeqGlobal)
	}
}

// group returns the record of a group, nil if it is not configured. Each
// reader serves one group: the map is skipped when there is only one.
func (c *Collector) group(id classify.Group) *group {
	if g := c.order[0]; len(c.order) == 1 && g.id == id {
		return g
	}
	return c.groups[id]
}

// prefixOf reads a message's prefix: conntrack's reason if the prefix is
// one of conntrack's own messages (isCT), else its label index. A group is
// nearly always fed by one rule, so the last raw prefix and what it is are
// kept: recognising, trimming and searching the prefix table only run when
// the prefix changes, and the comparison is of raw bytes, so it never
// allocates. Conntrack's prefixes never enter the prefix table.
func (c *Collector) prefixOf(g *group, raw []byte) (idx uint8, r ctlog.Reason, isCT bool) {
	if len(raw) == g.rawLen && sameBytes(raw, g.rawPrefix[:g.rawLen]) {
		return g.prefixIdx, g.ctReason, g.prefixCT
	}
	if r, isCT = ctlog.Recognise(raw); !isCT {
		idx = c.prefixes.Index(classify.TrimPrefix(raw))
	}
	if len(raw) <= len(g.rawPrefix) { // an index never changes, (other) included: the table only grows
		g.rawLen = copy(g.rawPrefix[:], raw)
		g.prefixIdx, g.ctReason, g.prefixCT = idx, r, isCT
	}
	return idx, r, isCT
}

// sameBytes reports whether a and b, of equal length, are equal. Rule
// prefixes are mostly 8 to 16 bytes: two overlapping 8-byte compares are
// cheaper there than a call to the runtime's memequal.
func sameBytes(a, b []byte) bool {
	if n := len(a); n >= 8 && n <= 16 && len(b) == n {
		return binary.LittleEndian.Uint64(a) == binary.LittleEndian.Uint64(b) &&
			binary.LittleEndian.Uint64(a[n-8:]) == binary.LittleEndian.Uint64(b[n-8:])
	}
	return string(a) == string(b)
}

// Flush implements source.Handler: at the end of a datagram it publishes the
// newest packet's time (once per datagram rather than with an atomic store per
// packet) and ends the datagram for the sketch and the evidence reader.
func (c *Collector) Flush(id classify.Group) {
	g := c.group(id)
	if g == nil {
		return
	}
	g.inBatch = false
	if g.last != 0 {
		g.lastPacket.Store(g.last)
	}
	if g.sources != nil {
		g.sources.Flush()
	}
	if g.teardown != nil {
		g.teardown.Flush()
	}
}

// LastPacket returns the time of the group's newest packet as Flush
// published it; zero when none has arrived or the group is not read.
func (c *Collector) LastPacket(id classify.Group) time.Time {
	g := c.groups[id]
	if g == nil {
		return time.Time{}
	}
	if ns := g.lastPacket.Load(); ns != 0 {
		return time.Unix(0, ns)
	}
	return time.Time{}
}
