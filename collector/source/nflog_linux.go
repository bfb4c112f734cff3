//go:build linux

package source

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	nflog "github.com/florianl/go-nflog/v2"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Config tunes the kernel side of one NFLOG binding.
type Config struct {
	Group          uint16
	CopyRange      uint32        // bytes of each packet copied (NFULA_CFG_MODE copy_range)
	QueueThreshold uint32        // messages per kernel batch (qthreshold); 0 keeps the kernel default
	FlushTimeout   time.Duration // longest a logged packet waits in a kernel batch; 0 keeps the default
	BatchSize      uint32        // kernel batch buffer (nlbufsiz) in bytes; 0 keeps the default
	ReceiveBuffer  int           // socket receive buffer in bytes (SO_RCVBUFFORCE); 0 keeps the default
	NetNS          int           // fd of the network namespace to bind in; 0 = the process' own
	// ProbeConntrackAttrs: find out once bound whether the kernel can add
	// conntrack attributes to messages (conntrack reasons, ctlog).
	ProbeConntrackAttrs bool
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
)

// Live reads one NFLOG group from the kernel.
//
// go-nflog opens the NETLINK_NETFILTER socket (and owns its options); the
// binding and the receive loop are done here because go-nflog's own loop costs
// ~30 allocations per message, reads every batch twice, cannot set the kernel
// batch size (nlbufsiz) and stops on the first ENOBUFS (reference §1). Reading
// the library's own socket directly keeps the per-packet path allocation-free.
type Live struct {
	cfg    Config
	logger *slog.Logger
	mu     sync.Mutex // guards nf against the cancellation callback
	nf     *nflog.Nflog
	rc     syscall.RawConn
	buf    []byte
	seq    seqTracker
	msg    Message
	layout attrLayout // of the last message walked: the next ones are read by it

	conntrackAttrs, conntrackProbed atomic.Bool // conntrack reasons (ctlog): what probeConntrackAttrs found

	// results of the last recv, written by recvFn so the closure is built once.
	n      int
	errno  syscall.Errno
	recvFn func(fd uintptr) bool
}

// NewLive opens the NFLOG socket and binds the group. Errors are *BindError
// with an operator-facing explanation.
func NewLive(cfg Config, logger *slog.Logger) (*Live, error) {
	l := &Live{cfg: cfg, logger: logger, buf: make([]byte, receiveBufferLen)}
	l.recvFn = func(fd uintptr) bool {
		// MSG_DONTWAIT: this recvfrom never blocks, so it is a raw syscall.
		// Copying a 128 KiB batch takes longer than sysmon's 20 µs: as a
		// normal syscall the runtime would take the P away mid-copy and wake
		// a second thread to poll the network, a futex wake-up and two
		// context switches per datagram.
		n, _, e := syscall.RawSyscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafePointer(l.buf)), uintptr(len(l.buf)),
			uintptr(unix.MSG_TRUNC|unix.MSG_DONTWAIT), 0, 0)
		if e == unix.EAGAIN || e == unix.EINTR {
			return false
		}
		l.n, l.errno = int(n), e
		return true
	}
	return l, nil
}

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

// open creates the socket, binds the group and configures the instance, and
// returns the packets that arrived before the kernel acknowledged the binding
// to h (none are dropped).
func (l *Live) open(h Handler) error {
	nf, err := nflog.Open(&nflog.Config{Group: l.cfg.Group, Copymode: nflog.CopyPacket, Bufsize: l.cfg.CopyRange, Flags: nflog.FlagSeq, NetNS: l.cfg.NetNS})
	if err != nil {
		return l.bindError(err)
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
		return l.bindError(err)
	}
	l.mu.Lock()
	l.nf, l.rc = nf, rc
	l.mu.Unlock()
	l.seq.reset()
	if err := l.configure(h); err != nil {
		l.close()
		return l.bindError(err)
	}
	return nil
}

