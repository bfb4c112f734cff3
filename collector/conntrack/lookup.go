package conntrack

import (
	"encoding/binary"
	"errors"
	"fmt"
	"syscall"
	"time"
	"unsafe"

	"github.com/mdlayher/netlink"
	"github.com/nfdrop/nfdrop_exporter/collector/internal/nlmsg"
	"github.com/nfdrop/nfdrop_exporter/collector/packet"
	"golang.org/x/sys/unix"
)

// ctLooker looks tuples up in the kernel's conntrack table on its own
// socket (a socket that listens to events cannot query). It builds the
// ctnetlink GET itself and reads only the TCP state from the answer: the
// library's Get costs dozens of allocations per lookup and a netpoller
// round trip, while the kernel answers a GET synchronously, before sendto
// returns, so the reply is read at once.
type ctLooker struct {
	c   *netlink.Conn
	rc  syscall.RawConn
	req [reqLen]byte
	n   int // length of the request in req
	buf []byte
	seq uint32

	// results of the last syscall, written by the closures built once in dialLooker.
	got    int
	errno  syscall.Errno
	sendFn func(fd uintptr) bool
	recvFn func(fd uintptr) bool
}

// ctnetlink numbers for the GET request and its answer.
const (
	ipctnlMsgCTGet       = 1
	ctaProtoInfo         = 4
	ctaProtoInfoTCP      = 1
	ctaProtoInfoTCPState = 1
	nlaFNested           = 0x8000

	// nlmsghdr 16 + nfgenmsg 4 + CTA_TUPLE_ORIG 4 + CTA_TUPLE_IP 4 + two
	// IPv6 addresses 2×20 + CTA_TUPLE_PROTO 4 + number and ports 3×8.
	reqLen = 16 + 4 + 4 + 4 + 2*20 + 4 + 3*8
)

func dialLooker(netns int) (*ctLooker, error) {
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: netns})
	if err != nil {
		return nil, fmt.Errorf("open conntrack lookup socket: %w", err)
	}
	rc, err := c.SyscallConn()
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("open conntrack lookup socket: %w", err)
	}
	l := &ctLooker{c: c, rc: rc, buf: make([]byte, 16<<10)}
	raw := func(fd uintptr, nr uintptr, b []byte, flags int) bool {
		n, _, e := syscall.RawSyscall6(nr, fd, uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(len(b)),
			uintptr(flags|unix.MSG_DONTWAIT), 0, 0)
		if e == unix.EAGAIN || e == unix.EINTR {
			return false // wait for the socket (the poller), then try again
		}
		l.got, l.errno = int(n), e
		return true
	}
	l.sendFn = func(fd uintptr) bool { return raw(fd, unix.SYS_SENDTO, l.req[:l.n], 0) }
	l.recvFn = func(fd uintptr) bool { return raw(fd, unix.SYS_RECVFROM, l.buf, unix.MSG_TRUNC) }
	return l, nil
}

// Lookup implements Looker with one ctnetlink GET of the packet's tuple.
func (l *ctLooker) Lookup(tp *Tuple) (uint8, bool, error) {
	l.seq++
	l.n = buildGet(l.req[:], tp, l.seq)
	if err := l.c.SetDeadline(time.Now().Add(time.Second)); err != nil {
		return 0, false, err
	}
	if err := l.rc.Write(l.sendFn); err != nil {
		return 0, false, err
	}
	if l.errno != 0 {
		return 0, false, l.errno
	}
	for {
		if err := l.rc.Read(l.recvFn); err != nil {
			return 0, false, err
		}
		if l.errno != 0 {
			return 0, false, l.errno
		}
		if l.got > len(l.buf) {
			return 0, false, fmt.Errorf("conntrack answer of %d bytes truncated", l.got)
		}
		state, found, err, mine := parseGetReply(l.buf[:l.got], l.seq)
		if mine {
			return state, found, err
		}
		// The late answer to an earlier, timed-out lookup: read on.
	}
}

func (l *ctLooker) Close() error { return l.c.Close() }

