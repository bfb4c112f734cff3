package lab

import (
	"context"
	"fmt"
	"time"

	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop-lab/lab/craft"
	"github.com/nfdrop/nfdrop_exporter/collector/classify"
)

// Series is the label set of one nfdrop_packets_total series.
type Series struct {
	Group, Prefix, Family, Proto, Port, Side, Flags, Class string
}

func (s Series) String() string {
	return fmt.Sprintf(`{group=%q,prefix=%q,family=%q,proto=%q,port=%q,side=%q,flags=%q,class=%q}`,
		s.Group, s.Prefix, s.Family, s.Proto, s.Port, s.Side, s.Flags, s.Class)
}

// Send is one crafted packet sent Count times from the client namespace,
// and the series the exporter must count it in. Want is written by hand from
// the classification rules (Group and Prefix are filled in by
// Scenario.Expected): the expectations must never come from the exporter's
// own classifier, only the names of classes, sides and port ranges do.
type Send struct {
	Desc   string
	Packet craft.Packet
	Count  int
	Want   Series
}

// TCPRun is one real TCP connection (see TCPRecipe). Exact is the number of
// packets it must add to Want, or -1 when the count depends on timing
// (retransmissions): then it only has to be at least one.
type TCPRun struct {
	Recipe TCPRecipe
	Port   int
	V6     bool
	Want   Series
	Exact  int
	// Size is the IP datagram length of each of the Exact packets (for
	// nfdrop_packet_size_bytes), 0 when unknown.
	Size int
}

// Scenario is a named list of things to send, with their expected series.
type Scenario struct {
	Name  string
	Sends []Send
	TCP   []TCPRun
}

// Expected returns the exact expected value of every series the scenario
// produces (TCP runs with Exact -1 are not included).
func (s Scenario) Expected(group, prefix string) map[Series]float64 {
	m := map[Series]float64{}
	for _, x := range s.Sends {
		w := x.Want
		w.Group, w.Prefix = group, prefix
		m[w] += float64(x.Count)
	}
	for _, r := range s.TCP {
		if r.Exact < 0 {
			continue
		}
		w := r.Want
		w.Group, w.Prefix = group, prefix
		if r.Exact > 0 {
			m[w] += float64(r.Exact)
		}
	}
	return m
}

// SizeStats is the expected nfdrop_packet_size_bytes count and sum of
// one class.
type SizeStats struct{ Count, Sum float64 }

// ExpectedSizes returns, per class, the number of packets and the sum of
// their IP datagram lengths (the crafted bytes' own length; TCP runs with
// a known Size). ok is false when a TCP run's size is unknown.
func (s Scenario) ExpectedSizes() (m map[string]SizeStats, ok bool) {
	m = map[string]SizeStats{}
	ok = true
	for _, x := range s.Sends {
		b, err := x.Packet.Bytes()
		if err != nil {
			return nil, false
		}
		st := m[x.Want.Class]
		st.Count += float64(x.Count)
		st.Sum += float64(x.Count * len(b))
		m[x.Want.Class] = st
	}
	for _, r := range s.TCP {
		if r.Exact == 0 {
			continue
		}
		if r.Exact < 0 || r.Size == 0 {
			ok = false
			continue
		}
		st := m[r.Want.Class]
		st.Count += float64(r.Exact)
		st.Sum += float64(r.Exact * r.Size)
		m[r.Want.Class] = st
	}
	return m, ok
}

// Packets is the number of log-rule hits the scenario's crafted part adds.
func (s Scenario) Packets() int {
	n := 0
	for _, x := range s.Sends {
		n += x.Count
	}
	return n
}

// clientSender opens a packet crafter on the client's interface, addressed
// to the server's MAC.
func (l *Lab) clientSender() (snd *craft.Sender, err error) {
	err = InNetns(l.Client, func() error {
		snd, err = craft.NewSender(ClientIf, ServerMAC)
		return err
	})
	return snd, err
}

