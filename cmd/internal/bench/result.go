package bench

import (
	"math"
	"slices"
	"time"
)

// RunResult is one flood against one receiver.
type RunResult struct {
	Point             string  `json:"point"`
	Receiver          string  `json:"receiver"`
	Rep               int     `json:"rep"`
	Sent              uint64  `json:"sent"`
	SentPPS           float64 `json:"sent_pps"`
	Logged            uint64  `json:"logged"`      // ground truth: the NFLOG rule counters; for the eBPF source the drops (Dropped)
	Dropped           uint64  `json:"dropped"`     // the ruleset's DROP counters: packets dropped
	LoggedRate        float64 `json:"logged_msgs"` // messages per second during the flood
	Accepted          uint64  `json:"accepted"`    // packets of the flood the ruleset accepted (must be 0)
	Received          uint64  `json:"received"`
	Lost              uint64  `json:"lost"`                              // the receiver's own loss count (exporter: nfdrop_messages_lost_total); else logged-received
	Unaccounted       int64   `json:"unaccounted"`                       // logged - received - lost: must be 0 for the exporter
	LossPct           float64 `json:"loss_pct"`                          // (logged-received)/logged
	CPUSeconds        float64 `json:"cpu_s"`                             // on-CPU time from schedstat (precise)
	BPFSeconds        float64 `json:"bpf_s,omitempty"`                   // eBPF source: its BPF program's run time in the kernel (BPF statistics)
	BPFRuns           uint64  `json:"bpf_runs,omitempty"`                // eBPF source: the program's runs, for drops of every namespace
	CPUPerM           float64 `json:"cpu_s_per_million"`                 // CPUSeconds + BPFSeconds per million logged messages (eBPF source: drops)
	BPFPerM           float64 `json:"bpf_s_per_million,omitempty"`       // BPFSeconds per million drops
	CPUPerMDrops      float64 `json:"cpu_s_per_million_drops"`           // CPUSeconds + BPFSeconds per million dropped packets, comparable across sources
	TickCPUSeconds    float64 `json:"tick_cpu_s"`                        // utime+stime from /proc/<pid>/stat (10 ms ticks, a cross-check)
	CPUPerMNoScrape   float64 `json:"cpu_s_per_million_without_scrapes"` // exporter: minus the scrapes during the flood
	ScrapeCPUMs       float64 `json:"scrape_cpu_ms,omitempty"`           // exporter CPU per scrape at rest after the flood
	TickCPUPerM       float64 `json:"tick_cpu_s_per_million"`
	SenderUSPerPacket float64 `json:"sender_us_per_packet"`
	PeakRSS           int64   `json:"peak_rss_bytes"`
	SockDrops         uint64  `json:"sock_drops"`         // kernel batches dropped at the socket
	Drain             float64 `json:"drain_s"`            // flood end until the socket queue was empty
	CPUThreads        int     `json:"cpu_threads"`        // threads whose time is in CPUSeconds
	CPUThreadsExited  int     `json:"cpu_threads_exited"` // of them, threads that exited during the window (time from the tracer)
	CPUThreadsMissed  int     `json:"cpu_threads_missed"` // threads that exited during the window without the tracer: their last time is not in CPUSeconds
	// Scrapes during the flood, timed as the client sees them: from sending
	// the request to having read the whole body.
	ScrapeEveryS   float64   `json:"scrape_interval_s,omitempty"`
	Scrapes        int       `json:"scrapes,omitempty"`
	ScrapeMs       []float64 `json:"scrape_ms,omitempty"` // every scrape, in order
	ScrapeMedMs    float64   `json:"scrape_median_ms,omitempty"`
	ScrapeP99Ms    float64   `json:"scrape_p99_ms,omitempty"`
	ScrapeMaxMs    float64   `json:"scrape_max_ms,omitempty"`
	ScrapesOver100 int       `json:"scrapes_over_100ms"`
	ScrapeErrors   int       `json:"scrape_errors,omitempty"` // failed scrapes (counted as 1 h)
	// The receiver's receive calls on its NFLOG socket during the flood
	// (the receive-call tracer; RecvTraced false when it could not run).
	RecvTraced       bool    `json:"recv_traced"`
	RecvTraceErr     string  `json:"recv_trace_error,omitempty"`
	RecvCalls        uint64  `json:"recv_calls"`
	RecvDataCalls    uint64  `json:"recv_data_calls"`              // calls that returned a datagram
	RecvGapMaxMs     float64 `json:"recv_gap_max_ms"`              // longest time between two receive calls
	RecvBusyGapMaxMs float64 `json:"recv_busy_gap_max_ms"`         // longest time from a call that returned data to the next call
	RecvGapMaxAtS    float64 `json:"recv_gap_max_end_s"`           // when the longest gap ended, from the flood's start
	RecvGapInScrape  bool    `json:"recv_gap_max_overlaps_scrape"` // the longest gap overlapped a scrape
	Series           int     `json:"series,omitempty"`             // sample lines on /metrics after the flood
	PacketSeries     int     `json:"packet_series,omitempty"`      // nfdrop_packets_total series
	MallocsPerMsg    float64 `json:"mallocs_per_msg"`              // -1 when unknown
	ForeignCPU       float64 `json:"machine_busy_before"`
	Err              string  `json:"error,omitempty"`
}

