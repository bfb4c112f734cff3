package collector

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The metric surface, in one place.

const namespace = "nfdrop"

// Label names.
const (
	labelGroup  = "group"
	labelPrefix = "prefix"
	labelFamily = "family"
	labelProto  = "proto"
	labelPort   = "port"
	labelSide   = "side"
	labelFlags  = "flags"
	labelClass  = "class"
	labelReason = "reason"
)

var (
	packetsDesc = prometheus.NewDesc(
		prometheus.BuildFQName(namespace, "", "packets_total"),
		"Packets logged by the NFLOG rule(s) of a group, by classification.",
		[]string{labelGroup, labelPrefix, labelFamily, labelProto, labelPort, labelSide, labelFlags, labelClass}, nil)
	lostDesc = prometheus.NewDesc(
		prometheus.BuildFQName(namespace, "", "messages_lost_total"),
		"Packets the kernel logged that never reached the exporter, from NFLOG sequence-number gaps.",
		[]string{labelGroup}, nil)
	receiveErrorsDesc = prometheus.NewDesc(
		prometheus.BuildFQName(namespace, "", "receive_errors_total"),
		"Failed receives on the NFLOG socket, by reason.",
		[]string{labelGroup, labelReason}, nil)
	decodeErrorsDesc = prometheus.NewDesc(
		prometheus.BuildFQName(namespace, "", "decode_errors_total"),
		"Packets classified malformed, by the reason their headers could not be decoded.",
		[]string{labelGroup, labelReason}, nil)
	lastPacketDesc = prometheus.NewDesc(
		prometheus.BuildFQName(namespace, "", "last_packet_timestamp_seconds"),
		"When the group's last packet was logged (NFLOG timestamp, else arrival), in seconds since the epoch.",
		[]string{labelGroup}, nil)
	upDesc = prometheus.NewDesc(
		prometheus.BuildFQName(namespace, "", "up"),
		"1 while the NFLOG group is bound and being read.",
		[]string{labelGroup}, nil)
)

// packetSizeOpts describes nfdrop_packet_size_bytes. Classic buckets follow the
// sizes that matter for drops: bare UDP/ICMP (28) and TCP (40/60) headers, small segments, MTU limits.
func packetSizeOpts(group, class string) prometheus.HistogramOpts {
	return prometheus.HistogramOpts{
		Namespace:                       namespace,
		Name:                            "packet_size_bytes",
		Help:                            "IP datagram length (from the IP header) of logged packets.",
		ConstLabels:                     prometheus.Labels{labelGroup: group, labelClass: class},
		Buckets:                         []float64{28, 40, 52, 60, 64, 80, 128, 256, 576, 1280, 1500, 9000, 65535},
		NativeHistogramBucketFactor:     1.1,
		NativeHistogramMaxBucketNumber:  160,
		NativeHistogramMinResetDuration: time.Hour,
	}
}
