package lab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"time"

	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop-lab/lab/craft"
	"golang.org/x/sys/unix"
)

// ConntrackLogSysctls make conntrack log every INVALID TCP packet to NFLOG
// group 0 in a namespace: nf_conntrack_log_invalid=6 (TCP) and nfnetlink_log
// as the default logger of IPv4 and IPv6 (the kernel's own log would
// otherwise write them to the kernel log). nfnetlink_log must be loaded
// (binding any NFLOG group loads it).
var ConntrackLogSysctls = []string{
	"net.netfilter.nf_conntrack_log_invalid=6",
	"net.netfilter.nf_log.2=nfnetlink_log",
	"net.netfilter.nf_log.10=nfnetlink_log",
}

// EnableConntrackLog sets ConntrackLogSysctls in the server namespace, and
// for the reasons scenario: checksums verified (the default) and no pickup of
// connections from a bare ACK (tcp_loose=0), so that a late ACK is dropped
// without any message from conntrack.
func (l *Lab) EnableConntrackLog() error {
	return l.Sysctl(l.Server, append([]string{
		"net.netfilter.nf_conntrack_checksum=1",
		"net.netfilter.nf_conntrack_tcp_loose=0",
	}, ConntrackLogSysctls...)...)
}

// ReasonSend is one crafted packet of the reasons scenario, sent Count
// times, with conntrack's reason for it (none: conntrack logs nothing) and
// the class the exporter must give the drop, both written by hand from the
// kernel's conntrack code and the classification rules.
type ReasonSend struct {
	Desc   string
	Packet craft.Packet
	Count  int
	Reason string // bad_checksum: the TCP checksum is made wrong after it was computed
	Class  string
}

// ReasonKey is a (class, reason) pair of nfdrop_drop_reasons_total.
type ReasonKey struct{ Class, Reason string }

// ReasonSends is the crafted part of the reasons scenario: each packet is
// dropped by the log+drop rule, and conntrack says why (or not).
func ReasonSends(v6 bool) []ReasonSend {
	src, dst := ClientIPv4, ServerIPv4
	if v6 {
		src, dst = ClientIPv6, ServerIPv6
	}
	p := func(sport, dport uint16, flags uint8, seq uint32) craft.Packet {
		pk := craft.Packet{Src: src, Dst: dst, Proto: craft.ProtoTCP, SrcPort: sport, DstPort: dport, Flags: flags, Window: 502, Seq: seq}
		if flags&craft.ACK != 0 {
			pk.Ack = 7000
		}
		return pk
	}
	return []ReasonSend{
		// No entry: a FIN or RST can never create one ("invalid new").
		{"late FIN/ACK, no conntrack entry", p(41001, 443, craft.FIN|craft.ACK, 100), 3, "invalid_new", "teardown"},
		{"late RST, no conntrack entry", p(41002, 443, craft.RST, 200), 1, "invalid_new", "teardown"},
		// Rejected before state tracking ("invalid tcp flag combination").
		{"NULL scan (no flags)", p(41003, 443, 0, 300), 2, "invalid_flags", "probe"},
		// Verified at PREROUTING with nf_conntrack_checksum=1 ("bad checksum").
		{"SYN with a wrong TCP checksum", p(41004, 443, craft.SYN, 400), 2, "bad_checksum", "handshake"},
		// tcp_loose=0: INVALID, but conntrack writes nothing.
		{"late bare ACK (tcp_loose=0)", p(41005, 443, craft.ACK, 500), 2, "none", "teardown"},
		// NEW to a port the ruleset does not allow: conntrack is content.
		{"SYN to closed port 22", p(41006, 22, craft.SYN, 600), 1, "none", "handshake"},
	}
}

// OutOfWindow is the live-connection part of the reasons scenario: one
// segment far beyond the receiver's window on an established connection
// ("SEQ is over upper bound").
var OutOfWindow = ReasonSend{Desc: "segment beyond the window of a live connection", Count: 1, Reason: "seq_over_upper_bound", Class: "teardown"}

// ExpectedReasons returns the drops of the reasons scenario by class and reason.
func ExpectedReasons(v6 bool) map[ReasonKey]float64 {
	m := map[ReasonKey]float64{}
	for _, s := range append(ReasonSends(v6), OutOfWindow) {
		m[ReasonKey{s.Class, s.Reason}] += float64(s.Count)
	}
	return m
}

// RunReasons sends the reasons scenario for one family; progress, if not
// nil, is called before each item.
func (l *Lab) RunReasons(ctx context.Context, v6 bool, progress func(ReasonSend)) error {
	snd, err := l.clientSender()
	if err != nil {
		return err
	}
	defer snd.Close()
	for _, s := range ReasonSends(v6) {
		if progress != nil {
			progress(s)
		}
		if err := sendReason(snd, s); err != nil {
			return fmt.Errorf("%s: %w", s.Desc, err)
		}
	}
	if progress != nil {
		progress(OutOfWindow)
	}
	return l.outOfWindow(ctx, v6, snd)
}

