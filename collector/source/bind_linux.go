//go:build linux

package source

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	nflog "github.com/florianl/go-nflog/v2"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

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
