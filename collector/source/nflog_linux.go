//go:build linux

package source

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/nfdrop/nfdrop_exporter/collector/classify"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	nflog "github.com/florianl/go-nflog/v2"
	"github.com/jpillora/backoff"
	"github.com/mdlayher/netlink"
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

// New returns the source cfg describes: a replay of cfg.ReplayFile, or live
// readers of cfg.Groups, one socket each.
func New(cfg Config, logger *slog.Logger) (Source, error) {
	if len(cfg.Groups) == 0 {
		return nil, errors.New("no NFLOG group configured")
	}
	if cfg.ReplayFile != "" {
		return &Replay{Path: cfg.ReplayFile, Groups: cfg.Groups}, nil
	}
	m := &multi{}
	for _, g := range cfg.Groups {
		m.live = append(m.live, NewLive(g, cfg, logger.With("group", g)))
	}
	return m, nil
}

// ErrNoNetAdmin is returned by Open of a live source without CAP_NET_ADMIN.
var ErrNoNetAdmin = errors.New("nfdrop_exporter needs CAP_NET_ADMIN to bind NFLOG groups: run it as root or grant the capability (systemd AmbientCapabilities=CAP_NET_ADMIN, or setcap cap_net_admin+ep on the binary)")

// multi is the live source of several groups: one reader (and goroutine) each.
type multi struct{ live []*Live }

func (m *multi) Open(h Handler) error {
	if !HasNetAdmin() {
		return ErrNoNetAdmin
	}
	for i, l := range m.live {
		if err := l.Open(h); err != nil {
			for _, o := range m.live[:i] {
				o.Close()
			}
			return err
		}
		l.logger.Info("Bound NFLOG group")
	}
	return nil
}

