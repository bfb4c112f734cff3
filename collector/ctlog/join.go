package ctlog

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/nfdrop/nfdrop_exporter/collector/classify"
	"github.com/nfdrop/nfdrop_exporter/collector/packet"
)

// DefaultWindow is the default longest time a drop waits for its reason, and
// how long a reason waits for its drop.
const DefaultWindow = time.Second

// Config configures a Log.
type Config struct {
	// Groups are the groups read, in label order. ReasonsGroup (where the
	// kernel writes conntrack's messages, NFLOG group 0) must be one of
	// them for drops to be joined.
	Groups       []classify.Group
	ReasonsGroup classify.Group
	// Join joins drops to conntrack's reasons (nfdrop_drop_reasons_total).
	Join bool
	// Window bounds how long a drop on another group than ReasonsGroup
	// waits for its reason; 0 = DefaultWindow.
	Window time.Duration
}

// tableSlots bounds the reasons waiting for their drop (two 8-byte words
// each): far more than the INVALID packets of one window on a busy host; an
// older reason is overwritten by a newer one for the same slot.
const tableSlots = 1 << 14

// pendingSlots bounds the drops of one group waiting for their reason; when
// it is full a drop is counted with reason none at once.
const pendingSlots = 1 << 12

// MaxClasses bounds the class numbers a Log counts.
const MaxClasses = 8

// Log counts conntrack's messages and joins drops to their reasons. Its
// per-packet methods run on the groups' reader goroutines, allocate nothing
// and take no lock: the reasons table has one writer (the reasons group's
// reader) and is read with atomics.
type Log struct {
	cfg       Config
	window    int64 // nanoseconds
	start     time.Time
	order     []*GroupLog // read-only after New
	reasons   *GroupLog   // the reasons group's, nil if it is not read
	table     []slot
	lastSeq   atomic.Uint64 // the reasons group's last global sequence number + 1<<32 once one was seen
	newest    atomic.Uint64 // when the newest reason was kept (milliseconds since start) + 1<<32 once one was
	waiters   bool          // a group other than the reasons group is read: its drops wait, and read lastSeq
	resolveMu sync.Mutex    // serialises the resolver with scrapes
	ctAttrs   atomic.Uint32 // 0 not probed, 1 unsupported, 2 supported
	clock     atomic.Int64  // nanoseconds since start, see Tick
	wake      chan struct{} // a drop began to wait: the resolver has work
	runs      atomic.Uint64 // times the resolver woke up
	stop      chan struct{}
	done      chan struct{}
}

// slot is one entry of the reasons table: the packet key and, packed in one
// word, a tag of the key, the reason, how many messages of this packet are
// waiting, and when the last one arrived (milliseconds since start).
type slot struct {
	key atomic.Uint64
	val atomic.Uint64
}

func pack(key uint64, r Reason, count uint8, ms uint32) uint64 {
	return key>>48<<48 | uint64(r)<<40 | uint64(count)<<32 | uint64(ms)
}

func valTag(v uint64) uint64    { return v >> 48 }
func valReason(v uint64) Reason { return Reason(v >> 40) }
func valCount(v uint64) uint8   { return uint8(v >> 32) }
func valMs(v uint64) uint32     { return uint32(v) }
func keyTag(k uint64) uint64    { return k >> 48 }
func slotIndex(k uint64) uint64 { return k & (tableSlots - 1) }
func seqAfter(a, b uint32) bool { return int32(a-b) > 0 }
func (l *Log) nowMs() uint32    { return uint32(l.clock.Load() / int64(time.Millisecond)) }
func (l *Log) nowNs() int64     { return l.clock.Load() }

// Tick advances the Log's clock. The per-packet path reads this coarse
// clock instead of the system's (reading the time was a third of the join's
// cost, and the window is a second): the readers tick it at the start of
// each kernel batch, the resolver and scrapes when they run. Nothing ticks
// it while no packet arrives and nothing waits, so an idle exporter does
// not wake up for it.
func (l *Log) Tick() { l.clock.Store(int64(time.Since(l.start))) }

// GroupLog is one group's counters and waiting drops. Its Message, Drop and
// DropPacket run on the group's reader goroutine only.
type GroupLog struct {
	l        *Log
	group    classify.Group
	messages [packet.NumFamilies][packet.NumProtos][NumReasons]atomic.Uint64
	drops    [MaxClasses][NumReasons]atomic.Uint64
	shared   bool // this group is the reasons group: its order is the kernel's

	// pending is a single-producer (the group's reader), single-consumer
	// (the resolver) ring of drops waiting for their reason.
	pending [pendingSlots]pendingDrop
	head    atomic.Uint64 // next to resolve
	tail    atomic.Uint64 // next to fill
}

