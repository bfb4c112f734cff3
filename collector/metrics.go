package collector

import (
	"time"

	"github.com/nfdrop/nfdrop_exporter/collector/classify"
	"github.com/prometheus/client_golang/prometheus"
)

// The collector's metrics, in one place; label names and values come from
// package classify.

const namespace = "nfdrop"

// labelReason is the label of the error counters, which classify does not own.
const labelReason = "reason"

var (
	packetsDesc = prometheus.NewDesc(
		prometheus.BuildFQName(namespace, "", "packets_total"),
		"Packets logged by the NFLOG rule(s) of a group, by class, TCP flags, service port and side.",
		classify.PacketLabels, nil)
	lostDesc = prometheus.NewDesc(
		prometheus.BuildFQName(namespace, "", "messages_lost_total"),
		"Packets the kernel logged that never reached the exporter, from NFLOG sequence-number gaps.",
		[]string{classify.LabelGroup}, nil)
	rebindsDesc = prometheus.NewDesc(
		prometheus.BuildFQName(namespace, "", "rebinds_total"),
		"Times the NFLOG socket was closed after a receive error and the group bound again; packets logged in between are counted nowhere.",
		[]string{classify.LabelGroup}, nil)
	receiveErrorsDesc = prometheus.NewDesc(
		prometheus.BuildFQName(namespace, "", "receive_errors_total"),
		"Failed receives on the NFLOG socket, by reason.",
		[]string{classify.LabelGroup, labelReason}, nil)
	decodeErrorsDesc = prometheus.NewDesc(
		prometheus.BuildFQName(namespace, "", "decode_errors_total"),
		"Packets classified malformed, by the reason their headers could not be decoded.",
		[]string{classify.LabelGroup, labelReason}, nil)
	lastPacketDesc = prometheus.NewDesc(
		prometheus.BuildFQName(namespace, "", "last_packet_timestamp_seconds"),
		"When the group's last packet was logged (NFLOG timestamp, else arrival), in seconds since the epoch.",
		[]string{classify.LabelGroup}, nil)
	upDesc = prometheus.NewDesc(
		prometheus.BuildFQName(namespace, "", "up"),
		"1 while the NFLOG group is bound and being read.",
		[]string{classify.LabelGroup}, nil)
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
