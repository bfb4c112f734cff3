// Package source delivers NFLOG messages, in the order the kernel produced them,
// from a live netlink socket or from an NFLOG capture (its file-backed twin
// for tests and offline use). It is the only package that talks to go-nflog.
//
// # Accounting
//
// For every group, sum(nfdrop_packets_total) + nfdrop_messages_lost_total
// equals the packet counter of the rules that log to it, as long as the
// socket stays bound: every message the kernel logged either arrives (and is
// counted once) or leaves a gap in the instance's sequence numbers (and is
// counted lost). The identity breaks in exactly these cases:
//
//   - A receive fails with anything but ENOBUFS (nfdrop_receive_errors_total
//     {reason="other"}): the reader reads what the old socket still holds,
//     closes it (which destroys the kernel's NFLOG instance) and binds
//     again (nfdrop_rebinds_total). Packets the rules log between the close
//     and the new binding go nowhere, and the new instance numbers its
//     messages from 0 again, so no gap shows them: they are in neither
//     counter. So is a batch the kernel had built but not yet sent when the
//     instance was destroyed.
//   - The packets a rule logged before the group was first bound, or after
//     the exporter stopped.
//   - A replayed capture: it holds only what the capturing process received.
//
// A rebind is therefore the signal that the identity no longer holds for the
// interval around it; a restart of the exporter is another one (the counters
// start again from 0).
package source

import (
	"context"

	"github.com/nfdrop/nfdrop_exporter/collector/classify"
)

// Message is one logged packet. Prefix and Payload alias the reader's buffer:
// they are valid only during the Handler.Packet call that receives them.
type Message struct {
	Group        classify.Group
	Family       uint8 // nfgenmsg family: the hook's protocol family (AF_INET 2, AF_INET6 10, ...)
	HwProtocol   uint16
	HasHwProto   bool
	Hook         uint8
	Prefix       []byte // without the trailing NUL; empty when the rule has none
	Payload      []byte // starts at the network header, cut to the copy range; nil when absent
	Seq          uint32
	HasSeq       bool
	SeqGlobal    uint32 // NFULA_SEQ_GLOBAL: numbers every group's messages in one order (conntrack reasons, ctlog)
	HasSeqGlobal bool
	TimestampNs  int64 // NFULA_TIMESTAMP in unix nanoseconds: when the packet was logged (not delivered)
	HasTimestamp bool
}

// ErrorReason is why a receive failed; its String is the reason label of
// nfdrop_receive_errors_total.
type ErrorReason uint8

const (
	ReasonENOBUFS   ErrorReason = iota // the socket overflowed: messages were lost (see sequence gaps)
	ReasonTruncated                    // a datagram was larger than the receive buffer
	ReasonMessage                      // a netlink message that could not be parsed
	ReasonOther                        // any other receive error: the socket is re-opened
	NumReasons
)

var reasonNames = [NumReasons]string{"enobufs", "truncated", "bad_message", "other"}

func (r ErrorReason) String() string { return reasonNames[r%NumReasons] }

// Handler receives what a Source reads. All calls for one group come from one
// goroutine, in kernel order; they must not block.
type Handler interface {
	// Bound reports that the group is (re)bound and being read (up) or not.
	Bound(group classify.Group, up bool)
	// Packet is called for every logged packet.
	Packet(m *Message)
	// Flush is called after the packets of each datagram (one kernel batch):
	// state that only scrapes read can be published here once per batch
	// instead of once per packet.
	Flush(group classify.Group)
	// Lost reports messages the kernel logged that never arrived (sequence gaps).
	Lost(group classify.Group, n uint64)
	// ReceiveError reports a failed receive.
	ReceiveError(group classify.Group, reason ErrorReason)
	// Rebind reports that the group's socket was closed after a receive
	// error to be bound again: what is logged until then is lost uncounted
	// (see Accounting in the package documentation).
	Rebind(group classify.Group)
}

// Source is one input of NFLOG messages for one or more groups, over its
// whole life: Open, then Run, then Close. New picks the implementation.
type Source interface {
	// Open binds the groups (or opens the capture), so that a
	// misconfiguration is reported before the exporter serves. Messages
	// that arrive while binding go to h.
	Open(h Handler) error
	// Run reads until ctx is cancelled or the input ends. A live source
	// survives receive errors; its error is for what cannot be retried.
	Run(ctx context.Context, h Handler) error
	// Close releases what Open took; it unbinds the groups.
	Close() error
}

// seqTracker turns NFLOG per-instance sequence numbers into a lost-message count.
// The kernel numbers each message of an instance from 0 when the group is bound
// and a whole lost batch shows as a gap, so lost = sum of (gap - 1).
type seqTracker struct {
	next    uint32
	started bool
}

func (s *seqTracker) reset() { *s = seqTracker{} }

// observe returns how many messages were skipped before seq.
func (s *seqTracker) observe(seq uint32) uint64 {
	var lost uint64
	if s.started {
		// A gap shorter than half the number space is loss; anything else is a
		// restart we did not see (the instance was re-created): start over.
		if d := seq - s.next; d < 1<<31 {
			lost = uint64(d)
		}
	} else if seq < 1<<31 {
		// The first message of a fresh binding is number 0: anything before
		// seq was logged before we read it and then lost.
		lost = uint64(seq)
	}
	s.started = true
	s.next = seq + 1
	return lost
}
