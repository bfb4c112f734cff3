//go:build linux

package source

import (
	"context"
	"encoding/binary"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	nflog "github.com/florianl/go-nflog/v2"
	"github.com/jpillora/backoff"
	"github.com/mdlayher/netlink"
	"github.com/nfdrop/nfdrop_exporter/collector/classify"
	"github.com/nfdrop/nfdrop_exporter/collector/internal/nlmsg"
	"golang.org/x/sys/unix"
)

// Config says what New reads: the groups, and either the kernel settings
// of their bindings or a capture to replay instead.
type Config struct {
	Groups         []uint16
	ReplayFile     string        // if set, replay this NFLOG capture instead of binding
	CopyRange      uint32        // bytes of each packet copied (NFULA_CFG_MODE copy_range)
	QueueThreshold uint32        // messages per kernel batch (qthreshold); 0 keeps the kernel default
	FlushTimeout   time.Duration // longest a logged packet waits in a kernel batch; 0 keeps the default
	BatchSize      uint32        // kernel batch buffer (nlbufsiz) in bytes; 0 keeps the default
	ReceiveBuffer  int           // socket receive buffer in bytes (SO_RCVBUFFORCE); 0 keeps the default
	NetNS          int           // fd of the network namespace to bind in; 0 = the process' own
	// ProbeConntrackAttrs, if set, finds out once on its group whether the
	// kernel can add conntrack attributes to messages.
	ProbeConntrackAttrs *ConntrackAttrsProbe
}

// ConntrackAttrsProbe asks, once Group is bound, whether the kernel can add a
// packet's conntrack entry to its messages. The answer is only reported: an
// INVALID packet never has an entry, so nothing relies on it.
type ConntrackAttrsProbe struct {
	Group  uint16
	Report func(supported bool)
}

// Netfilter netlink constants not exported by go-nflog.
const (
	nfnlSubsysULOG   = 4
	nfulnlMsgPacket  = 0
	nfulnlMsgConfig  = 1
	cfgCmd           = 1
	cfgMode          = 2
	cfgNlbufsiz      = 3
	cfgTimeout       = 4
	cfgQthresh       = 5
	cfgFlags         = 6
	cmdBind          = 1
	cmdUnbind        = 2
	maxKernelBatch   = 131072 // NFULNL_NLBUFSIZ_MAX
	receiveBufferLen = 256 << 10
	// maxDrain bounds the datagrams read from a failed socket before it is
	// closed: all it can hold at the default receive buffer, while a flood
	// cannot keep the reader draining forever.
	maxDrain = 1024
)

// Re-binding after a receive error: at once the first time, then with
// exponential backoff while errors follow each other without a good read.
const (
	rebindMinBackoff = 100 * time.Millisecond
	rebindMaxBackoff = 10 * time.Second
)

// Live reads one NFLOG group from the kernel.
//
// go-nflog opens the NETLINK_NETFILTER socket (and owns its options); the
// binding and the receive loop are done here because go-nflog's own loop costs
// ~30 allocations per message, reads every batch twice, cannot set the kernel
// batch size (nlbufsiz) and stops on the first ENOBUFS. Reading
// the library's own socket directly keeps the per-packet path allocation-free.
type Live struct {
	group  uint16         // the NFLOG group number bound
	id     classify.Group // the group as the handler knows it
	cfg    Config
	logger *slog.Logger
	mu     sync.Mutex // guards c against the cancellation callback
	c      conn       // nil while not bound
	dial   func(h Handler) (conn, error)
	buf    []byte
	seq    seqTracker
	msg    Message
	layout attrLayout // of the last message walked: the next ones are read by it

	conntrackProbed atomic.Bool // probeConntrackAttrs ran: a re-bind does not ask again
}

