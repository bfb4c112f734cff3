//go:build linux

package e2elab

import (
	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop-lab/lab"
	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop-lab/lab/craft"
)

// AuditSet returns the crafted set: TCP flag combinations
// conntrack rejects (INVALID), and packets it tracks as NEW. All of them
// reach the log rule (neither ESTABLISHED nor NEW to 80/443).
func AuditSet(v6 bool) (invalid, valid lab.Scenario) {
	src, dst := lab.ClientIPv4, lab.ServerIPv4
	if v6 {
		src, dst = lab.ClientIPv6, lab.ServerIPv6
	}
	tcp := func(desc string, flags uint8, sport uint16, n int) lab.Send {
		p := craft.Packet{Src: src, Dst: dst, Proto: craft.ProtoTCP, SrcPort: sport, DstPort: 22, Flags: flags, Window: 502, Seq: 1000}
		if flags&craft.ACK != 0 {
			p.Ack = 5000
		}
		return lab.Send{Desc: desc, Packet: p, Count: n}
	}
	invalid = lab.Scenario{Name: "invalid", Sends: []lab.Send{
		tcp("NULL scan", 0, 41001, 3),
		tcp("SYN/FIN", craft.SYN|craft.FIN, 41002, 2),
		tcp("XMAS scan", craft.URG|craft.PSH|craft.FIN, 41003, 2),
		tcp("FIN without ACK", craft.FIN, 41004, 1),
		tcp("SYN/RST", craft.SYN|craft.RST, 41005, 1),
	}}
	valid = lab.Scenario{Name: "valid", Sends: []lab.Send{
		tcp("SYN to 22", craft.SYN, 42001, 1),
		tcp("SYN to 22, another flow", craft.SYN, 42002, 1),
		{Desc: "UDP to 53", Packet: craft.Packet{Src: src, Dst: dst, Proto: craft.ProtoUDP, SrcPort: 42003, DstPort: 53, Payload: []byte("q")}, Count: 3},
	}}
	return invalid, valid
}
