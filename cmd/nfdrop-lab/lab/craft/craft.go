// Package craft builds IPv4/IPv6 packets with TCP, UDP, ICMP and ICMPv6
// headers (correct checksums, any TCP flag byte) and sends them on a link
// over an AF_PACKET socket, so the lab can put any segment in front of the
// server's firewall, including ones no socket API would produce.
package craft

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"
)

// IP protocol numbers.
const (
	ProtoICMP   = 1
	ProtoTCP    = 6
	ProtoUDP    = 17
	ProtoICMPv6 = 58
)

// TCP flag bits (RFC 9293 + RFC 3168).
const (
	FIN = 0x01
	SYN = 0x02
	RST = 0x04
	PSH = 0x08
	ACK = 0x10
	URG = 0x20
	ECE = 0x40
	CWR = 0x80
)

// Packet describes one datagram. The family follows Src/Dst (both must be
// of the same family). For ICMP/ICMPv6 an echo request is built; SrcPort is
// used as its identifier and Seq as its sequence number.
type Packet struct {
	Src, Dst netip.Addr
	Proto    uint8
	SrcPort  uint16
	DstPort  uint16
	Flags    uint8  // TCP flag byte, sent verbatim
	Window   uint16 // TCP window; 0 is sent as 0
	Seq, Ack uint32
	Payload  []byte
	TTL      uint8 // IPv4 TTL / IPv6 hop limit; 0 means 64
	ID       uint16
}

// Bytes returns the IP datagram (no link-layer header).
func (p Packet) Bytes() ([]byte, error) {
	if !p.Src.IsValid() || !p.Dst.IsValid() || p.Src.Is4() != p.Dst.Is4() {
		return nil, fmt.Errorf("craft: src %v and dst %v must be addresses of one family", p.Src, p.Dst)
	}
	v6 := !p.Src.Is4()
	var l4 []byte
	switch p.Proto {
	case ProtoTCP:
		l4 = make([]byte, 20+len(p.Payload))
		binary.BigEndian.PutUint16(l4[0:], p.SrcPort)
		binary.BigEndian.PutUint16(l4[2:], p.DstPort)
		binary.BigEndian.PutUint32(l4[4:], p.Seq)
		binary.BigEndian.PutUint32(l4[8:], p.Ack)
		l4[12] = 5 << 4
		l4[13] = p.Flags
		binary.BigEndian.PutUint16(l4[14:], p.Window)
		copy(l4[20:], p.Payload)
		binary.BigEndian.PutUint16(l4[16:], checksum(pseudo(p, len(l4)), l4))
	case ProtoUDP:
		l4 = make([]byte, 8+len(p.Payload))
		binary.BigEndian.PutUint16(l4[0:], p.SrcPort)
		binary.BigEndian.PutUint16(l4[2:], p.DstPort)
		binary.BigEndian.PutUint16(l4[4:], uint16(len(l4)))
		copy(l4[8:], p.Payload)
		c := checksum(pseudo(p, len(l4)), l4)
		if c == 0 {
			c = 0xffff // RFC 768: a computed 0 is sent as all ones
		}
		binary.BigEndian.PutUint16(l4[6:], c)
	case ProtoICMP, ProtoICMPv6:
		if (p.Proto == ProtoICMPv6) != v6 {
			return nil, fmt.Errorf("craft: protocol %d does not fit the address family", p.Proto)
		}
		l4 = make([]byte, 8+len(p.Payload))
		l4[0] = 8 // echo request
		var ph []byte
		if v6 {
			l4[0] = 128
			ph = pseudo(p, len(l4))
		}
		binary.BigEndian.PutUint16(l4[4:], p.SrcPort)
		binary.BigEndian.PutUint16(l4[6:], uint16(p.Seq))
		copy(l4[8:], p.Payload)
		binary.BigEndian.PutUint16(l4[2:], checksum(ph, l4))
	default:
		return nil, fmt.Errorf("craft: unsupported protocol %d", p.Proto)
	}
	ttl := p.TTL
	if ttl == 0 {
		ttl = 64
	}
	if v6 {
		b := make([]byte, 40+len(l4))
		binary.BigEndian.PutUint32(b[0:], 6<<28)
		binary.BigEndian.PutUint16(b[4:], uint16(len(l4)))
		b[6] = p.Proto
		b[7] = ttl
		s, d := p.Src.As16(), p.Dst.As16()
		copy(b[8:], s[:])
		copy(b[24:], d[:])
		copy(b[40:], l4)
		return b, nil
	}
	b := make([]byte, 20+len(l4))
	b[0] = 0x45
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
	binary.BigEndian.PutUint16(b[4:], p.ID)
	binary.BigEndian.PutUint16(b[6:], 0x4000) // DF
	b[8] = ttl
	b[9] = p.Proto
	s, d := p.Src.As4(), p.Dst.As4()
	copy(b[12:], s[:])
	copy(b[16:], d[:])
	binary.BigEndian.PutUint16(b[10:], checksum(nil, b[:20]))
	copy(b[20:], l4)
	return b, nil
}