// RunScenario sends the scenario: crafted packets first (rate packets per second,
// 0 = as fast as possible), then the real TCP runs. progress, if not nil,
// is called before each item.
func (l *Lab) RunScenario(ctx context.Context, s Scenario, rate float64, settle time.Duration, progress func(string)) error {
	if len(s.Sends) > 0 {
		snd, err := l.clientSender()
		if err != nil {
			return err
		}
		defer snd.Close()
		for _, x := range s.Sends {
			if err := ctx.Err(); err != nil {
				return err
			}
			if progress != nil {
				progress(fmt.Sprintf("%-46s x%-3d -> %s", x.Desc, x.Count, x.Want.Short()))
			}
			if err := snd.Send(x.Packet, x.Count, rate); err != nil {
				return fmt.Errorf("%s: %w", x.Desc, err)
			}
		}
	}
	for _, r := range s.TCP {
		if progress != nil {
			fam := "IPv4"
			if r.V6 {
				fam = "IPv6"
			}
			progress(fmt.Sprintf("real TCP %s to :%d over %s", r.Recipe, r.Port, fam))
		}
		if err := l.RunTCP(ctx, r.Recipe, r.Port, r.V6, settle); err != nil {
			return fmt.Errorf("TCP %s: %w", r.Recipe, err)
		}
	}
	return nil
}

// Short renders the classification part of a series for humans.
func (s Series) Short() string {
	out := s.Family + " " + s.Proto
	if s.Port != "" {
		out += " port=" + s.Port + " side=" + s.Side
	}
	if s.Flags != "" {
		out += " flags=" + s.Flags
	}
	return out + " class=" + s.Class
}

// row is one hand-written line of the crafted set: a packet and the series
// the classification rules (package classify) put it in.
type row struct {
	desc       string
	proto      uint8 // craft.ProtoTCP, craft.ProtoUDP, or craft.ProtoICMP (ICMPv6 for IPv6)
	sport      uint16
	dport      uint16
	flags      uint8
	payload    string
	count      int
	port       string
	side       classify.Side
	flagsLabel string
	class      classify.Class
}

