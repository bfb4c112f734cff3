package collector

import (
	"time"

	"github.com/nfdrop/nfdrop_exporter/collector/classify"
	"github.com/prometheus/client_golang/prometheus"
)

// The exporter's whole metric surface: every family's name, help and
// labels, in one place. Label names and values of the packet series come
// from package classify; the other packages only count.

const namespace = "nfdrop"

// Label names that package classify does not own.
const (
	labelReason   = "reason"
	labelEvidence = "evidence"
	labelType     = "type"
	labelResult   = "result"
	labelName     = "name"
	labelState    = "state"
	labelLogger   = "logger"
	labelTable    = "table"
	labelChain    = "chain"
)

var groupLabel = []string{classify.LabelGroup}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(prometheus.BuildFQName(namespace, "", name), help, labels, nil)
}

// The packet path: one set per group.
var (
	packetsDesc = desc("packets_total",
		"Packets logged by the NFLOG rule(s) of a group, or for group \"ebpf\" the netfilter drops seen at the kernel's drop tracepoint, by class, TCP flags, service port and side.",
		classify.PacketLabels...)
	lostDesc = desc("messages_lost_total",
		"Packets the kernel logged that never reached the exporter, from NFLOG sequence-number gaps, or for group \"ebpf\" the drops the full ring buffer had no room for.",
		groupLabel...)
	rebindsDesc = desc("rebinds_total",
		"Times the NFLOG socket was closed after a receive error and the group bound again; packets logged in between are counted nowhere.",
		groupLabel...)
	receiveErrorsDesc = desc("receive_errors_total",
		"Failed receives on the NFLOG socket, by reason.",
		classify.LabelGroup, labelReason)
	decodeErrorsDesc = desc("decode_errors_total",
		"Packets classified malformed, by the reason their headers could not be decoded.",
		classify.LabelGroup, labelReason)
	lastPacketDesc = desc("last_packet_timestamp_seconds",
		"When the group's last packet was logged (NFLOG timestamp, else arrival), in seconds since the epoch.",
		groupLabel...)
	upDesc = desc("up",
		"1 while the NFLOG group is bound and being read, or for group \"ebpf\" while the drop program is attached and its ring buffer read.",
		groupLabel...)
)

// packetSizeOpts describes nfdrop_packet_size_bytes. Classic buckets follow the
// sizes that matter for drops: bare UDP/ICMP (28) and TCP (40/60) headers, small segments, MTU limits.
func packetSizeOpts(group, class string) prometheus.HistogramOpts {
	return prometheus.HistogramOpts{
		Namespace:                       namespace,
		Name:                            "packet_size_bytes",
		Help:                            "IP datagram length (from the IP header) of logged packets.",
		ConstLabels:                     prometheus.Labels{classify.LabelGroup: group, classify.LabelClass: class},
		Buckets:                         []float64{28, 40, 52, 60, 64, 80, 128, 256, 576, 1280, 1500, 9000, 65535},
		NativeHistogramBucketFactor:     1.1,
		NativeHistogramMaxBucketNumber:  160,
		NativeHistogramMinResetDuration: time.Hour,
	}
}

// Teardown evidence from conntrack (package conntrack).
var (
	evidenceDesc = desc("teardown_evidence_total",
		"Teardown-shaped drops by what conntrack says about their connection: destroyed (ended within the window), closing, established, none (never seen: scans), skipped (not determined).",
		classify.LabelGroup, labelEvidence)
	ctEventsDesc = desc("conntrack_events_total",
		"Conntrack events received, by type (only DESTROY is subscribed).",
		labelType)
	ctEventsLostDesc = desc("conntrack_events_lost_total",
		"Conntrack events the exporter missed: dropped by the kernel on a full event socket, or undecodable.")
	ctRememberedDesc = desc("conntrack_flows_remembered",
		"Ended TCP flows currently remembered (at most --conntrack.max-flows, for --conntrack.window).")
	ctEvictedDesc = desc("conntrack_flows_evicted_total",
		"Ended TCP flows forgotten before their window ended because --conntrack.max-flows was reached.")
	ctLookupsDesc = desc("conntrack_lookups_total",
		"Direct conntrack table lookups for teardown-shaped drops of flows not remembered, by result.",
		labelResult)
	ctUpDesc = desc("conntrack_up",
		"1 while the exporter is subscribed to conntrack DESTROY events.")
	ctPreexistingDesc = desc("conntrack_preexisting_flows",
		"Conntrack entries that existed when the exporter subscribed; with nf_conntrack_events=2 they never emit a DESTROY, so their late packets get no destroyed evidence.")
)