func sendReason(snd *craft.Sender, s ReasonSend) error {
	if s.Reason != "bad_checksum" {
		return snd.Send(s.Packet, s.Count, 0)
	}
	b, err := s.Packet.Bytes()
	if err != nil {
		return err
	}
	ip := 20
	if s.Packet.Src.Is6() {
		ip = 40
	}
	b[ip+16] ^= 0xff // the TCP checksum
	for i := 0; i < s.Count; i++ {
		if err := snd.SendRaw(b); err != nil {
			return err
		}
	}
	return nil
}

// outOfWindow opens a real connection to port 443, lets both sides send
// data, reads the server's sequence numbers and sends, from the client's
// address and port, an ACK whose sequence number is 2^30 beyond what the
// server expects. The connection then ends without a packet that reaches
// the log rule: the server socket is closed in repair mode (silently) and
// the client aborts with an in-window RST.
func (l *Lab) outOfWindow(ctx context.Context, v6 bool, snd *craft.Sender) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	network, srvAddr := "tcp4", ServerIPv4
	if v6 {
		network, srvAddr = "tcp6", ServerIPv6
	}
	ln, err := ListenTCP(l.Server, network, netip.AddrPortFrom(srvAddr, 443).String())
	if err != nil {
		return err
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	cli, err := DialContext(ctx, l.Client, network, netip.AddrPortFrom(srvAddr, 443).String())
	if err != nil {
		return err
	}
	defer cli.Close()
	var srv net.Conn
	select {
	case c, ok := <-accepted:
		if !ok {
			return errors.New("accept failed")
		}
		srv = c
	case <-ctx.Done():
		return ctx.Err()
	}
	defer srv.Close()
	// Data both ways, so that conntrack knows both windows.
	buf := make([]byte, 16)
	deadline := time.Now().Add(5 * time.Second)
	cli.SetDeadline(deadline)
	srv.SetDeadline(deadline)
	if _, err := cli.Write([]byte("ping")); err != nil {
		return err
	}
	if _, err := srv.Read(buf); err != nil {
		return err
	}
	if _, err := srv.Write([]byte("pong")); err != nil {
		return err
	}
	if _, err := cli.Read(buf); err != nil {
		return err
	}
	rcvNxt, sndNxt, err := repairSeqs(srv.(*net.TCPConn))
	if err != nil {
		return fmt.Errorf("reading the server's sequence numbers (TCP_REPAIR): %w", err)
	}
	local := cli.LocalAddr().(*net.TCPAddr).AddrPort()
	pk := craft.Packet{Src: local.Addr().Unmap(), Dst: srvAddr, Proto: craft.ProtoTCP, SrcPort: local.Port(), DstPort: 443,
		Flags: craft.ACK, Window: 502, Seq: rcvNxt + 1<<30, Ack: sndNxt}
	if err := snd.Send(pk, OutOfWindow.Count, 0); err != nil {
		return err
	}
	return cli.(*net.TCPConn).SetLinger(0)
}

// TCP_REPAIR_QUEUE values (include/uapi/linux/tcp.h).
const (
	tcpRecvQueue = 1
	tcpSendQueue = 2
)

// repairSeqs puts a connected socket into TCP repair mode (it sends nothing
// from then on, not even when closed) and returns the next sequence number
// it expects from its peer and the next one it sends.
func repairSeqs(c *net.TCPConn) (rcvNxt, sndNxt uint32, err error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return 0, 0, err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		get := func(queue int) uint32 {
			if serr != nil {
				return 0
			}
			if serr = unix.SetsockoptInt(int(fd), unix.SOL_TCP, unix.TCP_REPAIR_QUEUE, queue); serr != nil {
				return 0
			}
			v, err := unix.GetsockoptInt(int(fd), unix.SOL_TCP, unix.TCP_QUEUE_SEQ)
			serr = err
			return uint32(v)
		}
		if serr = unix.SetsockoptInt(int(fd), unix.SOL_TCP, unix.TCP_REPAIR, 1); serr != nil {
			return
		}
		rcvNxt = get(tcpRecvQueue)
		sndNxt = get(tcpSendQueue)
	}); err != nil {
		return 0, 0, err
	}
	if errors.Is(serr, syscall.EPERM) {
		return 0, 0, fmt.Errorf("%w (needs CAP_NET_ADMIN)", serr)
	}
	return rcvNxt, sndNxt, serr
}
