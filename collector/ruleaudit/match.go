// Package ruleaudit reads the firewall's log rules from the kernel over
// nf_tables netlink and exposes, per bound NFLOG group, how many rules log to
// it and what their packet counters say, so that a vanished rule and counts
// that disagree with the rule's own counter become visible.
package ruleaudit

import (
	"encoding/binary"

	"github.com/google/nftables/expr"
	"github.com/google/nftables/xt"
	"golang.org/x/sys/unix"
)

// LogTarget is what one rule's expressions say about logging to NFLOG.
type LogTarget struct {
	Group   uint16
	Counted bool   // the rule has a counter expression
	Packets uint64 // its packet count (0 when not Counted)
}

// Match finds the NFLOG group a rule logs to. Native nft rules carry a log
// expression with the group flag ("log group N"); iptables-nft's
// "-j NFLOG --nflog-group N" is an xtables target expression whose info blob
// is struct xt_nflog_info. A log expression without a group writes to the
// kernel log, not to NFLOG, and is no log rule here.
func Match(exprs []expr.Any) (LogTarget, bool) {
	var t LogTarget
	found := false
	for _, e := range exprs {
		switch e := e.(type) {
		case *expr.Log:
			if !found && e.Key&(1<<unix.NFTA_LOG_GROUP) != 0 {
				t.Group, found = e.Group, true
			}
		case *expr.Target:
			if g, ok := nflogGroup(e); ok && !found {
				t.Group, found = g, true
			}
		case *expr.Counter:
			t.Counted = true
			t.Packets += e.Packets
		}
	}
	if !found {
		return LogTarget{}, false
	}
	return t, true
}

// nflogGroup reads the group from an NFLOG target's xt_nflog_info
// {u32 len; u16 group; u16 threshold; u16 flags; u16 pad; char prefix[64]},
// which iptables writes in the host's byte order.
func nflogGroup(t *expr.Target) (uint16, bool) {
	if t.Name != "NFLOG" {
		return 0, false
	}
	info, ok := t.Info.(*xt.Unknown)
	if !ok || info == nil || len(*info) < 6 {
		return 0, false
	}
	return binary.NativeEndian.Uint16((*info)[4:6]), true
}
