package lab

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"runtime"
	"time"
	"unsafe"

	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop-lab/lab/craft"
	"golang.org/x/sys/unix"
)

// Mix selects the packets of a flood pool.
type Mix string

const (
	// MixTeardown is the bench's standard mix (cmd/nfdrop-lab/README.md):
	// mostly late-teardown shapes to :443, some SYNs to closed ports and scans.
	MixTeardown Mix = "teardown"
	// MixRandom has random TCP flag bytes, random ports, UDP and ICMP: the
	// worst case for label cardinality.
	MixRandom Mix = "random"
)

// PoolSize is the number of distinct frames a flood cycles through.
const PoolSize = 8192

// Frame is one prebuilt Ethernet frame of a pool and what it is.
type Frame struct {
	Bytes []byte
	V6    bool
	Proto uint8
	Flags uint8 // TCP flag byte as sent
	Dport uint16
}

// BuildPool returns n frames of the given mix, addressed from random
// sources of the client's own subnets to the server's MAC and address, so
// that they traverse the server's INPUT chain. No frame can match the
// ruleset's ACCEPT rules: nothing opens a connection to 80/443 (a SYN goes to
// a closed port) and conntrack's loose pickup is switched off by the bench.
func BuildPool(mix Mix, n int, seed uint64) ([]Frame, error) {
	r := rand.New(rand.NewPCG(seed, 0x6e666447))
	out := make([]Frame, 0, n)
	for i := 0; i < n; i++ {
		v6 := r.IntN(2) == 1
		p := craft.Packet{Proto: craft.ProtoTCP, SrcPort: uint16(1024 + r.IntN(64512)), DstPort: 443,
			Seq: r.Uint32(), Ack: r.Uint32(), Window: uint16(r.IntN(65536)), ID: uint16(r.Uint32())}
		if v6 {
			p.Src, p.Dst = randomHost6(r), ServerIPv6
		} else {
			p.Src, p.Dst = randomHost4(r), ServerIPv4
		}
		switch mix {
		case MixTeardown:
			fillTeardown(r, &p)
		case MixRandom:
			fillRandom(r, &p, v6)
		default:
			return nil, fmt.Errorf("unknown packet mix %q (want %s or %s)", mix, MixTeardown, MixRandom)
		}
		ip, err := p.Bytes()
		if err != nil {
			return nil, err
		}
		f := make([]byte, 14+len(ip))
		copy(f[0:6], ServerMAC)
		copy(f[6:12], ClientMAC)
		et := uint16(unix.ETH_P_IP)
		if v6 {
			et = unix.ETH_P_IPV6
		}
		binary.BigEndian.PutUint16(f[12:], et)
		copy(f[14:], ip)
		out = append(out, Frame{Bytes: f, V6: v6, Proto: p.Proto, Flags: p.Flags, Dport: p.DstPort})
	}
	return out, nil
}

// fillTeardown draws from the reference mix: FIN|ACK 15 %, RST 10 %,
// RST|ACK 10 %, ACK 15 %, PSH|ACK with 64-400 B payload 20 % (all to :443),
// SYN to a random closed port 20 %, NULL 5 %, XMAS 5 %.
func fillTeardown(r *rand.Rand, p *craft.Packet) {
	switch x := r.IntN(100); {
	case x < 15:
		p.Flags = craft.FIN | craft.ACK
	case x < 25:
		p.Flags, p.Ack = craft.RST, 0
	case x < 35:
		p.Flags = craft.RST | craft.ACK
	case x < 50:
		p.Flags = craft.ACK
	case x < 70:
		p.Flags = craft.PSH | craft.ACK
		p.Payload = make([]byte, 64+r.IntN(337))
		for i := range p.Payload {
			p.Payload[i] = byte(r.Uint32())
		}
	case x < 90:
		p.Flags, p.Ack, p.DstPort = craft.SYN, 0, closedPort(r)
	case x < 95:
		p.Flags, p.Ack = 0, 0
	default:
		p.Flags, p.Ack = craft.FIN|craft.PSH|craft.URG, 0
	}
}

// fillRandom: 85 % TCP with any flag byte, 10 % UDP, 5 % ICMP echo; random
// ports on both sides except 80/443 as destination.
func fillRandom(r *rand.Rand, p *craft.Packet, v6 bool) {
	p.SrcPort, p.DstPort = uint16(r.IntN(65536)), closedPort(r)
	switch x := r.IntN(100); {
	case x < 85:
		p.Flags = uint8(r.Uint32())
	case x < 95:
		p.Proto = craft.ProtoUDP
		p.Payload = make([]byte, r.IntN(64))
	default:
		p.Proto = craft.ProtoICMP
		if v6 {
			p.Proto = craft.ProtoICMPv6
		}
	}
}

