package ctlog

import (
	"testing"
)

// The prefixes below are what kernels send: "nf_ct_proto_%d: %pV " from
// nf_l4proto_log_invalid (Linux >= 4.13), the older per-protocol prefixes,
// and a helper's message.
func TestRecognise(t *testing.T) {
	for _, tc := range []struct {
		prefix string
		want   Reason
		ok     bool
	}{
		{"nf_ct_proto_6: invalid new ", ReasonInvalidNew, true},
		{"nf_ct_proto_6: invalid tcp flag combination ", ReasonInvalidFlags, true},
		{"nf_ct_proto_6: bad checksum ", ReasonBadChecksum, true},
		{"nf_ct_proto_6: truncated packet ", ReasonTruncated, true},
		{"nf_ct_proto_6: packet (index 2) in dir 0 invalid, state SYN_SENT ", ReasonInvalidState, true},
		{"nf_ct_proto_6: packet (index 1) in dir 1 ignored, state ESTABLISHED ", ReasonIgnoredState, true},
		{"nf_ct_proto_6: invalid rst ", ReasonInvalidRST, true},
		{"nf_ct_proto_6: challenge-ack ignored ", ReasonChallengeACKIgnored, true},
		{"nf_ct_proto_6: SEQ is over upper bound 3390254066 (over the window of the receiver) ", ReasonSeqOverUpperBound, true},
		{"nf_ct_proto_6: ACK is over upper bound 2914106115 (ACKed data not seen yet) ", ReasonAckOverUpperBound, true},
		{"nf_ct_proto_6: 1318 bytes more than expected ", ReasonMoreBytesThanExpected, true},
		{"nf_ct_proto_6: SEQ is under lower bound 12 (already ACKed data retransmitted) ", ReasonSeqUnderLowerBound, true},
		{"nf_ct_proto_6: ignored ACK under lower bound 77 (possible overly delayed) ", ReasonAckUnderLowerBound, true},
		{"nf_ct_proto_6: packet (index 2, dir 1) response for index 2 lower timeout to 300 ", ReasonTimeoutLowered, true},
		// Linux 4.13 to 6.0.
		{"nf_ct_proto_6: SEQ is over the upper bound (over the window of the receiver) ", ReasonSeqOverUpperBound, true},
		{"nf_ct_proto_6: ACK is over the upper bound (ACKed data not seen yet) ", ReasonAckOverUpperBound, true},
		{"nf_ct_proto_6: SEQ is under the lower bound (already ACKed data retransmitted) ", ReasonSeqUnderLowerBound, true},
		{"nf_ct_proto_6: ACK is under the lower bound (possible overly delayed ACK) ", ReasonAckUnderLowerBound, true},
		{"nf_ct_proto_6: invalid packet ignored in state ESTABLISHED ", ReasonIgnoredState, true},
		{"nf_ct_proto_6: invalid state ", ReasonInvalidState, true},
		{"nf_ct_proto_17: short packet ", ReasonTruncated, true},
		{"nf_ct_proto_17: truncated header ", ReasonTruncated, true},
		{"nf_ct_proto_1: bad checksum ", ReasonBadChecksum, true},
		// Before 4.13.
		{"nf_ct_tcp: invalid RST ", ReasonInvalidRST, true},
		{"nf_ct_tcp: bad TCP checksum ", ReasonBadChecksum, true},
		{"nf_ct_tcp: invalid TCP flag combination ", ReasonInvalidFlags, true},
		{"nf_ct_tcp: truncated/malformed packet ", ReasonTruncated, true},
		{"nf_ct_tcp: invalid packet ignored ", ReasonIgnoredState, true},
		{"nf_ct_tcp: killing out of sync session ", ReasonOther, true},
		{"nf_ct_icmp: short packet ", ReasonTruncated, true},
		// A helper's message, and texts no kernel writes.
		{"nf_ct_ftp: dropping packet: partial response ", ReasonOther, true},
		{"nf_ct_proto_6: ", ReasonOther, true},
		{"nf_ct_proto_6: packet (index 9) in dir 0 weird ", ReasonOther, true},
		// Rules' prefixes.
		{"denied ", 0, false},
		{"nf_ct_drop", 0, false},
		{"nf_ct_x:", 0, false},
		{"", 0, false},
		{"NF_CT_PROTO_6: invalid new ", 0, false},
	} {
		r, ok := Recognise([]byte(tc.prefix))
		if r != tc.want || ok != tc.ok {
			t.Errorf("Recognise(%q) = %v, %v; want %v, %v", tc.prefix, r, ok, tc.want, tc.ok)
		}
	}
}

func TestReasonNames(t *testing.T) {
	seen := map[string]bool{}
	for r := Reason(0); r < NumReasons; r++ {
		n := r.String()
		if n == "" || seen[n] {
			t.Errorf("reason %d: name %q empty or repeated", r, n)
		}
		seen[n] = true
	}
	if got := NumReasons.String(); got != "other" {
		t.Errorf("out-of-range reason reads %q, want other", got)
	}
}

func TestRecogniseAllocs(t *testing.T) {
	p := []byte("nf_ct_proto_6: packet (index 2, dir 1) response for index 2 lower timeout to 300 ")
	if n := testing.AllocsPerRun(100, func() { Recognise(p) }); n != 0 {
		t.Errorf("Recognise allocates %v times", n)
	}
}

func FuzzRecognise(f *testing.F) {
	for _, s := range []string{"nf_ct_proto_6: invalid new ", "nf_ct_tcp: invalid RST ", "nf_ct_proto_6: packet (index 2) in dir 0 invalid, state X ", "nf_ct_proto_6: 12 bytes more than expected", "denied", "nf_ct_: "} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, ok := Recognise(b)
		if r >= NumReasons || r == ReasonNone && ok {
			t.Fatalf("Recognise(%q) = %v, %v: outside the vocabulary", b, r, ok)
		}
		if ok != (len(b) >= 6 && string(b[:6]) == "nf_ct_" && contains(b[6:], ": ")) {
			t.Fatalf("Recognise(%q) ok = %v", b, ok)
		}
	})
}
