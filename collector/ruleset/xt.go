package ruleset

import (
	"encoding/binary"
	"encoding/hex"
	"strings"
)

// xtables expressions (nft_compat) carry the info blob of an iptables match
// or target, in the host's byte order, as iptables-nft wrote it.

func nativeU32(b []byte) uint32 { return binary.NativeEndian.Uint32(b) }
func nativeU16(b []byte) uint16 { return binary.NativeEndian.Uint16(b) }

func (rd *ruleDecoder) xtTarget(as *attrs) error {
	rd.r.Xtables = true
	name := as.str(xtName)
	info, _ := as.get(xtInfo)
	switch name {
	case "NFLOG":
		// struct xt_nflog_info {u32 len; u16 group; u16 threshold;
		// u16 flags; u16 pad; char prefix[64]}
		l := Log{Kind: LogXtNFLOG, NFLOG: true, Before: len(rd.r.Terms), Sampled: rd.limited}
		if len(info) >= 6 {
			l.Group = nativeU16(info[4:6])
		}
		if len(info) > 12 {
			l.Prefix = cstring(info[12:min(len(info), 76)])
		}
		rd.r.Logs = append(rd.r.Logs, l)
	case "LOG":
		// struct xt_log_info {u8 level; u8 logflags; char prefix[30]}
		l := Log{Kind: LogXtLOG, Before: len(rd.r.Terms), Sampled: rd.limited}
		if len(info) > 2 {
			l.Prefix = cstring(info[2:min(len(info), 32)])
		}
		rd.r.Logs = append(rd.r.Logs, l)
	case "REJECT":
		rd.setVerdict(Verdict{Kind: Reject})
	case "NFQUEUE":
		v := Verdict{Kind: Queue}
		if len(info) >= 2 {
			v.Queue = nativeU16(info)
		}
		rd.setVerdict(v)
	case "DNAT", "SNAT", "MASQUERADE", "REDIRECT", "NETMAP":
		rd.setVerdict(Verdict{Kind: NAT})
	case "SYNPROXY":
		rd.setVerdict(Verdict{Kind: Stolen})
	case "MARK", "CONNMARK", "CT", "NOTRACK", "CHECKSUM", "TCPMSS", "TRACE", "AUDIT", "CLASSIFY",
		"SET", "DSCP", "TOS", "TTL", "HL", "TEE", "SECMARK", "CONNSECMARK", "LED", "IDLETIMER",
		"HMARK", "TCPOPTSTRIP", "ECN", "RATEEST":
		// Targets that change the packet or its state and let it continue.
	default:
		rd.setVerdict(Verdict{Kind: Other})
	}
	return nil
}

func (rd *ruleDecoder) xtMatch(as *attrs) error {
	rd.r.Xtables = true
	name := as.str(xtName)
	rev, _ := as.u32(xtRev)
	info, _ := as.get(xtInfo)
	switch name {
	case "comment":
		// struct xt_comment_info {char comment[256]}
		if rd.r.Comment == "" {
			rd.r.Comment = cstring(info)
		}
		return nil
	case "limit":
		rd.rateLimit(&RateLimit{Kind: "xt limit", Text: xtLimitText(info)})
		return nil
	case "hashlimit":
		rd.rateLimit(&RateLimit{Kind: "xt hashlimit", Text: xtHashlimitName(info)})
		return nil
	case "conntrack":
		if t, ok := xtConntrackState(rev, info); ok {
			rd.term(t)
			return nil
		}
	case "state":
		// struct xt_state_info {unsigned int statemask}
		if len(info) >= 4 {
			rd.term(ctStateText(xtStateBits(nativeU32(info)), false))
			return nil
		}
	case "recent", "connlimit", "quota", "statistic", "hashlimit-mt", "set", "connbytes":
		rd.r.Stateful = true
	}
	rd.term("xt:" + name + "/" + uitoa(uint64(rev)) + "(" + hex.EncodeToString(info) + ")")
	return nil
}

// xtConntrackState renders a conntrack match (revisions 1 to 3) that tests
// the state only, as nft's "ct state" is rendered.
//
// struct xt_conntrack_mtinfo{1,2,3}: eight 16-byte addresses and masks,
// u32 expires_min and expires_max, u16 l4proto, four be16 ports, then
// u16 match_flags at 146, u16 invert_flags at 148 and the state mask at 150
// (u8 in revision 1, u16 after).
func xtConntrackState(rev uint32, info []byte) (string, bool) {
	if rev < 1 || rev > 3 || len(info) < 152 {
		return "", false
	}
	const stateFlag = 1        // XT_CONNTRACK_STATE
	const stateAlias = 1 << 13 // XT_CONNTRACK_STATE_ALIAS: iptables' "-m state"
	flags, invert := nativeU16(info[146:]), nativeU16(info[148:])
	if flags&^stateAlias != stateFlag {
		return "", false
	}
	var mask uint32
	if rev == 1 {
		mask = uint32(info[150])
	} else {
		mask = uint32(nativeU16(info[150:]))
	}
	return ctStateText(xtStateBits(mask), invert&stateFlag != 0), true
}

// xtStateBits maps xtables' conntrack state bits to nft's: they agree but
// for untracked (1<<8 in xtables, 1<<6 in nft).
func xtStateBits(m uint32) uint32 {
	out := m & 0x3f
	if m&(1<<8) != 0 {
		out |= 1 << 6
	}
	return out
}

// xtLimitText reads struct xt_rateinfo {u32 avg; u32 burst; ...}: avg is
// the interval between packets in 1/10000 s.
func xtLimitText(info []byte) string {
	if len(info) < 8 {
		return ""
	}
	avg, burst := nativeU32(info), nativeU32(info[4:])
	if avg == 0 {
		return ""
	}
	const scale = 10000
	per := []struct {
		unit string
		secs uint64
	}{{"day", 86400}, {"hour", 3600}, {"minute", 60}, {"second", 1}}
	for _, p := range per {
		n := p.secs * scale / uint64(avg)
		if n >= 1 && p.secs*scale%uint64(avg) == 0 {
			return uitoa(n) + "/" + p.unit + " burst " + uitoa(uint64(burst))
		}
	}
	return uitoa(scale/uint64(avg)) + "/second burst " + uitoa(uint64(burst))
}

// xtHashlimitName reads the table name at the start of
// struct xt_hashlimit_mtinfo{1,2,3} {char name[16]; ...}.
func xtHashlimitName(info []byte) string {
	if len(info) == 0 {
		return ""
	}
	return "name " + strings.TrimSpace(cstring(info[:min(16, len(info))]))
}

// limitText renders a native limit's rate (NFTA_LIMIT_*).
func limitText(as *attrs) string {
	rate, ok := as.u64(limitRate)
	if !ok {
		return ""
	}
	unit, _ := as.u64(limitUnit)
	burst, _ := as.u32(limitBurst)
	typ, _ := as.u32(limitType)
	u := "second"
	switch unit {
	case 60:
		u = "minute"
	case 3600:
		u = "hour"
	case 86400:
		u = "day"
	case 604800:
		u = "week"
	}
	s := uitoa(rate) + "/" + u
	if typ == 1 {
		s = uitoa(rate) + " bytes/" + u
	}
	return s + " burst " + uitoa(uint64(burst))
}
