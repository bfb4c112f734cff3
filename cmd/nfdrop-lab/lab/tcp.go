package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"syscall"
	"time"
)

// TCPRecipe is a real TCP connection (kernel sockets on both sides) from the
// client namespace to a server in the server namespace, ended in one of the
// ways that make its last packets reach the log rule.
type TCPRecipe string

// The recipes. Timings assume the sysctls set by PrepareTCP.
const (
	// A normal request/response; server closes first. No drop expected:
	// the proof that the ruleset lets ordinary visitors through.
	TCPClean TCPRecipe = "clean"
	// Recipe 1: the server closes first, the client ACKs its FIN (conntrack
	// CLOSE_WAIT, shortened to 2 s) and closes only after that entry has
	// expired: its FIN/ACK and the retransmissions are INVALID and dropped.
	TCPCloseWaitLateFIN TCPRecipe = "closewait-late-fin"
	// Recipe 2: the conntrack entry is deleted while ESTABLISHED (as if
	// evicted or flushed), then the client closes: dropped FIN/ACKs.
	TCPCTDeleteLateFIN TCPRecipe = "ctdelete-late-fin"
	// Recipe 4: entry deleted, then the client aborts (SO_LINGER {1,0}):
	// exactly one dropped ACK,RST (an RST is never retransmitted).
	TCPCTDeleteLateRST TCPRecipe = "ctdelete-late-rst"
)

// TCPRecipes lists every recipe, in the order the demo runs them.
var TCPRecipes = []TCPRecipe{TCPClean, TCPCloseWaitLateFIN, TCPCTDeleteLateFIN, TCPCTDeleteLateRST}

// CloseWaitTimeout is the server namespace's shortened conntrack CLOSE_WAIT
// timeout (default 60 s) that recipe 1 outwaits.
const CloseWaitTimeout = 2 * time.Second

// PrepareTCP sets the sysctls the recipes rely on: a short conntrack
// CLOSE_WAIT timeout in the server namespace, and few orphan retries in the
// client namespace, so that a client's dropped FIN/ACK is retransmitted a few
// times (as in production) but gives up within seconds instead of minutes.
func (l *Lab) PrepareTCP() error {
	if err := l.Sysctl(l.Server, "net.netfilter.nf_conntrack_tcp_timeout_close_wait="+strconv.Itoa(int(CloseWaitTimeout/time.Second))); err != nil {
		return err
	}
	return l.Sysctl(l.Client, "net.ipv4.tcp_orphan_retries=3")
}

const (
	request  = "GET / HTTP/1.1\r\nHost: lab\r\n\r\n"
	response = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"
)

