package ctlog

import (
	"github.com/nfdrop/nfdrop_exporter/collector/classify"
	"github.com/nfdrop/nfdrop_exporter/collector/packet"
)

// MessageCount is how many of conntrack's messages a group read for one
// family, protocol and reason.
type MessageCount struct {
	Family packet.Family
	Proto  packet.Proto
	Reason Reason
	N      uint64
}

// DropCount is how many drops of one class were joined to one reason.
type DropCount struct {
	Class  uint8
	Reason Reason
	N      uint64
}

// GroupCounts is one group's counts; only non-zero counts are listed.
type GroupCounts struct {
	Group    classify.Group
	Messages []MessageCount
	Drops    []DropCount // nil when drops are not joined
	Waiting  uint64      // drops waiting for their reason
}

// Counts returns every group's counts, in configuration order. Waiting drops
// whose window has ended are settled first, so that a drop older than the
// window is never missing from them.
func (l *Log) Counts() []GroupCounts {
	if l.table != nil {
		l.resolve()
	}
	out := make([]GroupCounts, 0, len(l.order))
	for _, gs := range l.order {
		gc := GroupCounts{Group: gs.group}
		for f := range gs.messages {
			for p := range gs.messages[f] {
				for r := range gs.messages[f][p] {
					if n := gs.messages[f][p][r].Load(); n > 0 {
						gc.Messages = append(gc.Messages, MessageCount{packet.Family(f), packet.Proto(p), Reason(r), n})
					}
				}
			}
		}
		if l.table != nil {
			gc.Drops = gs.dropCounts()
			gc.Waiting = gs.waiting()
		}
		out = append(out, gc)
	}
	return out
}

func (gs *GroupLog) dropCounts() []DropCount {
	out := []DropCount{}
	for c := range gs.drops {
		for r := range gs.drops[c] {
			if n := gs.drops[c][r].Load(); n > 0 {
				out = append(out, DropCount{uint8(c), Reason(r), n})
			}
		}
	}
	return out
}

// waiting is the number of drops in the pending ring. head is read before
// tail: both only grow and head never passes tail, so the difference cannot
// wrap whatever the resolver does in between; it can only count drops that
// were settled meanwhile, hence the cap at what the ring holds.
func (gs *GroupLog) waiting() uint64 {
	h := gs.head.Load()
	return min(gs.tail.Load()-h, pendingSlots)
}

// DropReasons returns a group's drops by conntrack's reason, summed over
// classes, for the landing page; ok is false when drops are not joined to
// reasons or the group is not read.
func (l *Log) DropReasons(g classify.Group) (drops map[string]uint64, ok bool) {
	gs := l.Group(g)
	if l.table == nil || gs == nil {
		return nil, false
	}
	l.resolve()
	drops = map[string]uint64{}
	for _, d := range gs.dropCounts() {
		drops[d.Reason.String()] += d.N
	}
	return drops, true
}

// SetConntrackAttrs records whether the kernel accepted NFULNL_CFG_F_CONNTRACK
// on conntrack's group.
func (l *Log) SetConntrackAttrs(supported bool) {
	if supported {
		l.ctAttrs.Store(2)
	} else {
		l.ctAttrs.Store(1)
	}
}

// ConntrackAttrs returns what SetConntrackAttrs recorded; probed is false
// before it was called.
func (l *Log) ConntrackAttrs() (supported, probed bool) {
	v := l.ctAttrs.Load()
	return v == 2, v != 0
}
