// Package conntrack adds conntrack evidence to teardown-shaped drops: it
// tells the late packets of real connections from probes shaped like them. It listens to the kernel's conntrack DESTROY events, remembers recently
// ended TCP flows for a time window, and decides for every teardown-shaped
// drop, after a short hold, whether the flow it belongs to has just ended
// (destroyed), is closing or live in the table (one rate-limited lookup), or
// is unknown (none) — what a scan's probe gets.
//
// The packet reader only copies the tuple into a bounded queue (Observe): it
// never blocks, allocates or waits for the kernel. Everything else runs on
// the tracker's own goroutines, with fixed memory: max-flows ring slots, a
// hold queue of fixed-size entries, and a rate limiter for lookups.
//
// The event stream is an interface (Events): the live DESTROY subscription,
// or ReplayEvents, a recording of one (a pcap of the datagrams the kernel
// sent, made by RecordEvents), so that the evidence logic is tested without
// root against what a real kernel sent.
package conntrack

import (
	"fmt"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nfdrop/nfdrop_exporter/collector/classify"
	"github.com/nfdrop/nfdrop_exporter/collector/packet"
	"github.com/nfdrop/nfdrop_exporter/collector/sysctl"
	"golang.org/x/time/rate"
)

// Defaults of the --conntrack.* flags.
const (
	DefaultWindow           = 2 * time.Minute
	DefaultHold             = 2 * time.Second
	DefaultMaxFlows         = 65536
	DefaultLookupsPerSecond = 100
	DefaultQueueSize        = 4096
	DefaultReceiveBuffer    = 8 << 20
)

// Config configures a Tracker; main builds it from the --conntrack.* flags.
type Config struct {
	Groups           []classify.Group // groups whose drops are observed
	Window           time.Duration    // how long an ended flow is remembered
	Hold             time.Duration    // how long a drop waits for its DESTROY before the lookup
	MaxFlows         int              // most ended flows remembered
	LookupsPerSecond float64          // conntrack lookups per second; 0 disables lookups
	QueueSize        int              // drops waiting out their hold
	ReceiveBuffer    int              // event socket receive buffer, bytes
	SysctlDir        string           // where the conntrack sysctls are read; "" = /proc/sys/net/netfilter
	// NetNS, if non-zero, is a file descriptor of the network namespace the
	// conntrack sockets are opened in (tests). Zero: the exporter's own.
	NetNS int
	// Events, if set, opens the event stream instead of the kernel's DESTROY
	// subscription (a recording: ReplayEvents); no lookup socket is opened.
	Events func() (Events, error)
	// NewDelay, if set, gives each group's observer of the seconds from a
	// flow's DESTROY to its late packet (drops with evidence destroyed).
	NewDelay func(classify.Group) Observer
}

// Observer receives observed values; a Prometheus histogram is one.
type Observer interface{ Observe(float64) }

// Validate checks the flag values.
func (c *Config) Validate() error {
	switch {
	case classify.CheckGroups(c.Groups) != nil:
		return classify.CheckGroups(c.Groups)
	case c.Hold < 0 || c.Hold > time.Minute:
		return fmt.Errorf("--conntrack.hold=%s: want 0 to 1m", c.Hold)
	case c.Window < c.Hold || c.Window > 24*time.Hour:
		return fmt.Errorf("--conntrack.window=%s: want at least --conntrack.hold (%s) and at most 24h", c.Window, c.Hold)
	case c.MaxFlows < 1 || c.MaxFlows > 1<<24:
		return fmt.Errorf("--conntrack.max-flows=%d: want 1 to %d", c.MaxFlows, 1<<24)
	case c.LookupsPerSecond < 0 || math.IsNaN(c.LookupsPerSecond) || c.LookupsPerSecond > 1e6:
		return fmt.Errorf("--conntrack.lookups-per-second=%v: want 0 to 1000000", c.LookupsPerSecond)
	case c.QueueSize < 1 || c.QueueSize > 1<<22:
		return fmt.Errorf("--conntrack.hold-queue=%d: want 1 to %d", c.QueueSize, 1<<22)
	case c.ReceiveBuffer < 0 || c.ReceiveBuffer > 1<<30:
		return fmt.Errorf("--conntrack.socket.receive-buffer=%d: want 0 to 1GiB", c.ReceiveBuffer)
	}
	return nil
}

