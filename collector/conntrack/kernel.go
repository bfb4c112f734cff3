package conntrack

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"github.com/mdlayher/netlink"
	"github.com/nfdrop/nfdrop_exporter/collector/internal/nlmsg"
	"github.com/nfdrop/nfdrop_exporter/collector/sysctl"
	"github.com/ti-mo/netfilter"
	"golang.org/x/sys/unix"
)

// Events is a stream of conntrack event datagrams: the kernel's DESTROY
// subscription (the live socket) or a recording of one (ReplayEvents).
type Events interface {
	// Receive waits for the next datagram of netlink messages; it is valid
	// until the next call. A recording returns io.EOF at its end.
	Receive() ([]byte, error)
	// Drops is how many events the kernel could not queue for this stream.
	Drops() (uint64, error)
	Close() error
}

// The event socket is driven directly (not with conntrack.Conn.Listen): the
// library's workers die on the first receive error, ENOBUFS included, and
// block forever on an unbuffered error channel. Here a receive error never
// ends the subscription unless the socket itself is gone, an undecodable
// event is counted and skipped, and lost events are read from the kernel's
// per-socket drop counter.

// eventSocket is a netlink socket joined to the conntrack DESTROY group.
type eventSocket struct {
	c   *netlink.Conn
	rc  syscall.RawConn
	buf []byte

	// results of the last recvfrom, written by recvFn (built once).
	n      int
	errno  syscall.Errno
	recvFn func(fd uintptr) bool
}

func dialEventSocket(netns, rcvbuf int) (*eventSocket, error) {
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: netns})
	if err != nil {
		return nil, fmt.Errorf("open netfilter netlink socket: %w", err)
	}
	// NoENOBUFS: without it one overflow latches the socket "congested" and
	// the kernel drops every event until the queue is fully drained. Lost
	// events are still counted in sk_drops.
	if err := c.SetOption(netlink.NoENOBUFS, true); err != nil {
		c.Close()
		return nil, fmt.Errorf("set NETLINK_NO_ENOBUFS: %w", err)
	}
	if rcvbuf > 0 {
		// SO_RCVBUFFORCE with CAP_NET_ADMIN, else SO_RCVBUF (capped by
		// net.core.rmem_max): a failure only shortens the bursts we survive.
		_ = c.SetReadBuffer(rcvbuf)
	}
	if err := c.JoinGroup(uint32(netfilter.GroupCTDestroy)); err != nil {
		c.Close()
		return nil, fmt.Errorf("join the conntrack DESTROY event group (is nf_conntrack_netlink available?): %w", err)
	}
	rc, err := c.SyscallConn()
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("open netfilter netlink socket: %w", err)
	}
	s := &eventSocket{c: c, rc: rc, buf: make([]byte, 64<<10)}
	s.recvFn = func(fd uintptr) bool {
		n, _, e := syscall.RawSyscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(unsafe.SliceData(s.buf))), uintptr(len(s.buf)),
			uintptr(unix.MSG_TRUNC|unix.MSG_DONTWAIT), 0, 0)
		if e == unix.EAGAIN || e == unix.EINTR {
			return false // wait for the poller
		}
		s.n, s.errno = int(n), e
		return true
	}
	return s, nil
}

// Receive implements Events. An overflow (ENOBUFS, only without
// NETLINK_NO_ENOBUFS) is not an error: the drops are in sk_drops.
func (s *eventSocket) Receive() ([]byte, error) {
	for {
		if err := s.rc.Read(s.recvFn); err != nil {
			return nil, err
		}
		switch {
		case s.errno == unix.ENOBUFS:
			continue
		case s.errno != 0:
			return nil, s.errno
		}
		// A datagram longer than the buffer (never for one event) is cut;
		// its last message fails to walk and is counted undecodable.
		return s.buf[:min(s.n, len(s.buf))], nil
	}
}

func (s *eventSocket) Close() error { return s.c.Close() }

// Drops is the kernel's count of events it could not queue on this socket
// (sk_drops, SO_MEMINFO). Every conntrack event is its own skb, so this is
// the number of lost events.
func (s *eventSocket) Drops() (uint64, error) {
	var mem [unix.SK_MEMINFO_VARS]uint32
	var serr error
	err := s.rc.Control(func(fd uintptr) {
		l := uint32(unsafe.Sizeof(mem))
		_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, fd, unix.SOL_SOCKET, unix.SO_MEMINFO,
			uintptr(unsafe.Pointer(&mem[0])), uintptr(unsafe.Pointer(&l)), 0)
		if e != 0 {
			serr = e
		}
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		return 0, fmt.Errorf("SO_MEMINFO: %w", err)
	}
	return uint64(mem[unix.SK_MEMINFO_DROPS]), nil
}

