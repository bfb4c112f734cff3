// Package ctlog handles conntrack's own log messages: the ones the kernel
// writes for every packet conntrack declares INVALID (or ignores) when
// net.netfilter.nf_conntrack_log_invalid is set and nfnetlink_log is the
// logger of the family. They arrive on NFLOG group 0 with a prefix such as
// "nf_ct_proto_6: invalid new " and the packet as payload. They are not drops:
// this package recognises them, counts them by reason, and joins each drop
// of the same packet to its reason.
package ctlog

// Reason is conntrack's reason for a packet, from a fixed vocabulary: the
// kernel's message with numbers and states stripped. ReasonNone is the reason
// of a drop conntrack wrote nothing about.
type Reason uint8

const (
	ReasonNone Reason = iota
	ReasonInvalidNew
	ReasonInvalidFlags
	ReasonBadChecksum
	ReasonTruncated
	ReasonInvalidState
	ReasonIgnoredState
	ReasonInvalidRST
	ReasonChallengeACKIgnored
	ReasonSeqOverUpperBound
	ReasonAckOverUpperBound
	ReasonMoreBytesThanExpected
	ReasonSeqUnderLowerBound
	ReasonAckUnderLowerBound
	ReasonTimeoutLowered
	ReasonOther
	NumReasons
)

var reasonNames = [NumReasons]string{
	ReasonNone:                  "none",
	ReasonInvalidNew:            "invalid_new",
	ReasonInvalidFlags:          "invalid_flags",
	ReasonBadChecksum:           "bad_checksum",
	ReasonTruncated:             "truncated",
	ReasonInvalidState:          "invalid_state",
	ReasonIgnoredState:          "ignored_state",
	ReasonInvalidRST:            "invalid_rst",
	ReasonChallengeACKIgnored:   "challenge_ack_ignored",
	ReasonSeqOverUpperBound:     "seq_over_upper_bound",
	ReasonAckOverUpperBound:     "ack_over_upper_bound",
	ReasonMoreBytesThanExpected: "more_bytes_than_expected",
	ReasonSeqUnderLowerBound:    "seq_under_lower_bound",
	ReasonAckUnderLowerBound:    "ack_under_lower_bound",
	ReasonTimeoutLowered:        "timeout_lowered",
	ReasonOther:                 "other",
}

// String returns the reason label value.
func (r Reason) String() string {
	if r < NumReasons {
		return reasonNames[r]
	}
	return "other"
}

// conntrackPrefix starts every message conntrack logs: "nf_ct_proto_<N>: "
// from the protocol trackers since Linux 4.13, "nf_ct_tcp: ", "nf_ct_udp: ",
// "nf_ct_icmp: " ... before, and "nf_ct_<helper>: " from connection helpers.
const conntrackPrefix = "nf_ct_"

// phrases maps the start of a message (after "nf_ct_...: ", compared without
// case) to its reason, for the texts of current and older kernels. The first
// match wins: longer phrases that share a start come first.
var phrases = [...]struct {
	text   string
	reason Reason
}{
	// Linux >= 6.1 (nf_conntrack_proto_tcp.c) and 4.13-6.0.
	{"invalid new", ReasonInvalidNew},
	{"invalid tcp flag combination", ReasonInvalidFlags},
	{"bad checksum", ReasonBadChecksum},
	{"bad tcp checksum", ReasonBadChecksum},
	{"truncated", ReasonTruncated}, // "truncated packet", "truncated/malformed packet", "truncated header"
	{"short packet", ReasonTruncated},
	{"packet too short", ReasonTruncated},
	{"invalid rst", ReasonInvalidRST},
	{"challenge-ack ignored", ReasonChallengeACKIgnored},
	{"seq is over upper bound", ReasonSeqOverUpperBound},
	{"seq is over the upper bound", ReasonSeqOverUpperBound},
	{"ack is over upper bound", ReasonAckOverUpperBound},
	{"ack is over the upper bound", ReasonAckOverUpperBound},
	{"seq is under lower bound", ReasonSeqUnderLowerBound},
	{"seq is under the lower bound", ReasonSeqUnderLowerBound},
	{"ignored ack under lower bound", ReasonAckUnderLowerBound},
	{"ack is under the lower bound", ReasonAckUnderLowerBound},
	// Linux < 6.1: "invalid state ", "invalid packet ignored [in state S] ".
	{"invalid state", ReasonInvalidState},
	{"invalid packet ignored", ReasonIgnoredState},
}

// Recognise reports whether prefix (an NFLOG message's prefix, as sent) is
// conntrack's own, and its reason. It does not allocate.
func Recognise(prefix []byte) (Reason, bool) {
	if len(prefix) < len(conntrackPrefix) || string(prefix[:len(conntrackPrefix)]) != conntrackPrefix {
		return 0, false
	}
	// The subsystem name ends at the first ": ".
	i := len(conntrackPrefix)
	for ; i+1 < len(prefix); i++ {
		if prefix[i] == ':' && prefix[i+1] == ' ' {
			break
		}
	}
	if i+1 >= len(prefix) {
		return 0, false // "nf_ct_..." without ": ": a rule's prefix, not conntrack's
	}
	return reasonOf(prefix[i+2:]), true
}

// reasonOf maps a message text without its subsystem to a reason.
func reasonOf(msg []byte) Reason {
	for _, p := range phrases {
		if hasPrefixFold(msg, p.text) {
			return p.reason
		}
	}
	// "packet (index N) in dir D invalid, state S", "... ignored, state S",
	// "packet (index N, dir D) response for index M lower timeout to T".
	if hasPrefixFold(msg, "packet (index") {
		switch {
		case contains(msg, "lower timeout"):
			return ReasonTimeoutLowered
		case contains(msg, " invalid, state"):
			return ReasonInvalidState
		case contains(msg, " ignored, state"):
			return ReasonIgnoredState
		}
		return ReasonOther
	}
	// "N bytes more than expected".
	if len(msg) > 0 && msg[0] >= '0' && msg[0] <= '9' && contains(msg, " bytes more than expected") {
		return ReasonMoreBytesThanExpected
	}
	return ReasonOther
}

// hasPrefixFold is bytes.HasPrefix with ASCII case folding; p is lower case.
func hasPrefixFold(b []byte, p string) bool {
	if len(b) < len(p) {
		return false
	}
	for i := 0; i < len(p); i++ {
		c := b[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != p[i] {
			return false
		}
	}
	return true
}

// contains reports whether b contains s (exact case).
func contains(b []byte, s string) bool {
	for i := 0; i+len(s) <= len(b); i++ {
		if string(b[i:i+len(s)]) == s {
			return true
		}
	}
	return false
}