type pendingDrop struct {
	key      uint64
	deadline int64 // nanoseconds since start
	seq      uint32
	hasSeq   bool
	class    uint8
}

// New builds a Log; Start runs its resolver.
func New(cfg Config) *Log {
	if cfg.Window <= 0 {
		cfg.Window = DefaultWindow
	}
	l := &Log{
		cfg:    cfg,
		window: int64(cfg.Window),
		start:  time.Now(),
		wake:   make(chan struct{}, 1),
	}
	for _, g := range cfg.Groups {
		if l.Group(g) != nil {
			continue
		}
		gs := &GroupLog{l: l, group: g, shared: g == cfg.ReasonsGroup}
		l.order = append(l.order, gs)
		if gs.shared {
			l.reasons = gs
		}
	}
	if cfg.Join && l.reasons != nil {
		l.table = make([]slot, tableSlots)
	}
	l.waiters = len(l.order) > 1
	return l
}

// Joining reports whether drops are joined to reasons: the join is on and
// the reasons group is read.
func (l *Log) Joining() bool { return l.table != nil }

// Group returns group g's log, nil if g is not read.
func (l *Log) Group(g classify.Group) *GroupLog {
	for _, gs := range l.order {
		if gs.group == g {
			return gs
		}
	}
	return nil
}

// Joining reports whether the group's drops are joined to reasons.
func (gs *GroupLog) Joining() bool { return gs.l.table != nil }

// Message counts one conntrack message (Recognise said so) and, on the
// reasons group, keeps its reason for the drop of the same packet. seq is
// the message's global sequence number if hasSeq.
func (gs *GroupLog) Message(f packet.Family, proto packet.Proto, r Reason, key uint64, seq uint32, hasSeq bool) {
	l := gs.l
	gs.messages[f%packet.Family(packet.NumFamilies)][proto%packet.NumProtos][r%NumReasons].Add(1)
	if l.table == nil || gs != l.reasons {
		return
	}
	if key != 0 {
		l.insert(key, r)
	}
	if hasSeq && l.waiters {
		l.lastSeq.Store(1<<32 | uint64(seq))
	}
}

// insert keeps a reason; only the reasons group's reader calls it.
func (l *Log) insert(key uint64, r Reason) {
	s := &l.table[slotIndex(key)]
	now := l.nowMs()
	if l.newest.Load() != 1<<32|uint64(now) {
		l.newest.Store(1<<32 | uint64(now))
	}
	v := s.val.Load()
	if s.key.Load() == key && valTag(v) == keyTag(key) && valReason(v) == r && valCount(v) > 0 && valCount(v) < 255 && !l.stale(v, now) {
		// The same packet again (a retransmission with identical headers):
		// one more drop may claim it.
		if s.val.CompareAndSwap(v, pack(key, r, valCount(v)+1, now)) {
			return
		}
	}
	// Invalidate, then publish the new key and value: a reader that loaded
	// the old value fails its compare-and-swap or its key check.
	s.val.Store(0)
	s.key.Store(key)
	s.val.Store(pack(key, r, 1, now))
}

// live reports whether the table may hold a reason a drop can claim: one was
// kept and it is not stale. Each slot's time is at most the newest's (one
// writer, one clock), so when the newest is stale they all are.
func (l *Log) live() bool {
	v := l.newest.Load()
	return v>>32 != 0 && !l.stale(v, l.nowMs())
}

func (l *Log) stale(v uint64, now uint32) bool {
	return int64(now-valMs(v))*int64(time.Millisecond) > 2*l.window
}

// claim takes the reason of key out of the table, if it is there.
func (l *Log) claim(key uint64) (Reason, bool) {
	s := &l.table[slotIndex(key)]
	now := l.nowMs()
	for {
		v := s.val.Load()
		if valTag(v) != keyTag(key) || valCount(v) == 0 || s.key.Load() != key || l.stale(v, now) {
			return 0, false
		}
		if s.val.CompareAndSwap(v, v-1<<32) {
			return valReason(v), true
		}
	}
}

// Drop joins one drop (a message that is not conntrack's) to its reason. A
// drop on the reasons group comes after conntrack's message for its packet,
// so it is counted at once; a drop on another group whose reason has not
// been read yet waits, at most the window.
func (gs *GroupLog) Drop(class uint8, key uint64, seq uint32, hasSeq bool) {
	if gs.l.table != nil {
		gs.l.drop(gs, class, key, seq, hasSeq)
	}
}