// conn is what a Live reads datagrams from: the group's netlink socket, or
// byte slices in tests.
type conn interface {
	// recv waits for the next datagram and reads it into b; n > len(b)
	// says it was truncated to len(b).
	recv(b []byte) (n int, err error)
	// recvQueued reads a datagram only if one is already queued.
	recvQueued(b []byte) (n int, ok bool, err error)
	// setReadDeadline makes a waiting or later recv fail once t has passed.
	setReadDeadline(t time.Time) error
	// send sends a request and returns it as sent (with its sequence number).
	send(m netlink.Message) (netlink.Message, error)
	close() error
}

// NewLive returns a reader of one group with the kernel settings of cfg
// (its Groups and ReplayFile are not used). Open binds it.
func NewLive(group uint16, cfg Config, logger *slog.Logger) *Live {
	l := &Live{group: group, id: classify.NFLOGGroup(group), cfg: cfg, logger: logger, buf: make([]byte, receiveBufferLen)}
	l.dial = l.openSocket
	return l
}

// socketConn is the conn of a bound NFLOG socket.
type socketConn struct {
	nf *nflog.Nflog
	rc syscall.RawConn

	// The arguments and results of the last recv, read and written by the
	// closures built once in newSocketConn.
	b       []byte
	n       int
	errno   syscall.Errno
	queued  bool
	recvFn  func(fd uintptr) bool
	drainFn func(fd uintptr)
}

func newSocketConn(nf *nflog.Nflog, rc syscall.RawConn) *socketConn {
	s := &socketConn{nf: nf, rc: rc}
	s.recvFn = func(fd uintptr) bool {
		// MSG_DONTWAIT: this recvfrom never blocks, so it is a raw syscall.
		// Copying a 128 KiB batch takes longer than sysmon's 20 µs: as a
		// normal syscall the runtime would take the P away mid-copy and wake
		// a second thread to poll the network, a futex wake-up and two
		// context switches per datagram.
		n, _, e := syscall.RawSyscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafePointer(s.b)), uintptr(len(s.b)),
			uintptr(unix.MSG_TRUNC|unix.MSG_DONTWAIT), 0, 0)
		if e == unix.EAGAIN || e == unix.EINTR {
			return false
		}
		s.n, s.errno = int(n), e
		return true
	}
	// Control, not Read: it ignores the read deadline, which has usually
	// expired when a failed socket is drained.
	s.drainFn = func(fd uintptr) { s.queued = s.recvFn(fd) }
	return s
}

func (s *socketConn) recv(b []byte) (int, error) {
	s.b = b
	if err := s.rc.Read(s.recvFn); err != nil {
		return 0, err
	}
	if s.errno != 0 {
		return 0, s.errno
	}
	return s.n, nil
}

func (s *socketConn) recvQueued(b []byte) (int, bool, error) {
	s.b, s.queued = b, false
	if err := s.rc.Control(s.drainFn); err != nil {
		return 0, false, err
	}
	if !s.queued {
		return 0, false, nil
	}
	if s.errno != 0 {
		return 0, false, s.errno
	}
	return s.n, true, nil
}

func (s *socketConn) setReadDeadline(t time.Time) error { return s.nf.Con.SetReadDeadline(t) }

func (s *socketConn) send(m netlink.Message) (netlink.Message, error) { return s.nf.Con.Send(m) }

// close destroys the kernel's NFLOG instance (NETLINK_URELEASE), which
// unbinds the group; an explicit UNBIND would race with queued log batches.
func (s *socketConn) close() error { return s.nf.Close() }

func (l *Live) receive(h Handler) error {
	n, err := l.c.recv(l.buf)
	if err != nil {
		return err
	}
	_, err = l.datagram(h, n, 0)
	return err
}

// datagram dispatches the messages of the n-byte datagram in l.buf. With
// ackSeq != 0 it reports whether the acknowledgement of that request was
// among them, and the error the kernel answered it with.
func (l *Live) datagram(h Handler, n int, ackSeq uint32) (acked bool, err error) {
	if n > len(l.buf) {
		h.ReceiveError(l.id, ReasonTruncated)
		n = len(l.buf)
	}
	ms := nlmsg.NewMessages(l.buf[:n])
	for ms.Next() {
		switch ms.Type {
		case unix.NLMSG_ERROR:
			if len(ms.Data) >= 4 && ms.Seq == ackSeq && ackSeq != 0 {
				if code := int32(binary.NativeEndian.Uint32(ms.Data)); code != 0 {
					return false, syscall.Errno(-code)
				}
				acked = true
			}
		case nfnlSubsysULOG<<8 | nfulnlMsgPacket:
			l.dispatch(h, ms.Data)
		}
	}
	if ms.Bad {
		h.ReceiveError(l.id, ReasonMessage)
	}
	h.Flush(l.id)
	return acked, nil
}

