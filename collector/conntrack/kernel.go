package conntrack

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/mdlayher/netlink"
	"github.com/ti-mo/netfilter"
	"golang.org/x/sys/unix"
)

// The event socket is driven directly (not with conntrack.Conn.Listen): the
// library's workers die on the first receive error, ENOBUFS included, and
// block forever on an unbuffered error channel (reference §0.16). Here a
// receive error never ends the subscription unless the socket itself is gone,
// an undecodable event is counted and skipped, and lost events are read from
// the kernel's per-socket drop counter.

// eventSocket is a netlink socket joined to the conntrack DESTROY group.
type eventSocket struct {
	c *netlink.Conn
}

func dialEventSocket(netns, rcvbuf int) (*eventSocket, error) {
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: netns})
	if err != nil {
		return nil, fmt.Errorf("open netfilter netlink socket: %w", err)
	}
	// NoENOBUFS: without it one overflow latches the socket "congested" and
	// the kernel drops every event until the queue is fully drained
	// (reference §0.7). Lost events are still counted in sk_drops.
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
	return &eventSocket{c: c}, nil
}

// drops is the kernel's count of events it could not queue on this socket
// (sk_drops, SO_MEMINFO). Every conntrack event is its own skb, so this is
// the number of lost events.
func (s *eventSocket) drops() (uint64, error) {
	rc, err := s.c.SyscallConn()
	if err != nil {
		return 0, err
	}
	var mem [unix.SK_MEMINFO_VARS]uint32
	var serr error
	err = rc.Control(func(fd uintptr) {
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
	s      *eventSocket
	closed bool
}

func (h *eventSocketHolder) set(s *eventSocket) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return false
	}
	h.s = s
	return true
}

// release forgets s and returns its final drop count.
func (h *eventSocketHolder) release(s *eventSocket) uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	n, _ := s.drops()
	if h.s == s {
		h.s = nil
	}
	_ = s.c.Close()
	return n
}

func (h *eventSocketHolder) drops() uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.s == nil {
		return 0
	}
	n, _ := h.s.drops()
	return n
}

func (h *eventSocketHolder) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	if h.s != nil {
		_ = h.s.c.Close()
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
		s, err := dialEventSocket(t.cfg.NetNS, t.cfg.ReceiveBuffer)
		if err == nil && t.looker.Load() == nil {
			var l *ctLooker
			if l, err = dialLooker(t.cfg.NetNS); err != nil {
				s.c.Close()
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
			s.c.Close()
			return
		}
		backoff = time.Second
		if first {
			first = false
			// Entries that exist now were created before this listener; with
			// nf_conntrack_events=2 they never emit a DESTROY (reference §4.3).
			if n, err := readUint(filepath.Join(t.cfg.SysctlDir, "nf_conntrack_count")); err == nil {
				t.preexisting.Store(int64(n))
			}
			t.logger.Info("Subscribed to conntrack DESTROY events", "window", t.cfg.Window, "hold", t.cfg.Hold, "max_flows", t.cfg.MaxFlows)
		} else {
			t.logger.Info("Re-subscribed to conntrack DESTROY events")
		}
		t.up.Store(true)
		err = t.receive(s)
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

// receive reads events until the socket fails for good.
func (t *Tracker) receive(s *eventSocket) error {
	for {
		msgs, err := s.c.Receive()
		if err != nil {
			if errors.Is(err, unix.ENOBUFS) {
				// Only without NETLINK_NO_ENOBUFS; the drops are in sk_drops.
				continue
			}
			var oe *netlink.OpError
			if errors.As(err, &oe) && (oe.Timeout() || errors.Is(oe.Err, unix.EINTR)) {
				continue
			}
			return err
		}
		for i := range msgs {
			t.handleMessage(msgs[i])
		}
	}
}

// handleMessage decodes one event and remembers a destroyed TCP flow.
func (t *Tracker) handleMessage(m netlink.Message) {
	var ev destroyEvent
	if !decodeEvent(&m, &ev) {
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

func readUint(path string) (uint64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
}