// held is one teardown-shaped drop waiting out its hold. Fixed size, no
// pointers: the queue's buffer is allocated once.
type held struct {
	tuple    Tuple
	group    uint16 // index into Tracker.groups, not the group's label
	ts       int64  // NFLOG timestamp, unix nanoseconds
	deadline int64  // when to decide, unix nanoseconds
}

// Tracker correlates teardown-shaped drops with conntrack. Each group's
// reader hands it its drops through the group's GroupReader.
type Tracker struct {
	cfg    Config
	logger *slog.Logger
	now    func() time.Time

	groups  []groupEvidence // in the order of cfg.Groups
	readers []GroupReader   // readers[i] belongs to the reader of cfg.Groups[i]
	queue   chan held

	mu  sync.Mutex // guards mem
	mem *flowMemory

	looker  atomic.Pointer[lookerRef]
	limiter *rate.Limiter // lookups per second; evidence goroutine only

	running     atomic.Bool // the evidence goroutine runs: Observe queues
	up          atomic.Bool // subscribed to DESTROY events
	destroys    atomic.Uint64
	undecodable atomic.Uint64
	lostBase    atomic.Uint64 // kernel drops of closed event sockets
	lookups     [NumLookupResults]atomic.Uint64
	evicted     atomic.Uint64
	preexisting atomic.Int64 // -1: unknown
	sock        eventSocketHolder
	warnOnce    sync.Once
	stopCh      chan struct{}
	stopOnce    sync.Once
	wg          sync.WaitGroup
}

// groupEvidence is one group's evidence counters, written by the evidence
// goroutine (and by Flush for skips).
type groupEvidence struct {
	evidence [NumEvidence]atomic.Uint64
	delay    Observer // nil: delays are not kept
}

// GroupReader is one group's way into the tracker, for the group's packet
// reader goroutine alone: what Observe keeps between Flushes. Padded so that
// it shares no cache line with another group's reader or with the counters
// the evidence goroutine writes.
type GroupReader struct {
	t         *Tracker
	index     uint16 // index of the group in Tracker.groups
	skipped   uint64 // drops counted skipped since the last Flush
	queueFull bool   // the hold queue was full: skip without looking until Flush
	_         [40]byte
}

// lookerRef boxes the Looker, which the listener sets once it has a socket.
type lookerRef struct{ Looker }

// New builds a tracker; Start subscribes and starts it.
func New(cfg Config, logger *slog.Logger) (*Tracker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.SysctlDir == "" {
		cfg.SysctlDir = sysctl.DefaultDir
	}
	t := &Tracker{
		cfg:     cfg,
		logger:  logger,
		now:     time.Now,
		queue:   make(chan held, cfg.QueueSize),
		mem:     newFlowMemory(cfg.MaxFlows, int64(cfg.Window)),
		limiter: newLimiter(cfg.LookupsPerSecond),
		stopCh:  make(chan struct{}),
	}
	t.preexisting.Store(-1)
	t.groups = make([]groupEvidence, len(cfg.Groups))
	t.readers = make([]GroupReader, len(cfg.Groups))
	for i, g := range cfg.Groups {
		t.readers[i] = GroupReader{t: t, index: uint16(i)}
		if cfg.NewDelay != nil {
			t.groups[i].delay = cfg.NewDelay(g)
		}
	}
	return t, nil
}

// Reader returns the GroupReader of group g, nil if the tracker does not
// serve it.
func (t *Tracker) Reader(g classify.Group) *GroupReader {
	if i := t.groupIndex(g); i >= 0 {
		return &t.readers[i]
	}
	return nil
}