// teardownDelayOpts describes nfdrop_teardown_delay_seconds: from conntrack's
// DESTROY of the flow to the late packet. Classic buckets span 1 ms to 10
// min; the native histogram covers the same range at ~10% resolution.
func teardownDelayOpts(group string) prometheus.HistogramOpts {
	return prometheus.HistogramOpts{
		Namespace:                       namespace,
		Name:                            "teardown_delay_seconds",
		Help:                            "Seconds from conntrack's DESTROY of a flow to a late teardown packet of it (drops with evidence destroyed).",
		ConstLabels:                     prometheus.Labels{classify.LabelGroup: group},
		Buckets:                         []float64{0.001, 0.01, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600},
		NativeHistogramBucketFactor:     1.1,
		NativeHistogramMaxBucketNumber:  160,
		NativeHistogramMinResetDuration: time.Hour,
		NativeHistogramZeroThreshold:    0.0005,
	}
}

// Conntrack's settings of the exporter's network namespace (package sysctl).
var (
	ctSettingDesc = desc("conntrack_setting",
		"Conntrack sysctls of the exporter's network namespace that decide which late packets are dropped and what evidence exists (net.netfilter.nf_conntrack_<name>).",
		labelName)
	ctTimeoutDesc = desc("conntrack_tcp_timeout_seconds",
		"Conntrack TCP timeouts of the exporter's network namespace by state (net.netfilter.nf_conntrack_tcp_timeout_<state>): a late packet after its state's timeout is dropped.",
		labelState)
	ctLogInvalidDesc = desc("conntrack_log_invalid",
		"net.netfilter.nf_conntrack_log_invalid of the exporter's network namespace: the protocol number whose INVALID packets conntrack logs (6 TCP, 255 all, 0 none).")
	ctLoggerDesc = desc("conntrack_logger_info",
		"The default logger of a family in the exporter's network namespace (net.netfilter.nf_log.2 for ipv4, nf_log.10 for ipv6); conntrack's messages reach NFLOG group 0 only when it is nfnetlink_log.",
		classify.LabelFamily, labelLogger)
)

// Conntrack's own log messages and the drops joined to them (package ctlog).
var (
	ctMessagesDesc = desc("conntrack_log_messages_total",
		"Conntrack's own log messages (nf_conntrack_log_invalid) read from a group, by the packet's family and protocol and conntrack's reason. They are not drops and are not in nfdrop_packets_total.",
		classify.LabelGroup, classify.LabelFamily, classify.LabelProto, labelReason)
	dropReasonsDesc = desc("drop_reasons_total",
		"Drops by class and conntrack's reason for the same packet; none when conntrack wrote nothing about it. Counted once the reason is known, at most --conntrack.reasons.window after the drop.",
		classify.LabelGroup, classify.LabelClass, labelReason)
	dropReasonsWaitingDesc = desc("drop_reasons_waiting",
		"Drops read from a group that is not conntrack's that wait for conntrack's reason (at most --conntrack.reasons.window).",
		groupLabel...)
	ctAttrsDesc = desc("conntrack_nflog_attributes_supported",
		"1 if the kernel can add a packet's conntrack entry to NFLOG messages (NFULNL_CFG_F_CONNTRACK); probed on conntrack's group and never used: an INVALID packet has no entry.")
)