// configure binds the group and sets mode, batching and sequence numbers in a
// single request, so the instance never runs with half its settings.
func (l *Live) configure(h Handler) error {
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
	// Global sequence numbers order the messages of every group in one
	// sequence: conntrack's reason for a packet is numbered before the drop
	// rule's message for it (conntrack reasons, ctlog).
	ae.Uint16(cfgFlags, nflog.FlagSeq|nflog.FlagGlobal)
	attrs, err := ae.Encode()
	if err != nil {
		return err
	}
	if err := l.request(h, attrs); err != nil {
		return err
	}
	if l.cfg.ProbeConntrackAttrs {
		l.probeConntrackAttrs(h)
	}
	return nil
}

// probeConntrackAttrs finds out whether the kernel can add a packet's
// conntrack entry to its messages (NFULNL_CFG_F_CONNTRACK, which needs a
// kernel built with CONFIG_NETFILTER_NETLINK_GLUE_CT), then turns it off
// again: an INVALID packet never has an entry, so the exporter never relies
// on it; the answer is only reported.
func (l *Live) probeConntrackAttrs(h Handler) {
	flags := func(f uint16) error {
		ae := netlink.NewAttributeEncoder()
		ae.ByteOrder = binary.BigEndian
		ae.Uint16(cfgFlags, f)
		attrs, err := ae.Encode()
		if err != nil {
			return err
		}
		return l.request(h, attrs)
	}
	err := flags(nflog.FlagSeq | nflog.FlagGlobal | nflog.FlagConntrack)
	if errors.Is(err, unix.EAGAIN) {
		// The kernel loaded the module that provides them: ask again.
		err = flags(nflog.FlagSeq | nflog.FlagGlobal | nflog.FlagConntrack)
	}
	l.conntrackAttrs.Store(err == nil)
	l.conntrackProbed.Store(true)
	if err == nil {
		if err := flags(nflog.FlagSeq | nflog.FlagGlobal); err != nil {
			l.logger.Warn("could not turn conntrack attributes off again", "err", err)
		}
	}
}

// ConntrackAttrs reports whether the kernel accepted NFULNL_CFG_F_CONNTRACK
// (supported), and whether that was probed at all.
func (l *Live) ConntrackAttrs() (supported, probed bool) {
	return l.conntrackAttrs.Load(), l.conntrackProbed.Load()
}

// request sends one configuration request for the group and reads until its
// acknowledgement; log messages that come first are handled like any other.
func (l *Live) request(h Handler, attrs []byte) error {
	req := netlink.Message{
		Header: netlink.Header{
			Type:  netlink.HeaderType(nfnlSubsysULOG<<8 | nfulnlMsgConfig),
			Flags: netlink.Request | netlink.Acknowledge,
		},
		Data: append([]byte{unix.AF_UNSPEC, 0, byte(l.cfg.Group >> 8), byte(l.cfg.Group)}, attrs...),
	}
	sent, err := l.nf.Con.Send(req)
	if err != nil {
		return err
	}
	// Read until the acknowledgement; log messages that come first are real
	// packets and are handled like any other.
	deadline := time.Now().Add(5 * time.Second)
	for {
		if err := l.nf.Con.SetReadDeadline(deadline); err != nil {
			return err
		}
		ack, err := l.receive(h, sent.Header.Sequence)
		if err != nil {
			return err
		}
		if ack {
			return l.nf.Con.SetReadDeadline(time.Time{})
		}
	}
}