// Observe hands the tracker one teardown-shaped drop, logged at tsNs (unix
// nanoseconds). It runs on the group's reader goroutine for every such drop:
// it copies the tuple into the hold queue, or, when the queue is full or
// correlation is not running, counts the drop as skipped. It never blocks,
// does not allocate and, under a flood, costs a few plain instructions: once
// the queue is found full, the rest of the datagram's drops are skipped
// without looking, and skips are published by Flush, once per datagram.
func (r *GroupReader) Observe(p *packet.Packet, tsNs int64) {
	t := r.t
	if r.queueFull || !p.HasPorts || p.IPProto != 6 || !t.running.Load() {
		r.skipped++
		return
	}
	// The hold runs from the kernel's timestamp: the packet may have waited in
	// an NFLOG batch already. evidenceLoop caps the wait at one hold, so a
	// clock step or a bogus timestamp cannot park a drop; reading the clock
	// here would cost the reader a clock read per packet.
	h := held{
		tuple:    Tuple{Src: p.Src, Dst: p.Dst, SrcPort: p.SrcPort, DstPort: p.DstPort, Family: p.Family},
		group:    r.index,
		ts:       tsNs,
		deadline: tsNs + int64(t.cfg.Hold),
	}
	select {
	case t.queue <- h:
	default:
		r.queueFull = true
		r.skipped++
	}
}

// Flush ends a datagram: it publishes the skips Observe counted and lets the
// next datagram's drops try the hold queue again.
func (r *GroupReader) Flush() {
	if r.skipped > 0 {
		r.t.groups[r.index].evidence[EvidenceSkipped].Add(r.skipped)
		r.skipped = 0
	}
	r.queueFull = false
}

// groupIndex is the index of group g in t.groups, or -1.
func (t *Tracker) groupIndex(g classify.Group) int {
	for i, c := range t.cfg.Groups {
		if c == g {
			return i
		}
	}
	return -1
}

// recordDestroy remembers a TCP flow conntrack destroyed at ended.
func (t *Tracker) recordDestroy(tp *Tuple, ended int64) {
	k := tp.key()
	now := t.now().UnixNano()
	t.mu.Lock()
	before := t.mem.evicted
	t.mem.add(k, ended, now)
	ev := t.mem.evicted - before
	t.mu.Unlock()
	if ev > 0 {
		t.evicted.Add(ev)
	}
}

// decide returns the evidence for h at now (unix nanoseconds) and, for
// destroyed, the seconds from the flow's end to the packet.
func (t *Tracker) decide(h *held, now int64) (ev Evidence, delay float64, hasDelay bool) {
	if !t.up.Load() {
		return EvidenceSkipped, 0, false
	}
	k := h.tuple.key()
	t.mu.Lock()
	ended, ok := t.mem.lookup(k)
	t.mu.Unlock()
	if ok && h.ts-ended <= int64(t.cfg.Window) {
		// A DESTROY stamped after the packet means the packet's own
		// conntrack lookup reaped the expired entry (or conntrack ended it
		// during the hold): the flow was over when the packet came.
		d := h.ts - ended
		if d < 0 {
			d = 0
		}
		return EvidenceDestroyed, float64(d) / 1e9, true
	}
	lr := t.looker.Load()
	if lr == nil || !t.limiter.AllowN(time.Unix(0, now), 1) {
		return EvidenceSkipped, 0, false
	}
	state, found, err := lr.Lookup(&h.tuple)
	switch {
	case err != nil:
		t.lookups[LookupError].Add(1)
		t.logger.Debug("conntrack lookup failed", "err", err)
		return EvidenceSkipped, 0, false
	case !found:
		t.lookups[LookupNotFound].Add(1)
		return EvidenceNone, 0, false
	}
	t.lookups[LookupFound].Add(1)
	return evidenceForState(state), 0, false
}