// DropPacket is Drop for a packet of family f: its key is only computed when
// it can matter. On the reasons group a drop's reason was read before it, so
// with no live reason in the table (conntrack silent: nf_conntrack_log_invalid
// 0, or no INVALID packet in the last two windows) the drop is counted none at
// once; this is the flood's case, where hashing and probing the table was
// two thirds of the per-packet path's cost.
func (gs *GroupLog) DropPacket(class uint8, f packet.Family, payload []byte, seq uint32, hasSeq bool) {
	l := gs.l
	if l.table == nil {
		return
	}
	if gs.shared && !l.live() {
		if hasSeq && l.waiters {
			l.lastSeq.Store(1<<32 | uint64(seq))
		}
		gs.drops[class%MaxClasses][ReasonNone].Add(1)
		return
	}
	l.drop(gs, class, Key(f, payload), seq, hasSeq)
}

func (l *Log) drop(gs *GroupLog, class uint8, key uint64, seq uint32, hasSeq bool) {
	class %= MaxClasses
	if gs.shared && hasSeq && l.waiters {
		l.lastSeq.Store(1<<32 | uint64(seq))
	}
	if key != 0 {
		if r, ok := l.claim(key); ok {
			gs.drops[class][r].Add(1)
			return
		}
	}
	if gs.shared || key == 0 || (hasSeq && l.passed(seq)) {
		gs.drops[class][ReasonNone].Add(1)
		return
	}
	t := gs.tail.Load()
	if t-gs.head.Load() >= pendingSlots {
		gs.drops[class][ReasonNone].Add(1)
		return
	}
	gs.pending[t%pendingSlots] = pendingDrop{key: key, deadline: l.nowNs() + l.window, seq: seq, hasSeq: hasSeq, class: class}
	gs.tail.Store(t + 1)
	if t == gs.head.Load() { // the first drop to wait: wake the resolver
		select {
		case l.wake <- struct{}{}:
		default:
		}
	}
}

// passed reports whether the reasons group has been read past global
// sequence number seq: conntrack's message for a packet is numbered before
// the drop rule's, so if it existed it has been read.
func (l *Log) passed(seq uint32) bool {
	v := l.lastSeq.Load()
	return v>>32 != 0 && seqAfter(uint32(v), seq)
}

// resolve settles waiting drops: joined when their reason has arrived, none
// when the reasons group has been read past them or their window has ended.
// It reports whether drops still wait (read after settling, so that a drop
// queued meanwhile is either seen here or wakes the resolver).
func (l *Log) resolve() (waiting bool) {
	l.resolveMu.Lock()
	defer l.resolveMu.Unlock()
	l.Tick()
	now := l.nowNs()
	for _, gs := range l.order {
		h, t := gs.head.Load(), gs.tail.Load()
		for ; h != t; h++ {
			p := &gs.pending[h%pendingSlots]
			if r, ok := l.claim(p.key); ok {
				gs.drops[p.class][r].Add(1)
				continue
			}
			if now < p.deadline && !(p.hasSeq && l.passed(p.seq)) {
				break // later drops are younger: keep the order
			}
			gs.drops[p.class][ReasonNone].Add(1)
		}
		gs.head.Store(h)
		waiting = waiting || gs.tail.Load() != h
	}
	return waiting
}

// resolveEvery is how often waiting drops are settled while any wait.
const resolveEvery = 20 * time.Millisecond

// Start runs the resolver until Stop. It sleeps until a drop starts to wait
// for its reason (only drops of another group than the reasons group ever
// do), settles waiting drops every resolveEvery while there are any, and
// sleeps again.
func (l *Log) Start() {
	if l.table == nil || l.stop != nil {
		return
	}
	l.stop, l.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(l.done)
		timer := time.NewTimer(resolveEvery)
		timer.Stop()
		for {
			select {
			case <-l.stop:
				return
			case <-l.wake:
			}
			for l.runs.Add(1); l.resolve(); l.runs.Add(1) {
				timer.Reset(resolveEvery)
				select {
				case <-l.stop:
					timer.Stop()
					return
				case <-timer.C:
				}
			}
		}
	}()
}

// Stop ends the resolver.
func (l *Log) Stop() {
	if l.stop != nil {
		close(l.stop)
		<-l.done
		l.stop = nil
	}
}