// receive reads one datagram and dispatches its messages. With ackSeq != 0 it
// reports whether the acknowledgement of that request was among them.
func (l *Live) receive(h Handler, ackSeq uint32) (acked bool, err error) {
	if err := l.rc.Read(l.recvFn); err != nil {
		return false, err
	}
	if l.errno != 0 {
		return false, l.errno
	}
	n := l.n
	if n > len(l.buf) {
		h.ReceiveError(l.cfg.Group, ReasonTruncated)
		n = len(l.buf)
	}
	b := l.buf[:n]
	for len(b) >= unix.NLMSG_HDRLEN {
		ml := int(binary.NativeEndian.Uint32(b))
		if ml < unix.NLMSG_HDRLEN || ml > len(b) {
			h.ReceiveError(l.cfg.Group, ReasonMessage)
			break
		}
		typ := binary.NativeEndian.Uint16(b[4:])
		seq := binary.NativeEndian.Uint32(b[8:])
		data := b[unix.NLMSG_HDRLEN:ml]
		switch {
		case typ == unix.NLMSG_ERROR:
			if len(data) >= 4 && seq == ackSeq && ackSeq != 0 {
				if code := int32(binary.NativeEndian.Uint32(data)); code != 0 {
					return false, syscall.Errno(-code)
				}
				acked = true
			}
		case typ == nfnlSubsysULOG<<8|nfulnlMsgPacket:
			l.dispatch(h, data)
		}
		al := (ml + unix.NLMSG_ALIGNTO - 1) &^ (unix.NLMSG_ALIGNTO - 1)
		if al >= len(b) {
			break
		}
		b = b[al:]
	}
	h.Flush(l.cfg.Group)
	return acked, nil
}

// dispatch handles one NFULNL_MSG_PACKET: nfgenmsg then attributes.
func (l *Live) dispatch(h Handler, data []byte) {
	if len(data) < 4 {
		h.ReceiveError(l.cfg.Group, ReasonMessage)
		return
	}
	resetMessage(&l.msg, l.cfg.Group, data[0])
	if !l.layout.parse(data[4:], &l.msg) {
		if err := parseAttrs(data[4:], false, &l.msg, &l.layout); err != nil {
			// Count the packet anyway (it will be malformed): the kernel logged it.
			h.ReceiveError(l.cfg.Group, ReasonMessage)
		}
	}
	if l.msg.HasSeq {
		if lost := l.seq.observe(l.msg.Seq); lost > 0 {
			h.Lost(l.cfg.Group, lost)
		}
	}
	h.Packet(&l.msg)
}

// Run reads until ctx is cancelled, re-opening the socket after any error that
// is not a plain overflow. It returns nil on cancellation; binding errors on the
// first attempt are returned so that misconfiguration stops the exporter.
func (l *Live) Run(ctx context.Context, h Handler) error {
	stop := context.AfterFunc(ctx, func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.nf != nil {
			l.nf.Con.SetReadDeadline(time.Unix(1, 0))
		}
	})
	defer stop()
	defer l.close()
	backoff := time.Second
	for ctx.Err() == nil {
		if l.nf == nil {
			if err := l.open(h); err != nil {
				l.logger.Error("re-binding NFLOG group failed", "group", l.cfg.Group, "err", err, "retry_in", backoff)
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(backoff):
				}
				backoff = min(2*backoff, 30*time.Second)
				continue
			}
			if ctx.Err() != nil {
				// Cancelled while binding: configure cleared the deadline the
				// cancellation set, so the next read would block forever.
				return nil
			}
			backoff = time.Second
			h.Bound(l.cfg.Group, true)
			l.logger.Info("NFLOG group re-bound", "group", l.cfg.Group)
		}
		_, err := l.receive(h, 0)
		switch {
		case err == nil:
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, unix.ENOBUFS):
			h.ReceiveError(l.cfg.Group, ReasonENOBUFS)
		default:
			h.ReceiveError(l.cfg.Group, ReasonOther)
			h.Bound(l.cfg.Group, false)
			l.logger.Error("NFLOG receive failed; re-opening the socket", "group", l.cfg.Group, "err", err)
			l.close()
		}
	}
	return nil
}

// Start binds the group once, so that configuration errors surface before the
// exporter starts serving. Run then reads from this binding.
func (l *Live) Start(h Handler) error {
	if err := l.open(h); err != nil {
		return err
	}
	h.Bound(l.cfg.Group, true)
	return nil
}

// Close releases the socket, which unbinds the group.
func (l *Live) Close() { l.close() }

func (l *Live) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.nf == nil {
		return
	}
	// Closing the socket destroys the instance (NETLINK_URELEASE), which unbinds
	// the group; an explicit UNBIND would race with queued log batches.
	l.nf.Close()
	l.nf, l.rc = nil, nil
}

// bindError maps kernel answers to what the operator should do.
func (l *Live) bindError(err error) error {
	g := l.cfg.Group
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