func (m *multi) Run(ctx context.Context, h Handler) error {
	var wg sync.WaitGroup
	errs := make([]error, len(m.live))
	for i, l := range m.live {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = l.Run(ctx, h)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (m *multi) Close() error {
	for _, l := range m.live {
		l.Close()
	}
	return nil
}

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

// BindError explains why a group could not be bound, in one sentence that says what to do.
type BindError struct {
	Group uint16
	Err   error
	Hint  string
}

func (e *BindError) Error() string {
	return fmt.Sprintf("cannot bind NFLOG group %d: %s (%v)", e.Group, e.Hint, e.Err)
}

func (e *BindError) Unwrap() error { return e.Err }

// open binds the group through l.dial and makes the result the current conn.
func (l *Live) open(h Handler) error {
	l.seq.reset()
	c, err := l.dial(h)
	if err != nil {
		return err
	}
	l.mu.Lock()
	l.c = c
	l.mu.Unlock()
	return nil
}

// openSocket creates the socket, binds the group and configures the
// instance, and hands the packets that arrived before the kernel
// acknowledged the binding to h (none are dropped).
func (l *Live) openSocket(h Handler) (conn, error) {
	nf, err := nflog.Open(&nflog.Config{Group: l.group, Copymode: nflog.CopyPacket, Bufsize: l.cfg.CopyRange, Flags: nflog.FlagSeq, NetNS: l.cfg.NetNS})
	if err != nil {
		return nil, l.bindError(err)
	}
	if l.cfg.ReceiveBuffer > 0 {
		if err := nf.Con.SetReadBuffer(l.cfg.ReceiveBuffer); err != nil {
			l.logger.Warn("could not set the socket receive buffer", "bytes", l.cfg.ReceiveBuffer, "err", err)
		}
	}
	// Without NETLINK_NO_ENOBUFS one overflow makes the kernel drop every batch
	// until the queue is empty; with it only the batches that did not fit are lost.
	if err := nf.SetOption(netlink.NoENOBUFS, true); err != nil {
		l.logger.Warn("could not set NETLINK_NO_ENOBUFS", "err", err)
	}
	rc, err := nf.Con.SyscallConn()
	if err != nil {
		nf.Close()
		return nil, l.bindError(err)
	}
	c := newSocketConn(nf, rc)
	if err := l.configure(c, h); err != nil {
		c.close()
		return nil, l.bindError(err)
	}
	return c, nil
}

// configure binds the group and sets mode, batching and sequence numbers in a
// single request, so the instance never runs with half its settings.
func (l *Live) configure(c conn, h Handler) error {
	ae := netlink.NewAttributeEncoder()
	ae.ByteOrder = binary.BigEndian // NFULA_CFG_* values are network order
	ae.Bytes(cfgCmd, []byte{cmdBind})
	mode := make([]byte, 6)
	binary.BigEndian.PutUint32(mode, l.cfg.CopyRange)
	mode[4] = nflog.CopyPacket
	ae.Bytes(cfgMode, mode)
	if l.cfg.BatchSize > 0 {
		ae.Uint32(cfgNlbufsiz, min(l.cfg.BatchSize, maxKernelBatch))
	}
	if t := uint32(l.cfg.FlushTimeout / (10 * time.Millisecond)); t > 0 {
		ae.Uint32(cfgTimeout, t)
	}
	if l.cfg.QueueThreshold > 0 {
		ae.Uint32(cfgQthresh, l.cfg.QueueThreshold)
	}
	// Global sequence numbers put the messages of every group in one order:
	// conntrack's reason for a packet is numbered before the drop rule's
	// message for it.
	ae.Uint16(cfgFlags, nflog.FlagSeq|nflog.FlagGlobal)
	attrs, err := ae.Encode()
	if err != nil {
		return err
	}
	if err := l.request(c, h, attrs); err != nil {
		return err
	}
	if p := l.cfg.ProbeConntrackAttrs; p != nil && p.Group == l.group && !l.conntrackProbed.Load() {
		l.probeConntrackAttrs(c, h)
	}
	return nil
}

// probeConntrackAttrs finds out whether the kernel can add a packet's
// conntrack entry to its messages (NFULNL_CFG_F_CONNTRACK, which needs a
// kernel built with CONFIG_NETFILTER_NETLINK_GLUE_CT), then turns it off
// again: an INVALID packet never has an entry, so the exporter never relies
// on it; the answer is only reported.
func (l *Live) probeConntrackAttrs(c conn, h Handler) {
	flags := func(f uint16) error {
		ae := netlink.NewAttributeEncoder()
		ae.ByteOrder = binary.BigEndian
		ae.Uint16(cfgFlags, f)
		attrs, err := ae.Encode()
		if err != nil {
			return err
		}
		return l.request(c, h, attrs)
	}
	err := flags(nflog.FlagSeq | nflog.FlagGlobal | nflog.FlagConntrack)
	if errors.Is(err, unix.EAGAIN) {
		// The kernel loaded the module that provides them: ask again.
		err = flags(nflog.FlagSeq | nflog.FlagGlobal | nflog.FlagConntrack)
	}
	l.conntrackProbed.Store(true)
	l.cfg.ProbeConntrackAttrs.Report(err == nil)
	if err == nil {
		if err := flags(nflog.FlagSeq | nflog.FlagGlobal); err != nil {
			l.logger.Warn("could not turn conntrack attributes off again", "err", err)
		}
	}
}

// request sends one configuration request for the group and reads until its
// acknowledgement; log messages that come first are real packets and are
// handled like any other.
func (l *Live) request(c conn, h Handler, attrs []byte) error {
	req := netlink.Message{
		Header: netlink.Header{
			Type:  netlink.HeaderType(nfnlSubsysULOG<<8 | nfulnlMsgConfig),
			Flags: netlink.Request | netlink.Acknowledge,
		},
		Data: append([]byte{unix.AF_UNSPEC, 0, byte(l.group >> 8), byte(l.group)}, attrs...),
	}
	sent, err := c.send(req)
	if err != nil {
		return err
	}
	if err := c.setReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		return err
	}
	// Cleared on every return: a refused request (the conntrack-attributes
	// probe) must not leave the receive loop a deadline that ends it later.
	defer c.setReadDeadline(time.Time{})
	for {
		n, err := c.recv(l.buf)
		if err != nil {
			return err
		}
		ack, err := l.datagram(h, n, sent.Header.Sequence)
		if err != nil || ack {
			return err
		}
	}
}

// receive reads one datagram from the current conn and dispatches its messages.
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
func (l *Live) bindError(err error) error {
	g := l.group
	var hint string
	switch {
	case errors.Is(err, unix.EPERM) || strings.Contains(err.Error(), "operation not permitted"):
		if !HasNetAdmin() {
			hint = "the exporter lacks CAP_NET_ADMIN; run it as root or grant the capability (AmbientCapabilities=CAP_NET_ADMIN in systemd, setcap cap_net_admin+ep on the binary)"
		} else {
			hint = fmt.Sprintf("the group is already bound by another process in this network namespace (usually ulogd2, or tcpdump -i nflog:%d); stop it or pick another --nflog.group", g)
		}
	case errors.Is(err, unix.EPROTONOSUPPORT), errors.Is(err, unix.EOPNOTSUPP), errors.Is(err, unix.ENOENT):
		hint = "the kernel has no nfnetlink_log; load it with 'modprobe nfnetlink_log' (CONFIG_NETFILTER_NETLINK_LOG)"
	case errors.Is(err, unix.EBUSY):
		hint = "this exporter was given the same --nflog.group twice"
	default:
		hint = "check that nfnetlink_log is available and the exporter has CAP_NET_ADMIN"
	}
	return &BindError{Group: g, Err: err, Hint: hint}
}

// HasNetAdmin reports whether the process holds CAP_NET_ADMIN in its effective set.
func HasNetAdmin() bool {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return true // cannot tell; let the kernel decide
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			var caps uint64
			if _, err := fmt.Sscanf(strings.TrimSpace(v), "%x", &caps); err != nil {
				return true
			}
			return caps&(1<<unix.CAP_NET_ADMIN) != 0
		}
	}
	return true
}