// RunTCP runs one recipe against port (443 or 80) over IPv4 (v6 false) or
// IPv6. It returns once the client has closed, plus settle, the time given
// to the drops (retransmissions) to happen; the server side is then aborted
// with an RST, which the firewall never sees (it leaves through OUTPUT), so
// nothing but the recipe's own packets reaches the log rule.
func (l *Lab) RunTCP(ctx context.Context, r TCPRecipe, port int, v6 bool, settle time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	network, srvAddr := "tcp4", ServerIPv4
	if v6 {
		network, srvAddr = "tcp6", ServerIPv6
	}
	ln, err := listenAgain(l.Server, network, netip.AddrPortFrom(srvAddr, uint16(port)).String())
	if err != nil {
		return err
	}
	defer ln.Close()

	type accepted struct {
		c   *net.TCPConn
		err error
	}
	srvDone := make(chan accepted, 1)
	serverClosesFirst := r == TCPClean || r == TCPCloseWaitLateFIN
	go func() {
		c, err := ln.Accept()
		if err != nil {
			srvDone <- accepted{nil, err}
			return
		}
		tc := c.(*net.TCPConn)
		_ = tc.SetDeadline(time.Now().Add(25 * time.Second))
		buf := make([]byte, len(request))
		if _, err := io.ReadFull(tc, buf); err != nil {
			srvDone <- accepted{tc, fmt.Errorf("server read: %w", err)}
			return
		}
		if _, err := tc.Write([]byte(response)); err != nil {
			srvDone <- accepted{tc, fmt.Errorf("server write: %w", err)}
			return
		}
		if serverClosesFirst {
			srvDone <- accepted{nil, tc.Close()}
			return
		}
		srvDone <- accepted{tc, nil}
	}()

	c, err := DialContext(ctx, l.Client, network, netip.AddrPortFrom(srvAddr, uint16(port)).String())
	if err != nil {
		return fmt.Errorf("client dial: %w", err)
	}
	cc := c.(*net.TCPConn)
	defer cc.Close()
	_ = cc.SetDeadline(time.Now().Add(25 * time.Second))
	if _, err := cc.Write([]byte(request)); err != nil {
		return fmt.Errorf("client write: %w", err)
	}
	resp := make([]byte, len(response))
	if _, err := io.ReadFull(cc, resp); err != nil {
		return fmt.Errorf("client read: %w", err)
	}
	var srv accepted
	select {
	case srv = <-srvDone:
	case <-ctx.Done():
		return ctx.Err()
	}
	if srv.err != nil {
		return srv.err
	}
	abortServer := func() {
		if srv.c != nil {
			_ = srv.c.SetLinger(0)
			_ = srv.c.Close()
		}
	}
	defer abortServer()

	switch r {
	case TCPClean:
		if err := readEOF(cc); err != nil {
			return err
		}
		if err := cc.Close(); err != nil {
			return err
		}
	case TCPCloseWaitLateFIN:
		// Reading EOF means the kernel has ACKed the server's FIN: the
		// entry is in CLOSE_WAIT from here.
		if err := readEOF(cc); err != nil {
			return err
		}
		if err := sleepCtx(ctx, CloseWaitTimeout+1500*time.Millisecond); err != nil {
			return err
		}
		if err := cc.Close(); err != nil {
			return err
		}
	case TCPCTDeleteLateFIN, TCPCTDeleteLateRST:
		if err := l.deleteConntrack(port, v6); err != nil {
			return err
		}
		if r == TCPCTDeleteLateRST {
			if err := cc.SetLinger(0); err != nil {
				return err
			}
		}
		if err := cc.Close(); err != nil {
			return err
		}
	default:
		return fmt.Errorf("unknown TCP recipe %q", r)
	}
	return sleepCtx(ctx, settle)
}

// listenAgain listens on the port the previous recipe listened on a moment
// ago. Right after that listener closed, the kernel now and then refuses
// the bind with EADDRINUSE although none of the sockets left on the port
// conflicts (only TIME-WAIT and FIN-WAIT-2 ones, which SO_REUSEADDR lets a
// listener share, as ss shows right after the refusal): the refusal
// passes, so it is tried again for a moment.
func listenAgain(ns, network, addr string) (net.Listener, error) {
	deadline := time.Now().Add(2 * time.Second)
	for {
		ln, err := ListenTCP(ns, network, addr)
		if err == nil || !errors.Is(err, syscall.EADDRINUSE) || time.Now().After(deadline) {
			return ln, err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (l *Lab) deleteConntrack(port int, v6 bool) error {
	fam := "ipv4"
	if v6 {
		fam = "ipv6"
	}
	// conntrack -D prints the deleted entries on stdout and a summary on
	// stderr; it exits 1 when nothing matched, which is a failed recipe.
	_, err := l.Run(l.Server, "conntrack", "-D", "-f", fam, "-p", "tcp", "--dport", strconv.Itoa(port))
	return err
}

func readEOF(c net.Conn) error {
	var b [512]byte
	for i := 0; i < 1000; i++ {
		_, err := c.Read(b[:])
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("client read to EOF: %w", err)
		}
	}
	return errors.New("client read to EOF: too much data")
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