// dispatch handles one NFULNL_MSG_PACKET: nfgenmsg then attributes.
func (l *Live) dispatch(h Handler, data []byte) {
	if len(data) < 4 {
		h.ReceiveError(l.id, ReasonMessage)
		return
	}
	resetMessage(&l.msg, l.id, data[0])
	if !l.layout.parse(data[4:], &l.msg) {
		if err := parseAttrs(data[4:], false, &l.msg, &l.layout); err != nil {
			// Count the packet anyway (it will be malformed): the kernel logged it.
			h.ReceiveError(l.id, ReasonMessage)
		}
	}
	if l.msg.HasSeq {
		if lost := l.seq.observe(l.msg.Seq); lost > 0 {
			h.Lost(l.id, lost)
		}
	}
	h.Packet(&l.msg)
}

// Run reads until ctx is cancelled. After any receive error but a plain
// overflow it reads what the socket still holds, closes it and binds again
// (Handler.Rebind): at once the first time, then with backoff from 100 ms to
// 10 s while errors follow each other without a good read. It returns nil on
// cancellation. Open must have succeeded.
func (l *Live) Run(ctx context.Context, h Handler) error {
	stop := context.AfterFunc(ctx, func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.c != nil {
			l.c.setReadDeadline(time.Unix(1, 0))
		}
	})
	defer stop()
	defer l.Close()
	bo := &backoff.Backoff{Min: rebindMinBackoff, Max: rebindMaxBackoff, Factor: 2}
	failing := false // the last re-bind has not been followed by a good read yet
	for ctx.Err() == nil {
		if l.c == nil {
			if failing {
				d := bo.Duration()
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(d):
				}
			}
			failing = true
			if err := l.open(h); err != nil {
				l.logger.Error("re-binding NFLOG group failed", "err", err, "retry_in", bo.ForAttempt(bo.Attempt()))
				continue
			}
			if ctx.Err() != nil {
				// Cancelled while binding: configure cleared the deadline the
				// cancellation set, so the next read would block forever.
				return nil
			}
			h.Bound(l.id, true)
			l.logger.Info("NFLOG group re-bound")
		}
		err := l.receive(h)
		switch {
		case err == nil:
			if failing {
				failing = false
				bo.Reset()
			}
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, unix.ENOBUFS):
			h.ReceiveError(l.id, ReasonENOBUFS)
		default:
			h.ReceiveError(l.id, ReasonOther)
			l.logger.Error("NFLOG receive failed; re-opening the socket", "err", err)
			l.drain(h)
			h.Bound(l.id, false)
			h.Rebind(l.id)
			l.Close()
		}
	}
	return nil
}

// drain dispatches the datagrams still queued in a failed socket, which
// closing it would destroy uncounted. It stops at the first failure.
func (l *Live) drain(h Handler) {
	for i := 0; i < maxDrain; i++ {
		n, ok, err := l.c.recvQueued(l.buf)
		if err != nil || !ok {
			return
		}
		l.datagram(h, n, 0)
	}
}

// Open binds the group, so that configuration errors surface before the
// exporter starts serving. Run then reads from this binding. Errors are
// *BindError with an operator-facing explanation.
func (l *Live) Open(h Handler) error {
	if err := l.open(h); err != nil {
		return err
	}
	h.Bound(l.id, true)
	return nil
}

// Close releases the socket, which unbinds the group.
func (l *Live) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.c == nil {
		return nil
	}
	err := l.c.close()
	l.c = nil
	return err
}

// bindError maps kernel answers to what the operator should do.