// craftedRows is the e2e crafted set. Every packet deterministically
// reaches the log rule of the deploy/firewall rulesets (no conntrack entry
// exists for any of them, nothing is sent that ctstate NEW to 80/443 would
// accept): a SYN, ACK or ACK,PSH to 443 would be accepted (the ACKs by
// nf_conntrack_tcp_loose pickup), so those go to 22, 25, 3389 or 8080.
//
// Expectations, by the classification rules of package classify:
//   - SYN set: service port = dst if ACK clear (client), src if ACK set
//     (server), listed or not.
//   - otherwise: dst if listed (22,25,53,80,123,443,3389), else src if
//     listed, else the lower port (dst on a tie); unlisted ports become
//     system (0-1023) / user (1024-49151) / dynamic (49152-65535).
//   - flags in LOG order URG,ACK,PSH,RST,SYN,FIN without ECE/CWR; NONE for 0.
var craftedRows = []row{
	// teardown-shaped: no SYN, ACK or RST set
	{"late FIN/ACK of a visitor to 443", craft.ProtoTCP, 40001, 443, craft.ACK | craft.FIN, "", 3, "443", classify.SideClient, "ACK,FIN", classify.ClassTeardown},
	{"late FIN/ACK with ECE+CWR (masked)", craft.ProtoTCP, 40002, 443, craft.ACK | craft.FIN | craft.ECE | craft.CWR, "", 1, "443", classify.SideClient, "ACK,FIN", classify.ClassTeardown},
	{"late RST to 443", craft.ProtoTCP, 40003, 443, craft.RST, "", 2, "443", classify.SideClient, "RST", classify.ClassTeardown},
	{"late RST/ACK (SO_LINGER 0) to 443", craft.ProtoTCP, 40004, 443, craft.ACK | craft.RST, "", 1, "443", classify.SideClient, "ACK,RST", classify.ClassTeardown},
	{"late ACK/PSH with data to 3389", craft.ProtoTCP, 40005, 3389, craft.ACK | craft.PSH, "late data", 2, "3389", classify.SideClient, "ACK,PSH", classify.ClassTeardown},
	{"ACK scan probe to 22", craft.ProtoTCP, 40006, 22, craft.ACK, "", 1, "22", classify.SideClient, "ACK", classify.ClassTeardown},
	{"ACK+URG to 25", craft.ProtoTCP, 40007, 25, craft.URG | craft.ACK, "", 1, "25", classify.SideClient, "URG,ACK", classify.ClassTeardown},
	{"late RST from a remote :443 (we were client)", craft.ProtoTCP, 443, 40008, craft.RST, "", 2, "443", classify.SideServer, "RST", classify.ClassTeardown},
	{"ACK/FIN between two unlisted ports, src lower", craft.ProtoTCP, 50009, 60009, craft.ACK | craft.FIN, "", 1, classify.PortDynamic, classify.SideServer, "ACK,FIN", classify.ClassTeardown},
	{"ACK to 8080 (user range, dst lower)", craft.ProtoTCP, 40010, 8080, craft.ACK, "", 1, classify.PortUser, classify.SideClient, "ACK", classify.ClassTeardown},
	{"ACK with equal ports (tie -> dst)", craft.ProtoTCP, 50000, 50000, craft.ACK, "", 1, classify.PortDynamic, classify.SideClient, "ACK", classify.ClassTeardown},
	{"ACK from system port 1000 to 5000", craft.ProtoTCP, 1000, 5000, craft.ACK | craft.PSH, "x", 1, classify.PortSystem, classify.SideServer, "ACK,PSH", classify.ClassTeardown},
	// handshake: SYN set, no FIN/RST
	{"SYN to 22 (not allowed)", craft.ProtoTCP, 40011, 22, craft.SYN, "", 2, "22", classify.SideClient, "SYN", classify.ClassHandshake},
	{"SYN+ECE+CWR to 22 (ECN setup, masked)", craft.ProtoTCP, 40012, 22, craft.SYN | craft.ECE | craft.CWR, "", 1, "22", classify.SideClient, "SYN", classify.ClassHandshake},
	{"SYN to 8080 (unlisted dst, user)", craft.ProtoTCP, 40013, 8080, craft.SYN, "", 1, classify.PortUser, classify.SideClient, "SYN", classify.ClassHandshake},
	{"SYN to 60000 (unlisted dst, dynamic)", craft.ProtoTCP, 80, 60000, craft.SYN, "", 1, classify.PortDynamic, classify.SideClient, "SYN", classify.ClassHandshake},
	{"SYN/ACK from :443 (backscatter)", craft.ProtoTCP, 443, 40014, craft.SYN | craft.ACK, "", 1, "443", classify.SideServer, "ACK,SYN", classify.ClassHandshake},
	{"SYN/ACK to 443 from high port (src is service)", craft.ProtoTCP, 40015, 443, craft.SYN | craft.ACK, "", 1, classify.PortUser, classify.SideServer, "ACK,SYN", classify.ClassHandshake},
	{"SYN+PSH to 22", craft.ProtoTCP, 40016, 22, craft.SYN | craft.PSH, "", 1, "22", classify.SideClient, "PSH,SYN", classify.ClassHandshake},
	{"URG+ACK+SYN to 443", craft.ProtoTCP, 40017, 443, craft.URG | craft.ACK | craft.SYN, "", 1, classify.PortUser, classify.SideServer, "URG,ACK,SYN", classify.ClassHandshake},
	// probe: impossible flag combinations
	{"NULL scan to 443", craft.ProtoTCP, 40018, 443, 0, "", 2, "443", classify.SideClient, "NONE", classify.ClassProbe},
	{"FIN scan to 443", craft.ProtoTCP, 40019, 443, craft.FIN, "", 1, "443", classify.SideClient, "FIN", classify.ClassProbe},
	{"XMAS scan to 22", craft.ProtoTCP, 40020, 22, craft.URG | craft.PSH | craft.FIN, "", 1, "22", classify.SideClient, "URG,PSH,FIN", classify.ClassProbe},
	{"SYN/FIN from :443 to 50021 (SYN rule: dst)", craft.ProtoTCP, 443, 50021, craft.SYN | craft.FIN, "", 1, classify.PortDynamic, classify.SideClient, "SYN,FIN", classify.ClassProbe},
	{"SYN/RST to 443", craft.ProtoTCP, 40022, 443, craft.SYN | craft.RST, "", 1, "443", classify.SideClient, "RST,SYN", classify.ClassProbe},
	{"RST/FIN+ACK to 443", craft.ProtoTCP, 40023, 443, craft.ACK | craft.RST | craft.FIN, "", 1, "443", classify.SideClient, "ACK,RST,FIN", classify.ClassProbe},
	{"PSH only to 80", craft.ProtoTCP, 40024, 80, craft.PSH, "", 1, "80", classify.SideClient, "PSH", classify.ClassProbe},
	{"URG only to 443", craft.ProtoTCP, 40025, 443, craft.URG, "", 1, "443", classify.SideClient, "URG", classify.ClassProbe},
	{"all flags (ECE,CWR masked; SYN+ACK: src) to 443", craft.ProtoTCP, 40026, 443, 0xff, "", 1, classify.PortUser, classify.SideServer, "URG,ACK,PSH,RST,SYN,FIN", classify.ClassProbe},
	// other: not TCP
	{"UDP DNS query to 53", craft.ProtoUDP, 40027, 53, 0, "q", 2, "53", classify.SideClient, "", classify.ClassOther},
	{"UDP DNS answer from 53", craft.ProtoUDP, 53, 40028, 0, "a", 1, "53", classify.SideServer, "", classify.ClassOther},
	{"UDP traceroute to 33434 (user, dst lower)", craft.ProtoUDP, 40029, 33434, 0, "", 1, classify.PortUser, classify.SideClient, "", classify.ClassOther},
	{"UDP between high ports (dynamic)", craft.ProtoUDP, 60001, 50030, 0, "", 1, classify.PortDynamic, classify.SideClient, "", classify.ClassOther},
	{"ICMP echo request", craft.ProtoICMP, 7, 0, 0, "ping", 2, "", classify.SideNone, "", classify.ClassOther},
}

