package source

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// parseBoth parses b with a layout learned from first, and the slow way. It
// reports whether the layout matched; when it did, both results must agree.
func parseBoth(t testing.TB, first, b []byte) (matched bool, slow Message) {
	t.Helper()
	var lay attrLayout
	var m Message
	_ = parseAttrs(first, false, &m, &lay)
	slowErr := parseAttrs(b, false, &slow, nil)
	var fast Message
	if !lay.parse(b, &fast) {
		if !messagesEqual(fast, Message{}) {
			t.Fatalf("layout did not match but wrote %+v", fast)
		}
		return false, slow
	}
	if slowErr != nil {
		t.Fatalf("layout matched %x, which the walk rejects: %v", b, slowErr)
	}
	if !messagesEqual(fast, slow) {
		t.Fatalf("layout read\n%+v\nwalk read\n%+v\nof %x", fast, slow, b)
	}
	return true, slow
}

func messagesEqual(a, b Message) bool {
	return a.Group == b.Group && a.Family == b.Family && a.HwProtocol == b.HwProtocol && a.HasHwProto == b.HasHwProto &&
		a.Hook == b.Hook && bytes.Equal(a.Prefix, b.Prefix) && (a.Prefix == nil) == (b.Prefix == nil) &&
		bytes.Equal(a.Payload, b.Payload) && (a.Payload == nil) == (b.Payload == nil) &&
		a.Seq == b.Seq && a.HasSeq == b.HasSeq && a.TimestampNs == b.TimestampNs && a.HasTimestamp == b.HasTimestamp &&
		a.SeqGlobal == b.SeqGlobal && a.HasSeqGlobal == b.HasSeqGlobal
}

// The global sequence number follows the group's own (NFULNL_CFG_F_SEQ and
// F_SEQ_GLOBAL set): the walk and a learned layout both read it.
func TestSeqGlobal(t *testing.T) {
	msg := func(seq, global uint32) []byte {
		b := kernelMessage("denied", seq, 1700000000, []byte{0x45, 0, 0, 20})
		// Put NFULA_SEQ_GLOBAL before the payload, where the kernel writes it.
		pl := len(b) - 8
		return append(tlv(append([]byte(nil), b[:pl]...), binary.NativeEndian, attrSeqGlobal, be32(global)), b[pl:]...)
	}
	first, next := msg(1, 40), msg(2, 43)
	matched, slow := parseBoth(t, first, next)
	if !matched {
		t.Fatal("the layout of a message with a global sequence number did not match the next one")
	}
	if !slow.HasSeqGlobal || slow.SeqGlobal != 43 || !slow.HasSeq || slow.Seq != 2 {
		t.Errorf("read seq %d/%v global %d/%v, want 2 and 43", slow.Seq, slow.HasSeq, slow.SeqGlobal, slow.HasSeqGlobal)
	}
}

// kernelMessage is the attribute part of a message as __build_packet_message
// writes it for an iptables NFLOG rule on INPUT, with the given prefix,
// sequence number, timestamp and payload.
func kernelMessage(prefix string, seq uint32, sec uint64, payload []byte) []byte {
	o := binary.NativeEndian
	var b []byte
	b = tlv(b, o, attrPacketHdr, []byte{0x86, 0xdd, 1, 0})
	b = tlv(b, o, 4, []byte{0, 0, 0, 0}) // NFULA_MARK
	ts := binary.BigEndian.AppendUint64(nil, sec)
	b = tlv(b, o, attrTimestamp, binary.BigEndian.AppendUint64(ts, 123456))
	b = tlv(b, o, 5, []byte{0, 0, 0, 2}) // NFULA_IFINDEX_INDEV
	b = tlv(b, o, 8, make([]byte, 12))   // NFULA_HWADDR
	b = tlv(b, o, 16, make([]byte, 14))  // NFULA_HWHEADER
	b = tlv(b, o, 17, []byte{0, 1})      // NFULA_HWTYPE
	b = tlv(b, o, 18, []byte{0, 14})     // NFULA_HWLEN
	b = tlv(b, o, attrPrefix, append([]byte(prefix), 0))
	b = tlv(b, o, attrSeq, be32(seq))
	return tlv(b, o, attrPayload, payload)
}

