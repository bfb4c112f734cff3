package ctlog

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/nfdrop/nfdrop_exporter/collector/packet"
	"github.com/prometheus/client_golang/prometheus"
)

// DefaultSysctlDir is where the settings are read: the sysctls of the
// exporter's own network namespace.
const DefaultSysctlDir = "/proc/sys/net/netfilter"

const namespace = "nfdrop"

var (
	messagesDesc = prometheus.NewDesc(
		prometheus.BuildFQName(namespace, "", "conntrack_log_messages_total"),
		"Conntrack's own log messages (nf_conntrack_log_invalid) read from a group, by the packet's family and protocol and conntrack's reason. They are not drops and are not in nfdrop_packets_total.",
		[]string{"group", "family", "proto", "reason"}, nil)
	dropReasonsDesc = prometheus.NewDesc(
		prometheus.BuildFQName(namespace, "", "drop_reasons_total"),
		"Drops by class and conntrack's reason for the same packet; none when conntrack wrote nothing about it. Counted once the reason is known, at most --conntrack.reasons.window after the drop.",
		[]string{"group", "class", "reason"}, nil)
	pendingDesc = prometheus.NewDesc(
		prometheus.BuildFQName(namespace, "", "drop_reasons_waiting"),
		"Drops read from a group that is not conntrack's that wait for conntrack's reason (at most --conntrack.reasons.window).",
		[]string{"group"}, nil)
	logInvalidDesc = prometheus.NewDesc(
		prometheus.BuildFQName(namespace, "", "conntrack_log_invalid"),
		"net.netfilter.nf_conntrack_log_invalid of the exporter's network namespace: the protocol number whose INVALID packets conntrack logs (6 TCP, 255 all, 0 none).",
		nil, nil)
	attrsDesc = prometheus.NewDesc(
		prometheus.BuildFQName(namespace, "", "conntrack_nflog_attributes_supported"),
		"1 if the kernel can add a packet's conntrack entry to NFLOG messages (NFULNL_CFG_F_CONNTRACK); probed on conntrack's group and never used: an INVALID packet has no entry.",
		nil, nil)
	loggerDesc = prometheus.NewDesc(
		prometheus.BuildFQName(namespace, "", "conntrack_logger_info"),
		"The default logger of a family in the exporter's network namespace (net.netfilter.nf_log.2 for ipv4, nf_log.10 for ipv6); conntrack's messages reach NFLOG group 0 only when it is nfnetlink_log.",
		[]string{"family", "logger"}, nil)
)

// Describe implements prometheus.Collector.
func (l *Log) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{messagesDesc, dropReasonsDesc, pendingDesc, logInvalidDesc, loggerDesc, attrsDesc} {
		ch <- d
	}
}

// Collect implements prometheus.Collector. Waiting drops whose window has
// ended are settled first, so a scrape never misses a drop older than the
// window. Series appear once non-zero.
func (l *Log) Collect(ch chan<- prometheus.Metric) {
	if l.table != nil {
		l.resolve()
	}
	for _, gs := range l.order {
		for f := range gs.messages {
			for p := range gs.messages[f] {
				for r := range gs.messages[f][p] {
					if n := gs.messages[f][p][r].Load(); n > 0 {
						ch <- prometheus.MustNewConstMetric(messagesDesc, prometheus.CounterValue, float64(n),
							gs.label, packet.Family(f).String(), packet.Proto(p).String(), Reason(r).String())
					}
				}
			}
		}
		if l.table == nil {
			continue
		}
		for c := range gs.drops {
			for r := range gs.drops[c] {
				if n := gs.drops[c][r].Load(); n > 0 {
					ch <- prometheus.MustNewConstMetric(dropReasonsDesc, prometheus.CounterValue, float64(n), gs.label, l.className(c), Reason(r).String())
				}
			}
		}
		ch <- prometheus.MustNewConstMetric(pendingDesc, prometheus.GaugeValue, float64(gs.tail.Load()-gs.head.Load()), gs.label)
	}
	if l.cfg.NoSettings {
		return
	}
	if v, err := readSysctl(filepath.Join(l.cfg.SysctlDir, "nf_conntrack_log_invalid")); err == nil {
		if n, err := strconv.ParseUint(v, 10, 8); err == nil {
			ch <- prometheus.MustNewConstMetric(logInvalidDesc, prometheus.GaugeValue, float64(n))
		}
	}
	if v := l.ctAttrs.Load(); v != 0 {
		ch <- prometheus.MustNewConstMetric(attrsDesc, prometheus.GaugeValue, float64(v-1))
	}
	for _, f := range [...]struct{ label, file string }{{"ipv4", "2"}, {"ipv6", "10"}} {
		if v, err := readSysctl(filepath.Join(l.cfg.SysctlDir, "nf_log", f.file)); err == nil {
			ch <- prometheus.MustNewConstMetric(loggerDesc, prometheus.GaugeValue, 1, f.label, v)
		}
	}
}

func (l *Log) className(c int) string {
	if c < len(l.cfg.ClassNames) {
		return l.cfg.ClassNames[c]
	}
	return "other"
}

func readSysctl(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

// SetConntrackAttrs records whether the kernel accepted NFULNL_CFG_F_CONNTRACK
// on conntrack's group.
func (l *Log) SetConntrackAttrs(supported bool) {
	if supported {
		l.ctAttrs.Store(2)
	} else {
		l.ctAttrs.Store(1)
	}
}
