package ruleaudit

import (
	"encoding/binary"
	"testing"

	"github.com/google/nftables/expr"
	"github.com/google/nftables/xt"
	"golang.org/x/sys/unix"
)

// nflogInfo builds struct xt_nflog_info as iptables writes it.
func nflogInfo(group uint16, prefix string) *xt.Unknown {
	b := make([]byte, 4+2+2+2+2+64)
	binary.NativeEndian.PutUint32(b[0:], 256) // len (--nflog-size)
	binary.NativeEndian.PutUint16(b[4:], group)
	binary.NativeEndian.PutUint16(b[8:], 1) // flags: XT_NFLOG_F_COPY_LEN
	copy(b[12:], prefix)
	u := xt.Unknown(b)
	return &u
}

const groupKey = 1<<unix.NFTA_LOG_GROUP | 1<<unix.NFTA_LOG_PREFIX

func TestMatch(t *testing.T) {
	short := xt.Unknown([]byte{1, 0, 0, 0, 5})
	tests := []struct {
		name   string
		exprs  []expr.Any
		want   LogTarget
		wantOK bool
	}{
		{"nft log group with counter",
			[]expr.Any{&expr.Log{Key: groupKey, Group: 5}, &expr.Counter{Packets: 7, Bytes: 700}},
			LogTarget{Group: 5, Counted: true, Packets: 7}, true},
		{"nft counter before log",
			[]expr.Any{&expr.Counter{Packets: 3}, &expr.Log{Key: groupKey, Group: 0}},
			LogTarget{Group: 0, Counted: true, Packets: 3}, true},
		{"nft log group without counter",
			[]expr.Any{&expr.Log{Key: groupKey, Group: 2}},
			LogTarget{Group: 2}, true},
		{"nft log group 0 is a group",
			[]expr.Any{&expr.Log{Key: 1 << unix.NFTA_LOG_GROUP}},
			LogTarget{Group: 0}, true},
		{"nft log to the kernel log (no group)",
			[]expr.Any{&expr.Log{Key: 1 << unix.NFTA_LOG_PREFIX, Group: 5}, &expr.Counter{Packets: 9}},
			LogTarget{}, false},
		{"iptables-nft -j NFLOG --nflog-group 5",
			[]expr.Any{&expr.Counter{Packets: 11}, &expr.Target{Name: "NFLOG", Info: nflogInfo(5, "denied")}},
			LogTarget{Group: 5, Counted: true, Packets: 11}, true},
		{"iptables-nft -j NFLOG group 65535",
			[]expr.Any{&expr.Counter{}, &expr.Target{Name: "NFLOG", Info: nflogInfo(65535, "")}},
			LogTarget{Group: 65535, Counted: true}, true},
		{"iptables-nft -j LOG is no NFLOG rule",
			[]expr.Any{&expr.Counter{Packets: 1}, &expr.Target{Name: "LOG", Info: nflogInfo(5, "")}},
			LogTarget{}, false},
		{"truncated NFLOG info",
			[]expr.Any{&expr.Counter{Packets: 1}, &expr.Target{Name: "NFLOG", Info: &short}},
			LogTarget{}, false},
		{"NFLOG without info",
			[]expr.Any{&expr.Target{Name: "NFLOG"}},
			LogTarget{}, false},
		{"a drop rule",
			[]expr.Any{&expr.Counter{Packets: 4}, &expr.Verdict{Kind: expr.VerdictDrop}},
			LogTarget{}, false},
		{"no expressions", nil, LogTarget{}, false},
		{"first log of two wins",
			[]expr.Any{&expr.Log{Key: groupKey, Group: 1}, &expr.Log{Key: groupKey, Group: 2}, &expr.Counter{Packets: 2}},
			LogTarget{Group: 1, Counted: true, Packets: 2}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := Match(tc.exprs)
			if ok != tc.wantOK || got != tc.want {
				t.Errorf("Match = %+v, %v; want %+v, %v", got, ok, tc.want, tc.wantOK)
			}
		})
	}
}

// FuzzNFLOGInfo feeds arbitrary xt_nflog_info blobs: the group is read from
// bytes 4-5 when there are at least 6, and nothing panics.
func FuzzNFLOGInfo(f *testing.F) {
	f.Add([]byte(*nflogInfo(5, "denied")))
	f.Add([]byte{})
	f.Add([]byte{1, 2, 3, 4, 5})
	f.Fuzz(func(t *testing.T, b []byte) {
		u := xt.Unknown(b)
		got, ok := Match([]expr.Any{&expr.Target{Name: "NFLOG", Info: &u}})
		if ok != (len(b) >= 6) {
			t.Fatalf("len %d: matched %v", len(b), ok)
		}
		if ok && got.Group != binary.NativeEndian.Uint16(b[4:6]) {
			t.Fatalf("group %d from %x", got.Group, b)
		}
	})
}