func TestAttrLayout(t *testing.T) {
	first := kernelMessage("nfdrop: ", 1, 1700000000, make([]byte, 60))
	withExtra := tlv(kernelMessage("nfdrop: ", 2, 1700000001, make([]byte, 60)), binary.NativeEndian, 14, be32(0)) // NFULA_GID after the payload
	flagged := kernelMessage("nfdrop: ", 2, 1700000001, make([]byte, 60))
	binary.NativeEndian.PutUint16(flagged[2:], attrPacketHdr|0x8000) // NLA_F_NESTED on the first header
	for _, tc := range []struct {
		name  string
		b     []byte
		match bool
	}{
		{"same layout, new values", kernelMessage("nfdrop: ", 99, 1800000000, bytes.Repeat([]byte{7}, 60)), true},
		{"longer payload", kernelMessage("nfdrop: ", 2, 1700000001, bytes.Repeat([]byte{1}, 256)), true},
		{"unaligned payload", kernelMessage("nfdrop: ", 2, 1700000001, bytes.Repeat([]byte{1}, 41)), true},
		{"empty payload", kernelMessage("nfdrop: ", 2, 1700000001, nil), true},
		{"same-length prefix", kernelMessage("denied: ", 2, 1700000001, make([]byte, 60)), true},
		{"longer prefix", kernelMessage("nfdrop-drop: ", 2, 1700000001, make([]byte, 60)), false},
		{"attribute after the payload", withExtra, false},
		{"flag bits differ", flagged, false},
		{"truncated in the payload header", first[:len(first)-62], false},
		{"payload runs past the message", first[:len(first)-4], false},
		{"nothing", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			matched, slow := parseBoth(t, first, tc.b)
			if matched != tc.match {
				t.Fatalf("layout matched %v, want %v (walk read %+v)", matched, tc.match, slow)
			}
		})
	}
}

func TestAttrLayoutIsNotLearnedFromBadMessages(t *testing.T) {
	var lay attrLayout
	var m Message
	bad := kernelMessage("x", 1, 1, nil)
	binary.NativeEndian.PutUint16(bad[8:], 0xff) // the second header's length runs past the end
	if err := parseAttrs(bad, false, &m, &lay); err == nil || lay.n != 0 {
		t.Fatalf("err %v, learned %d attributes; want an error and nothing learned", err, lay.n)
	}
	if lay.parse(kernelMessage("x", 1, 1, nil), &m) {
		t.Fatal("an empty layout matched")
	}
	// A wanted attribute twice (the fuzzer's find: a second timestamp too short
	// to be read must not hide the first): walked every time, never learned.
	twice := tlv(kernelMessage("x", 1, 1, nil), binary.NativeEndian, attrTimestamp, make([]byte, 14))
	if err := parseAttrs(twice, false, &m, &lay); err != nil || lay.n != 0 {
		t.Fatalf("two timestamps: err %v, learned %d attributes; want no error and nothing learned", err, lay.n)
	}
	var long []byte
	for i := 0; i < maxLayoutAttrs+1; i++ {
		long = tlv(long, binary.NativeEndian, 4, be32(0))
	}
	if err := parseAttrs(long, false, &m, &lay); err != nil || lay.n != 0 {
		t.Fatalf("%d attributes: err %v, learned %d; want no error and nothing learned", maxLayoutAttrs+1, err, lay.n)
	}
}

// FuzzAttrLayout: whatever the layout was learned from, a message it accepts
// must read exactly as the walk reads it.
func FuzzAttrLayout(f *testing.F) {
	k := kernelMessage("nfdrop: ", 1, 1700000000, make([]byte, 60))
	f.Add(k, kernelMessage("nfdrop: ", 5, 1700000005, make([]byte, 200)))
	f.Add(k, kernelMessage("other: ", 5, 1700000005, make([]byte, 20)))
	f.Add(k, k[:len(k)-3])
	f.Add(benchNFLOGMessage(), benchNFLOGMessage())
	f.Fuzz(func(t *testing.T, first, b []byte) {
		parseBoth(t, first, b)
		// and a copy of first with some payload-sized tail change
		if len(first) > 8 {
			c := append([]byte(nil), first...)
			c[len(c)-1] ^= 0xff
			parseBoth(t, first, c)
		}
	})
}