// buildGet writes an IPCTNL_MSG_CT_GET of t's original tuple into b and
// returns its length.
func buildGet(b []byte, t *Tuple, seq uint32) int {
	ne := binary.NativeEndian
	n := 20
	attr := func(typ uint16, v []byte) {
		ne.PutUint16(b[n:], uint16(4+len(v)))
		ne.PutUint16(b[n+2:], typ)
		copy(b[n+4:], v)
		end := n + 4 + len(v)
		for n = end; n%4 != 0; n++ {
			b[n] = 0
		}
	}
	nest := func(typ uint16, fill func()) {
		start := n
		n += 4
		fill()
		ne.PutUint16(b[start:], uint16(n-start))
		ne.PutUint16(b[start+2:], typ|nlaFNested)
	}
	family := byte(unix.AF_INET)
	if t.Family == packet.FamilyIPv6 {
		family = unix.AF_INET6
	}
	nest(ctaTupleOrig, func() {
		nest(ctaTupleIP, func() {
			if family == unix.AF_INET {
				attr(ctaIPv4Src, t.Src[:4])
				attr(ctaIPv4Dst, t.Dst[:4])
			} else {
				attr(ctaIPv6Src, t.Src[:])
				attr(ctaIPv6Dst, t.Dst[:])
			}
		})
		nest(ctaTupleProto, func() {
			var p [2]byte
			attr(ctaProtoNum, []byte{unix.IPPROTO_TCP})
			binary.BigEndian.PutUint16(p[:], t.SrcPort)
			attr(ctaProtoSrc, p[:])
			binary.BigEndian.PutUint16(p[:], t.DstPort)
			attr(ctaProtoDst, p[:])
		})
	})
	ne.PutUint32(b[0:], uint32(n))
	ne.PutUint16(b[4:], nfnlSubsysCTNetlink<<8|ipctnlMsgCTGet)
	ne.PutUint16(b[6:], unix.NLM_F_REQUEST)
	ne.PutUint32(b[8:], seq)
	ne.PutUint32(b[12:], 0)
	b[16], b[17], b[18], b[19] = family, 0, 0, 0 // nfgenmsg: family, version, res_id
	return n
}

// parseGetReply reads the answer to the GET numbered seq from one datagram:
// the entry's TCP state (tcpNone if it has none), not found (ENOENT), or the
// kernel's error. mine is false when the datagram holds no answer to seq.
func parseGetReply(b []byte, seq uint32) (state uint8, found bool, err error, mine bool) {
	ms := nlmsg.NewMessages(b)
	for ms.Next() {
		if ms.Seq != seq {
			continue
		}
		switch {
		case ms.Type == unix.NLMSG_ERROR:
			if len(ms.Data) < 4 {
				return 0, false, errMalformedErrorAnswer, true
			}
			switch code := -int32(binary.NativeEndian.Uint32(ms.Data)); code {
			case 0:
			case int32(unix.ENOENT):
				return 0, false, nil, true
			default:
				return 0, false, syscall.Errno(code), true
			}
		case ms.Type == nfnlSubsysCTNetlink<<8|ipctnlMsgCTNew && len(ms.Data) >= 4:
			return tcpState(ms.Data[4:]), true, nil, true
		}
	}
	if ms.Bad {
		return 0, false, errMalformedAnswer, true
	}
	return 0, false, nil, false
}

var (
	errMalformedAnswer      = errors.New("malformed conntrack answer")
	errMalformedErrorAnswer = errors.New("malformed conntrack error answer")
)

// tcpState finds CTA_PROTOINFO > CTA_PROTOINFO_TCP > CTA_PROTOINFO_TCP_STATE.
func tcpState(b []byte) uint8 {
	for _, want := range [...]uint16{ctaProtoInfo, ctaProtoInfoTCP} {
		a := nlmsg.NewAttrs(b)
		found := false
		for a.Next() {
			if a.Type == want {
				b, found = a.Data, true
				break
			}
		}
		if !found {
			return tcpNone
		}
	}
	a := nlmsg.NewAttrs(b)
	for a.Next() {
		if a.Type == ctaProtoInfoTCPState && len(a.Data) >= 1 {
			return a.Data[0]
		}
	}
	return tcpNone
}
