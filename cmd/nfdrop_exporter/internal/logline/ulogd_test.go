package logline

import (
	"net/netip"
	"testing"

	"github.com/nfdrop/nfdrop_exporter/collector/packet"
)

// Lines written by Debian's ulogd2 2.0.8 (PRINTPKT → LOGEMU, and JSON), and
// rsyslog's repeat suppression.
func TestWrappersAndSources(t *testing.T) {
	for _, tc := range []struct {
		name    string
		line    string
		format  Format
		repeat  uint32
		prefix  string
		in, out string
		src     string
		proto   packet.Proto
		flags   uint8
		sport   uint16
		dport   uint16
		length  uint32
		frag    bool
	}{
		{"logemu SYN", "Dec  1 22:59:01 vm denied IN=lo OUT= MAC=00:00:00:00:00:00:00:00:00:00:00:00:08:00 SRC=127.0.0.1 DST=127.0.0.1 LEN=40 TOS=00 PREC=0x00 TTL=64 ID=64015 PROTO=TCP SPT=1431 DPT=9999 SEQ=711693389 ACK=1707584491 WINDOW=512 SYN URGP=0 MARK=0x0 ",
			FormatLOGEMU, 1, "denied ", "lo", "", "127.0.0.1", packet.ProtoTCP, packet.FlagSYN, 1431, 9999, 40, false},
		{"logemu URG ACK PSH FIN", "Dec  1 22:59:02 vm denied IN=lo OUT= MAC=00:00:00:00:00:00:00:00:00:00:00:00:08:00 SRC=127.0.0.1 DST=127.0.0.1 LEN=40 TOS=00 PREC=0x00 TTL=64 ID=14360 PROTO=TCP SPT=2652 DPT=9999 SEQ=1598734042 ACK=210704889 WINDOW=512 URG ACK PSH FIN URGP=0 MARK=0x0 ",
			FormatLOGEMU, 1, "denied ", "lo", "", "127.0.0.1", packet.ProtoTCP, packet.FlagURG | packet.FlagACK | packet.FlagPSH | packet.FlagFIN, 2652, 9999, 40, false},
		{"logemu no prefix UDP", "Dec  1 22:59:02 vm  IN=lo OUT= MAC=00:00:00:00:00:00:00:00:00:00:00:00:08:00 SRC=127.0.0.1 DST=127.0.0.1 LEN=28 TOS=00 PREC=0x00 TTL=64 ID=48858 PROTO=UDP SPT=2652 DPT=9998 LEN=8 MARK=0x0 ",
			FormatLOGEMU, 1, "", "lo", "", "127.0.0.1", packet.ProtoUDP, 0, 2652, 9998, 28, false},
		{"logemu IPv6", "Dec  1 22:59:05 vm denied6 IN=lo OUT= MAC=00:00:00:00:00:00:00:00:00:00:00:00:86:dd SRC=::1 DST=::1 LEN=80 TC=0 HOPLIMIT=64 FLOWLBL=707941 PROTO=TCP SPT=60698 DPT=9999 SEQ=190317637 ACK=0 WINDOW=65476 SYN URGP=0 MARK=0x0 ",
			FormatLOGEMU, 1, "denied6 ", "lo", "", "::1", packet.ProtoTCP, packet.FlagSYN, 60698, 9999, 80, false},
		{"logemu IPv6 fragment", "Dec  1 22:59:05 vm d IN=eth0 OUT= MAC= SRC=2001:db8::1 DST=::1 LEN=1280 TC=0 HOPLIMIT=64 FLOWLBL=7 FRAG: 1232 ID: 0000abcd PROTO=UDP ",
			FormatLOGEMU, 1, "d ", "eth0", "", "2001:db8::1", packet.ProtoUDP, 0, 0, 0, 1280, true},
		{"ulogd JSON", `{"timestamp": "2026-12-01T22:59:02.517035", "dvc": "Netfilter", "raw.pktlen": 40, "oob.prefix": "denied", "oob.time.sec": 1796165942, "oob.time.usec": 517035, "oob.family": 2, "oob.protocol": 2048, "ip.protocol": 6, "ip.totlen": 40, "ip.fragoff": 16384, "src_port": 2652, "dest_port": 9999, "tcp.urg": 1, "tcp.ack": 1, "tcp.psh": 1, "tcp.rst": 0, "tcp.syn": 0, "tcp.fin": 1, "oob.in": "eth\u0030", "oob.out": "", "src_ip": "198.51.100.7", "dest_ip": "127.0.0.1"}`,
			FormatUlogdJSON, 1, "denied", "eth0", "", "198.51.100.7", packet.ProtoTCP, packet.FlagURG | packet.FlagACK | packet.FlagPSH | packet.FlagFIN, 2652, 9999, 40, false},
		{"ulogd JSON IPv6 fragment", `{"oob.prefix": "", "oob.family": 10, "ip.protocol": 17, "ip6.payloadlen": 1240, "ip6.fragoff": 1232, "oob.in": "eth0", "oob.out": "eth1", "src_ip": "2001:db8::2"}`,
			FormatUlogdJSON, 1, "", "eth0", "eth1", "2001:db8::2", packet.ProtoUDP, 0, 0, 0, 1280, true},
		{"rsyslog repeat", "Nov 25 13:35:24 web1 kernel: message repeated 5 times: [ [ 1485.392167] DROP: IN=eth0 OUT=eth1 MAC= SRC=198.51.100.7 DST=203.0.113.10 LEN=40 TOS=0x00 PREC=0x00 TTL=115 ID=11186 DF PROTO=TCP SPT=58445 DPT=22 WINDOW=254 RES=0x00 SYN URGP=0 ]",
			FormatSyslog, 5, "DROP: ", "eth0", "eth1", "198.51.100.7", packet.ProtoTCP, packet.FlagSYN, 58445, 22, 40, false},
		{"journal JSON", `{"MESSAGE":"X: IN=eth0 OUT= SRC=10.0.0.1 DST=10.0.0.2 LEN=40 TOS=0x00 PREC=0x00 TTL=1 ID=1 PROTO=UDP SPT=1 DPT=53 LEN=20 ","_TRANSPORT":"kernel"}`,
			FormatJournalJSON, 1, "X: ", "eth0", "", "10.0.0.1", packet.ProtoUDP, 0, 1, 53, 40, false},
		{"bad SRC keeps the packet", "x IN=eth0 OUT= SRC=10.0.0.999 DST=10.0.0.2 LEN=40 TOS=0x00 PREC=0x00 TTL=1 ID=1 PROTO=UDP SPT=1 DPT=53 LEN=20",
			FormatBare, 1, "x ", "eth0", "", "", packet.ProtoUDP, 0, 1, 53, 40, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var p Parser
			var r Record
			if st, reason := p.Parse([]byte(tc.line), &r); st != OK {
				t.Fatalf("status %d (%s), want OK", st, reason)
			}
			pk := r.Packet
			var src string
			if pk.Src != [16]byte{} {
				if pk.Family == packet.FamilyIPv4 {
					src = netip.AddrFrom4([4]byte(pk.Src[:4])).String()
				} else {
					src = netip.AddrFrom16(pk.Src).String()
				}
			}
			if r.Format != tc.format || r.Repeat != tc.repeat || string(r.Prefix) != tc.prefix || string(r.In) != tc.in || string(r.Out) != tc.out || src != tc.src {
				t.Errorf("format %s repeat %d prefix %q in %q out %q src %q; want %s %d %q %q %q %q",
					r.Format, r.Repeat, r.Prefix, r.In, r.Out, src, tc.format, tc.repeat, tc.prefix, tc.in, tc.out, tc.src)
			}
			if pk.Proto != tc.proto || pk.Fragment != tc.frag || pk.Length != tc.length || pk.SrcPort != tc.sport || pk.DstPort != tc.dport {
				t.Errorf("packet %+v; want proto %d frag %v len %d ports %d>%d", pk, tc.proto, tc.frag, tc.length, tc.sport, tc.dport)
			}
			if pk.Proto == packet.ProtoTCP && (!pk.HasFlags || pk.TCPFlags != tc.flags) {
				t.Errorf("flags %#x (has %v), want %#x", pk.TCPFlags, pk.HasFlags, tc.flags)
			}
		})
	}
}

func TestParse4(t *testing.T) {
	for in, ok := range map[string]bool{"1.2.3.4": true, "0.0.0.0": true, "255.255.255.255": true,
		"256.1.1.1": false, "1.2.3": false, "1.2.3.4.5": false, "01.2.3.4": false, "1..3.4": false, "": false, "a.b.c.d": false} {
		if _, got := parse4([]byte(in)); got != ok {
			t.Errorf("parse4(%q) ok = %v, want %v", in, got, ok)
		}
	}
}