// Crafted returns the crafted set for one family (v6 false: IPv4).
func Crafted(v6 bool) Scenario {
	src, dst, family := ClientIPv4, ServerIPv4, "ipv4"
	if v6 {
		src, dst, family = ClientIPv6, ServerIPv6, "ipv6"
	}
	s := Scenario{Name: "crafted-" + family}
	for i, r := range craftedRows {
		p := craft.Packet{Src: src, Dst: dst, Proto: r.proto, SrcPort: r.sport, DstPort: r.dport,
			Flags: r.flags, Window: 502, Seq: 1000 + uint32(i), Payload: []byte(r.payload)}
		proto := map[uint8]string{craft.ProtoTCP: "tcp", craft.ProtoUDP: "udp", craft.ProtoICMP: "icmp"}[r.proto]
		if r.proto == craft.ProtoTCP && r.flags&craft.ACK != 0 {
			p.Ack = 5000
		}
		if r.proto == craft.ProtoICMP && v6 {
			p.Proto, proto = craft.ProtoICMPv6, "icmpv6"
		}
		s.Sends = append(s.Sends, Send{
			Desc:   r.desc,
			Packet: p,
			Count:  r.count,
			Want:   Series{Family: family, Proto: proto, Port: r.port, Side: r.side.String(), Flags: r.flagsLabel, Class: r.class.String()},
		})
	}
	return s
}

// LateRST is the deterministic real-TCP scenario: one clean connection
// (no drop) and one late abortive close (exactly one dropped ACK,RST).
func LateRST(v6 bool) Scenario {
	family := "ipv4"
	if v6 {
		family = "ipv6"
	}
	rst := Series{Family: family, Proto: "tcp", Port: "443", Side: classify.SideClient.String(), Flags: "ACK,RST", Class: classify.ClassTeardown.String()}
	// Linux sends the abortive close's RST through tcp_transmit_skb, with
	// the connection's timestamp option.
	size := tcpSegSize(v6)
	return Scenario{Name: "real-tcp-" + family, TCP: []TCPRun{
		{Recipe: TCPClean, Port: 443, V6: v6, Exact: 0},
		{Recipe: TCPCTDeleteLateRST, Port: 443, V6: v6, Want: rst, Exact: 1, Size: size},
	}}
}

// tcpSegSize is the IP datagram length of a Linux segment without payload
// on an established connection: TCP header plus the timestamp option
// (NOP,NOP,TS = 12 bytes), which Linux negotiates by default.
func tcpSegSize(v6 bool) int {
	if v6 {
		return 40 + 20 + 12
	}
	return 20 + 20 + 12
}