// The log rules that feed the groups, read from nf_tables (package ruleaudit).
var (
	logRulesDesc = desc("log_rules",
		"nf_tables rules that log to the NFLOG group (nft log group, iptables-nft -j NFLOG), read from the kernel; 0 means nothing can reach the group.",
		groupLabel...)
	logRulesUncountedDesc = desc("log_rules_uncounted",
		"Log rules of the group that have no counter, so that their packets are missing from nfdrop_log_rule_packets_total; add \"counter\" to them.",
		groupLabel...)
	logRulePacketsDesc = desc("log_rule_packets_total",
		"Sum of the packet counters of the log rules of the group in one chain, as the kernel counts them.",
		classify.LabelGroup, classify.LabelFamily, labelTable, labelChain)
	ruleAuditSuccessDesc = desc("log_rule_audit_success",
		"1 if the last read of the nf_tables ruleset succeeded; while 0 the other nfdrop_log_rule* series are absent.")
	ruleAuditAgeDesc = desc("log_rule_audit_age_seconds",
		"Seconds from the start of the nf_tables ruleset read this scrape shows to the scrape: how far the rule counters may lag the exporter's.")
)

// The firewall's own drop counters, read with the log rules: what the
// kernel dropped, logged or not.
var (
	firewallDropsDesc = desc("firewall_drops_total",
		"Packets the firewall dropped or rejected in one chain, as the kernel counts them: the packet counters of its drop and reject rules and of its drop policy (nf_tables, read at scrape time). Compare with nfdrop_log_rule_packets_total: what a chain drops that no log rule saw is invisible to NFLOG.",
		classify.LabelFamily, labelTable, labelChain)
	firewallUncountedDesc = desc("firewall_drop_rules_uncounted",
		"Drop points of a table whose packets the kernel does not count (a rule without a counter, a verdict map's drop elements, a native chain's drop policy), so that they are missing from nfdrop_firewall_drops_total.",
		classify.LabelFamily, labelTable)
)

// The eBPF drop source's own accounting, kept in the kernel (package ebpf).
var (
	ebpfDropsDesc = desc("ebpf_drops_total",
		"Packets netfilter dropped in the exporter's network namespace that the eBPF program saw (the kernel's drop tracepoint, reason NETFILTER_DROP): once read, each is in nfdrop_packets_total{group=\"ebpf\"} or nfdrop_messages_lost_total{group=\"ebpf\"}.")
	ebpfMissedDesc = desc("ebpf_program_misses_total",
		"Drop tracepoint events of any namespace and reason the kernel did not run the eBPF program for, because it was already running on that CPU; drops they stand for are in no count.")
	kernelDropsDesc = desc("kernel_drops_total",
		"Packets the kernel freed as dropped in the exporter's network namespace, by the kernel's drop reason (SKB_DROP_REASON_ lower-cased, unknown for values outside the kernel's list), counted in the kernel.",
		labelReason)
)

// Conntrack's statistics over ctnetlink (package ctstats).
var (
	ctStatInvalidDesc = desc("conntrack_stat_invalid_total",
		"Packets conntrack could not track (invalid state or malformed), summed over CPUs; \"ct state invalid\" matches them.")
	ctStatDropDesc = desc("conntrack_stat_drop_total",
		"Packets conntrack dropped itself (failed to set up tracking, or invalid packets a tracker rejects), summed over CPUs.")
	ctStatEarlyDropDesc = desc("conntrack_stat_early_drop_total",
		"Unassured entries conntrack evicted to make room because the table was full, summed over CPUs.")
	ctStatInsertFailedDesc = desc("conntrack_stat_insert_failed_total",
		"New entries conntrack could not insert (clashing tuples, typically racing UDP), summed over CPUs.")
	ctStatSearchRestartDesc = desc("conntrack_stat_search_restart_total",
		"Table lookups restarted because a resize moved the entry, summed over CPUs.")
	ctEntriesDesc = desc("conntrack_entries",
		"Entries in the conntrack table of the exporter's network namespace.")
	ctEntriesLimitDesc = desc("conntrack_entries_limit",
		"Most entries the conntrack table holds (net.netfilter.nf_conntrack_max).")
	ctStatsSuccessDesc = desc("conntrack_stats_success",
		"1 if the last read of conntrack's statistics succeeded; while 0 the other series of the family are absent.")
)