// evidenceLoop decides every queued drop once its hold is over. The queue is
// FIFO and deadlines are nearly monotonic, so waiting for the head is enough.
// Wake-ups are coalesced to at most one per holdTick: under a flood every drop
// has its own deadline, and a timer per drop would cost a goroutine switch per
// packet; drops whose holds end within one tick are decided together.
func (t *Tracker) evidenceLoop() {
	defer t.wg.Done()
	defer t.running.Store(false)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	var h held
	has := false
	for {
		if !has {
			select {
			case h = <-t.queue:
			case <-t.stopCh:
				return
			}
		}
		if d := time.Duration(h.deadline - t.now().UnixNano()); d > 0 {
			timer.Reset(max(min(d, t.cfg.Hold), holdTick(t.cfg.Hold)))
			select {
			case <-timer.C:
			case <-t.stopCh:
				timer.Stop()
				return
			}
		}
		now := t.now().UnixNano()
		t.record(&h, now)
		// Decide every queued drop whose hold is over as well; keep the
		// first one that is still held as the next head.
		has = false
	drain:
		for {
			select {
			case h = <-t.queue:
				if h.deadline > now {
					has = true
					break drain
				}
				t.record(&h, now)
			default:
				break drain
			}
		}
	}
}

// newLimiter allows perSecond lookups a second, in bursts of up to a
// second's worth (at least one); 0 allows none.
func newLimiter(perSecond float64) *rate.Limiter {
	if perSecond <= 0 {
		return rate.NewLimiter(0, 0)
	}
	return rate.NewLimiter(rate.Limit(perSecond), max(1, int(perSecond)))
}

// dialEvents opens the event stream: cfg.Events, else the kernel's.
func (t *Tracker) dialEvents() (Events, error) {
	if t.cfg.Events != nil {
		return t.cfg.Events()
	}
	return dialEventSocket(t.cfg.NetNS, t.cfg.ReceiveBuffer)
}

// holdTick is the step at which held drops are decided: a twentieth of the
// hold, from 10 ms to 100 ms (the default 2 s hold: 100 ms, so a flood
// costs 10 wake-ups per second). Deciding a drop up to one step after its
// hold only gives its DESTROY event more time to arrive.
func holdTick(hold time.Duration) time.Duration {
	return min(max(hold/20, 10*time.Millisecond), 100*time.Millisecond)
}

// record decides one held drop and counts the evidence.
func (t *Tracker) record(h *held, now int64) {
	ev, delay, ok := t.decide(h, now)
	ge := &t.groups[h.group]
	ge.evidence[ev].Add(1)
	if ok && ge.delay != nil {
		ge.delay.Observe(delay)
	}
}

// Start subscribes to conntrack DESTROY events and starts deciding. It does
// not fail when conntrack is unavailable: it logs one warning, reports
// nfdrop_conntrack_up 0, counts drops as skipped and keeps retrying.
func (t *Tracker) Start() {
	t.startEvidence()
	t.wg.Add(1)
	go t.listenLoop()
}

func (t *Tracker) startEvidence() {
	t.running.Store(true)
	t.wg.Add(1)
	go t.evidenceLoop()
}

// Stop ends the tracker's goroutines and closes its sockets.
func (t *Tracker) Stop() {
	t.stopOnce.Do(func() {
		t.running.Store(false)
		close(t.stopCh)
		t.sock.close()
		t.wg.Wait()
		if lr := t.looker.Load(); lr != nil {
			if c, ok := lr.Looker.(interface{ Close() error }); ok {
				_ = c.Close()
			}
		}
	})
}

// warn logs the first failure to subscribe; later ones at debug level.
func (t *Tracker) warn(msg string, err error) {
	warned := false
	t.warnOnce.Do(func() {
		warned = true
		t.logger.Warn(msg+"; teardown drops are counted with evidence \"skipped\" until it works (nfdrop_conntrack_up 0)", "err", err)
	})
	if !warned {
		t.logger.Debug(msg, "err", err)
	}
}