// LateFIN is the problem's main case with real kernel sockets: the client's
// FIN/ACK after the conntrack entry expired (CLOSE_WAIT timeout) or was
// deleted. Each is retransmitted a timing-dependent number of times, all
// into the same series: its exact value is what the log rule counted.
func LateFIN(v6 bool) Scenario {
	family := "ipv4"
	if v6 {
		family = "ipv6"
	}
	fin := Series{Family: family, Proto: "tcp", Port: "443", Side: classify.SideClient.String(), Flags: "ACK,FIN", Class: classify.ClassTeardown.String()}
	return Scenario{Name: "real-late-fin-" + family, TCP: []TCPRun{
		{Recipe: TCPCloseWaitLateFIN, Port: 443, V6: v6, Want: fin, Exact: -1, Size: tcpSegSize(v6)},
		{Recipe: TCPCTDeleteLateFIN, Port: 443, V6: v6, Want: fin, Exact: -1, Size: tcpSegSize(v6)},
	}}
}

// RealTeardown is the demo's real-TCP scenario: every recipe over the given
// family. The FIN/ACK recipes produce a timing-dependent number of drops.
func RealTeardown(v6 bool, port int) Scenario {
	family := "ipv4"
	if v6 {
		family = "ipv6"
	}
	fin := Series{Family: family, Proto: "tcp", Port: fmt.Sprint(port), Side: classify.SideClient.String(), Flags: "ACK,FIN", Class: classify.ClassTeardown.String()}
	rst := fin
	rst.Flags = "ACK,RST"
	return Scenario{Name: "real-tcp-" + family, TCP: []TCPRun{
		{Recipe: TCPClean, Port: port, V6: v6, Exact: 0},
		{Recipe: TCPCloseWaitLateFIN, Port: port, V6: v6, Want: fin, Exact: -1},
		{Recipe: TCPCTDeleteLateFIN, Port: port, V6: v6, Want: fin, Exact: -1},
		{Recipe: TCPCTDeleteLateRST, Port: port, V6: v6, Want: rst, Exact: 1},
	}}
}

// Visitors returns n late-teardown packets (the problem's deny log: mostly
// ACK,FIN, some RST and ACK,RST, to 443 and some to 80), each from its own
// visitor port, so the demo's share of teardown looks like production.
func Visitors(v6 bool, n int) Scenario {
	src, dst, family := ClientIPv4, ServerIPv4, "ipv4"
	if v6 {
		src, dst, family = ClientIPv6, ServerIPv6, "ipv6"
	}
	kinds := []struct {
		flags uint8
		label string
		port  uint16
	}{
		{craft.ACK | craft.FIN, "ACK,FIN", 443}, {craft.ACK | craft.FIN, "ACK,FIN", 443},
		{craft.ACK | craft.FIN, "ACK,FIN", 443}, {craft.ACK | craft.FIN, "ACK,FIN", 443},
		{craft.ACK | craft.FIN, "ACK,FIN", 80}, {craft.ACK | craft.FIN, "ACK,FIN", 80},
		{craft.RST, "RST", 443}, {craft.RST, "RST", 443}, {craft.RST, "RST", 80},
		{craft.ACK | craft.RST, "ACK,RST", 443},
	}
	s := Scenario{Name: "visitors-" + family}
	for i := 0; i < n; i++ {
		k := kinds[i%len(kinds)]
		s.Sends = append(s.Sends, Send{
			Desc: fmt.Sprintf("visitor %d late %s to %d", i, k.label, k.port),
			Packet: craft.Packet{Src: src, Dst: dst, Proto: craft.ProtoTCP, SrcPort: uint16(32768 + i), DstPort: k.port,
				Flags: k.flags, Window: 254, Seq: uint32(i) * 7919, Ack: uint32(i) * 104729},
			Count: 1,
			Want:  Series{Family: family, Proto: "tcp", Port: fmt.Sprint(k.port), Side: classify.SideClient.String(), Flags: k.label, Class: classify.ClassTeardown.String()},
		})
	}
	return s
}