// pseudo returns the pseudo-header that TCP, UDP and ICMPv6 checksums cover.
func pseudo(p Packet, l4len int) []byte {
	if p.Src.Is4() {
		b := make([]byte, 12)
		s, d := p.Src.As4(), p.Dst.As4()
		copy(b[0:], s[:])
		copy(b[4:], d[:])
		b[9] = p.Proto
		binary.BigEndian.PutUint16(b[10:], uint16(l4len))
		return b
	}
	b := make([]byte, 40)
	s, d := p.Src.As16(), p.Dst.As16()
	copy(b[0:], s[:])
	copy(b[16:], d[:])
	binary.BigEndian.PutUint32(b[32:], uint32(l4len))
	b[39] = p.Proto
	return b
}

// checksum is the Internet checksum (RFC 1071) over a and then b; a must
// have even length.
func checksum(a, b []byte) uint16 {
	var sum uint32
	for _, buf := range [][]byte{a, b} {
		for i := 0; i+1 < len(buf); i += 2 {
			sum += uint32(buf[i])<<8 | uint32(buf[i+1])
		}
		if len(buf)%2 == 1 {
			sum += uint32(buf[len(buf)-1]) << 8
		}
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// Sender writes IP datagrams to one link, addressed to a fixed MAC. It uses
// an AF_PACKET SOCK_DGRAM socket, so the kernel adds the Ethernet header and
// the same code path serves IPv4 and IPv6 (no ARP/NDP, no routing, no
// source address checks).
type Sender struct {
	fd      int
	ifindex int
	dst     net.HardwareAddr
}

// NewSender opens the socket on interface ifname of the calling thread's
// network namespace (wrap it in lab.InNetns to use a lab namespace; the
// socket stays bound to that namespace's interface afterwards).
func NewSender(ifname string, dst net.HardwareAddr) (*Sender, error) {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, err
	}
	// Protocol 0: this socket only sends; it must not receive a copy of
	// every frame on the link.
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("craft: AF_PACKET socket: %w", err)
	}
	return &Sender{fd: fd, ifindex: ifi.Index, dst: dst}, nil
}

// Close closes the socket.
func (s *Sender) Close() error { return unix.Close(s.fd) }

// SendRaw sends one IP datagram as built by Packet.Bytes.
func (s *Sender) SendRaw(b []byte) error {
	if len(b) == 0 {
		return errors.New("craft: empty datagram")
	}
	proto := uint16(unix.ETH_P_IP)
	if b[0]>>4 == 6 {
		proto = unix.ETH_P_IPV6
	}
	sa := &unix.SockaddrLinklayer{
		Protocol: htons(proto),
		Ifindex:  s.ifindex,
		Halen:    6,
	}
	copy(sa.Addr[:], s.dst)
	return unix.Sendto(s.fd, b, 0, sa)
}

// Send sends p count times (count must be 1..1e6), at most rate packets per
// second when rate > 0. The IPv4 ID is incremented per copy.
func (s *Sender) Send(p Packet, count int, rate float64) error {
	if count < 1 || count > 1_000_000 {
		return fmt.Errorf("craft: count %d out of range 1..1000000", count)
	}
	var gap time.Duration
	if rate > 0 {
		gap = time.Duration(float64(time.Second) / rate)
	}
	start := time.Now()
	for i := 0; i < count; i++ {
		b, err := p.Bytes()
		if err != nil {
			return err
		}
		if err := s.SendRaw(b); err != nil {
			return fmt.Errorf("craft: send %d/%d: %w", i+1, count, err)
		}
		p.ID++
		if gap > 0 {
			if d := time.Until(start.Add(time.Duration(i+1) * gap)); d > 0 {
				time.Sleep(d)
			}
		}
	}
	return nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