// eventSocketHolder lets the scrape read the live socket's drop counter and
// Stop close it while the listener is blocked in Receive.
type eventSocketHolder struct {
	mu     sync.Mutex
	s      Events
	closed bool
}

func (h *eventSocketHolder) set(s Events) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return false
	}
	h.s = s
	return true
}

// release forgets s and returns its final drop count.
func (h *eventSocketHolder) release(s Events) uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	n, _ := s.Drops()
	if h.s == s {
		h.s = nil
	}
	_ = s.Close()
	return n
}

func (h *eventSocketHolder) drops() uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.s == nil {
		return 0
	}
	n, _ := h.s.Drops()
	return n
}

func (h *eventSocketHolder) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	if h.s != nil {
		_ = h.s.Close()
	}
}

// listenLoop keeps a DESTROY subscription alive: (re)subscribe, receive
// until the socket fails, retry with backoff.
func (t *Tracker) listenLoop() {
	defer t.wg.Done()
	backoff := time.Second
	first := true
	for {
		select {
		case <-t.stopCh:
			return
		default:
		}
		s, err := t.dialEvents()
		if err == nil && t.looker.Load() == nil && t.cfg.Events == nil {
			var l *ctLooker
			if l, err = dialLooker(t.cfg.NetNS); err != nil {
				s.Close()
			} else {
				t.looker.Store(&lookerRef{l})
			}
		}
		if err != nil {
			t.up.Store(false)
			t.warn("cannot subscribe to conntrack events", err)
			select {
			case <-t.stopCh:
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 30*time.Second)
			continue
		}
		if !t.sock.set(s) {
			s.Close()
			return
		}
		backoff = time.Second
		if first {
			first = false
			// Entries that exist now were created before this listener; with
			// nf_conntrack_events=2 they never emit a DESTROY.
			if n, err := sysctl.ReadUint(filepath.Join(t.cfg.SysctlDir, "nf_conntrack_count")); err == nil {
				t.preexisting.Store(int64(n))
			}
			t.logger.Info("Subscribed to conntrack DESTROY events", "window", t.cfg.Window, "hold", t.cfg.Hold, "max_flows", t.cfg.MaxFlows)
		} else {
			t.logger.Info("Re-subscribed to conntrack DESTROY events")
		}
		t.up.Store(true)
		err = t.receive(s)
		if err == io.EOF {
			// A recording ended: what it held is remembered; stay "up" so
			// that the drops observed next are decided against it.
			<-t.stopCh
			t.sock.release(s)
			return
		}
		t.up.Store(false)
		t.lostBase.Add(t.sock.release(s))
		select {
		case <-t.stopCh:
			return
		default:
		}
		t.logger.Warn("conntrack event socket failed; re-subscribing in 1s", "err", err)
		select {
		case <-t.stopCh:
			return
		case <-time.After(time.Second):
		}
	}
}

// receive reads events until the stream fails for good (or ends: io.EOF).
func (t *Tracker) receive(s Events) error {
	for {
		b, err := s.Receive()
		if err != nil {
			var oe *netlink.OpError
			if errors.As(err, &oe) && (oe.Timeout() || errors.Is(oe.Err, unix.EINTR)) {
				continue
			}
			return err
		}
		ms := nlmsg.NewMessages(b)
		for ms.Next() {
			t.handleMessage(ms.Type, ms.Data)
		}
		if ms.Bad {
			t.undecodable.Add(1)
		}
	}
}

// handleMessage decodes one event and remembers a destroyed TCP flow.
func (t *Tracker) handleMessage(typ uint16, data []byte) {
	var ev destroyEvent
	if !decodeEvent(typ, data, &ev) {
		t.undecodable.Add(1)
		return
	}
	if !ev.destroy {
		return
	}
	t.destroys.Add(1)
	if ev.proto != unix.IPPROTO_TCP {
		return
	}
	// With nf_conntrack_timestamp=1 the kernel stamps when it destroyed the
	// entry; otherwise the arrival of the event is the best we have (it is
	// read within milliseconds unless events are being lost anyway).
	ended := ev.stop
	if ended == 0 {
		ended = t.now().UnixNano()
	}
	t.recordDestroy(&ev.tuple, ended)
}

// NewKernelLooker opens a Looker on the conntrack table of the network
// namespace netns (a file descriptor; 0 = the caller's).
func NewKernelLooker(netns int) (Looker, func() error, error) {
	l, err := dialLooker(netns)
	if err != nil {
		return nil, nil, err
	}
	return l, l.Close, nil
}