// Cell is the median [min-max] summary of one point and receiver.
type Cell struct {
	Point             string     `json:"point"`
	Receiver          string     `json:"receiver"`
	Kind              string     `json:"kind"`
	N                 int        `json:"n"`
	SentPPS           [3]float64 `json:"sent_pps"` // median, min, max
	LoggedRate        [3]float64 `json:"logged_msgs"`
	LossPct           [3]float64 `json:"loss_pct"`
	Lost              [3]float64 `json:"lost"`
	Unaccounted       [3]float64 `json:"unaccounted"`
	CPUPerM           [3]float64 `json:"cpu_s_per_million"`
	BPFPerM           [3]float64 `json:"bpf_s_per_million"`
	CPUPerMDrops      [3]float64 `json:"cpu_s_per_million_drops"`
	TickCPUPerM       [3]float64 `json:"tick_cpu_s_per_million"`
	CPUPerMNoScrape   [3]float64 `json:"cpu_s_per_million_without_scrapes"`
	ScrapeCPUMs       [3]float64 `json:"scrape_cpu_ms"`
	PeakRSS           [3]float64 `json:"peak_rss_bytes"`
	Scrapes           [3]float64 `json:"scrapes"`
	ScrapeMedMs       [3]float64 `json:"scrape_median_ms"`
	ScrapeP99Ms       [3]float64 `json:"scrape_p99_ms"`
	ScrapeMaxMs       [3]float64 `json:"scrape_max_ms"`
	ScrapesOver100    [3]float64 `json:"scrapes_over_100ms"`
	Traced            int        `json:"recv_traced_runs"` // runs the gaps below are from
	RecvGapMaxMs      [3]float64 `json:"recv_gap_max_ms"`
	RecvBusyGapMaxMs  [3]float64 `json:"recv_busy_gap_max_ms"`
	Series            [3]float64 `json:"series"`
	MallocsPerMsg     [3]float64 `json:"mallocs_per_msg"`
	SenderUSPerPacket [3]float64 `json:"sender_us_per_packet"`
}

// ReceiverInfo names a receiver of the report.
type ReceiverInfo struct {
	Name string `json:"name"`
	Kind string `json:"kind"`
}

// Report is the outcome of Run.
type Report struct {
	Started   time.Time      `json:"started"`
	Kernel    string         `json:"kernel"`
	CPUs      int            `json:"cpus"`
	Reps      int            `json:"reps"`
	Receivers []ReceiverInfo `json:"receivers"`
	Settings  GroupSettings  `json:"group_settings"` // of the reference receiver and ulogd2
	Points    []Point        `json:"points"`
	Runs      []RunResult    `json:"runs"`
	Summary   []Cell         `json:"summary"`
	Duration  float64        `json:"duration_s"`
}

// latencyStats summarizes scrape durations.
type latencyStats struct {
	p50, p99, max time.Duration
	over100ms     int
}

// scrapeStats returns the median, the 99th percentile (nearest rank), the
// maximum and the number of durations over 100 ms.
func scrapeStats(lat []time.Duration) latencyStats {
	var st latencyStats
	if len(lat) == 0 {
		return st
	}
	s := slices.Clone(lat)
	slices.Sort(s)
	rank := func(q float64) time.Duration {
		i := int(math.Ceil(q*float64(len(s)))) - 1
		return s[max(0, min(i, len(s)-1))]
	}
	st.p50, st.p99, st.max = rank(0.5), rank(0.99), s[len(s)-1]
	for _, d := range s {
		if d > 100*time.Millisecond {
			st.over100ms++
		}
	}
	return st
}

// overlapsAny reports whether [a, b] overlaps one of the windows.
func overlapsAny(a, b int64, windows [][2]int64) bool {
	for _, w := range windows {
		if a <= w[1] && w[0] <= b {
			return true
		}
	}
	return false
}