// closedPort is any port but the ones the ruleset accepts NEW connections to.
func closedPort(r *rand.Rand) uint16 {
	for {
		if p := uint16(r.IntN(65536)); p != 80 && p != 443 {
			return p
		}
	}
}

// randomHost4 is a random address of the client's /24 that is neither the
// server, the network nor the broadcast address.
func randomHost4(r *rand.Rand) netip.Addr {
	a := ClientIPv4.As4()
	a[3] = byte(2 + r.IntN(253))
	return netip.AddrFrom4(a)
}

// randomHost6 is a random address of the client's /64 other than the server's.
func randomHost6(r *rand.Rand) netip.Addr {
	a := ClientIPv6.As16()
	for {
		binary.BigEndian.PutUint64(a[8:], r.Uint64())
		if x := netip.AddrFrom16(a); x != ServerIPv6 && binary.BigEndian.Uint64(a[8:]) != 0 {
			return x
		}
	}
}

// FloodResult is what the generator did.
type FloodResult struct {
	Sent     uint64
	Elapsed  time.Duration
	CPU      time.Duration // the sending thread's user+system time (includes the softirq work it triggered)
	SendErrs uint64
}

// PPS is the achieved send rate.
func (f FloodResult) PPS() float64 {
	if f.Elapsed <= 0 {
		return 0
	}
	return float64(f.Sent) / f.Elapsed.Seconds()
}

// batch is how many frames one sendmmsg carries.
const batch = 64

// Flood sends count frames from the pool (cycling) out of ifname in the
// calling thread's network namespace, at most rate frames per second
// (rate <= 0: as fast as the core allows), and never longer than limit.
// stop, if not nil, ends the flood early when closed. The caller must have
// locked the goroutine to its OS thread (CPU pinning and the namespace are
// per thread).
func Flood(ifname string, pool []Frame, count uint64, rate float64, limit time.Duration, stop <-chan struct{}) (FloodResult, error) {
	var res FloodResult
	if len(pool) == 0 || count == 0 {
		return res, errors.New("bench: empty flood")
	}
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return res, err
	}
	// SOCK_RAW with protocol 0: the frames carry their own Ethernet header,
	// and the socket never receives a copy of the link's traffic.
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return res, fmt.Errorf("bench: AF_PACKET socket: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Ifindex: ifi.Index}); err != nil {
		return res, fmt.Errorf("bench: bind to %s: %w", ifname, err)
	}
	// veth has no queue; bypassing the qdisc layer saves the sender's CPU.
	_ = unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_QDISC_BYPASS, 1)

	// Every frame gets its own prebuilt iovec and mmsghdr, so that the send
	// loop only passes a pointer into this array.
	iov := make([]unix.Iovec, len(pool))
	msgs := make([]unix.Mmsghdr, len(pool))
	for i := range pool {
		iov[i].Base = &pool[i].Bytes[0]
		iov[i].SetLen(len(pool[i].Bytes))
		msgs[i].Hdr.Iov = &iov[i]
		msgs[i].Hdr.SetIovlen(1)
	}
	var ru0, ru1 unix.Rusage
	_ = unix.Getrusage(unix.RUSAGE_THREAD, &ru0)
	start := time.Now()
	deadline := start.Add(limit)
	next := 0
	for res.Sent < count {
		n := min(batch, len(pool)-next, int(count-res.Sent))
		r1, _, e := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(fd), uintptr(unsafe.Pointer(&msgs[next])), uintptr(n), 0, 0, 0)
		switch {
		case e == 0:
			res.Sent += uint64(r1)
			next = (next + int(r1)) % len(pool)
		case e == unix.EINTR:
		case e == unix.ENOBUFS || e == unix.EAGAIN:
			res.SendErrs++
			runtime.Gosched()
		default:
			return res, fmt.Errorf("bench: sendmmsg: %w", e)
		}
		if res.Sent&0xfff < batch || rate > 0 {
			now := time.Now()
			if now.After(deadline) {
				break
			}
			if stop != nil {
				select {
				case <-stop:
					count = res.Sent
				default:
				}
			}
			if rate > 0 {
				due := start.Add(time.Duration(float64(res.Sent) / rate * float64(time.Second)))
				if d := due.Sub(now); d > 0 {
					time.Sleep(d)
				}
			}
		}
	}
	res.Elapsed = time.Since(start)
	_ = unix.Getrusage(unix.RUSAGE_THREAD, &ru1)
	res.CPU = time.Duration(unix.TimevalToNsec(ru1.Utime) - unix.TimevalToNsec(ru0.Utime) +
		unix.TimevalToNsec(ru1.Stime) - unix.TimevalToNsec(ru0.Stime))
	runtime.KeepAlive(pool)
	runtime.KeepAlive(iov)
	return res, nil
}
