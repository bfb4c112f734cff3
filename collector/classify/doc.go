// Package classify owns the label schema of nfdrop_packets_total: the classes
// and sides a dropped packet is sorted into, the listed service ports, the
// label names and values, the packed series key, and the rule-prefix table
// with its overflow value. The exporter's collector, the offline explain
// command, conntrack correlation and the lab all take these from here, so a
// packet gets the same labels wherever it is counted.
//
// # Classes
//
// A packet the decoder could not read is malformed; a non-first IP fragment
// (no transport header) is fragment. A TCP packet is classified by its flags,
// with ECE and CWR ignored because ECN sets them on any kind of segment:
//
//   - probe: a flag combination no TCP stack sends — SYN together with FIN or
//     RST, FIN together with RST, or none of SYN, ACK and RST (NULL, FIN, XMAS
//     and PSH- or URG-only scans);
//   - handshake: SYN without FIN or RST (a connection attempt or its SYN+ACK);
//   - teardown: everything else, which always carries ACK or RST — the shape
//     of the last packets of a connection the firewall had already forgotten
//     (an ACK scan has the same shape; conntrack correlation tells them apart).
//
// Any other protocol is other.
//
// # Flags
//
// The flags label lists the set flags in the order the kernel's LOG target
// writes them, URG,ACK,PSH,RST,SYN,FIN, or NONE when none is set; it is empty
// for packets that are not TCP.
//
// # Service port and side
//
// For packets with ports (TCP, UDP, UDP-Lite, SCTP) one of the two ports is
// the service port, and the side says which end sent the packet: client when
// the service port is the destination, server when it is the source.
//
//   - A SYN tells the direction itself: without ACK it is the client's, with
//     ACK it is the server's answer.
//   - Otherwise the destination is the service if it is listed, else the
//     source if it is listed, else the lower of the two (the destination on a
//     tie), because services usually listen below the ephemeral range.
//
// The port label is the number of a listed port (--collector.ports) and
// otherwise its IANA range: system (0-1023), user (1024-49151) or dynamic
// (49152-65535), so the label's values stay a small, fixed set.
//
// # Prefixes
//
// The prefix label is the rule's log prefix with surrounding whitespace
// trimmed. Each byte that is not part of a UTF-8 character (a Latin-1 "ä",
// which iptables and nft accept) becomes U+FFFD, because a label value must
// be UTF-8; prefixes that differ only in such bytes share a label value. Only
// the first max-prefixes distinct values become label values; later ones are
// counted as "(other)". A rule prefix that is itself "(other)" (or "((other))"
// and so on) gets one more pair of parentheses, so it never merges with the
// overflow series.
package classify
