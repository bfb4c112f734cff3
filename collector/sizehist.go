package collector

import (
	"math"
	"sort"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// sizeHistogram is nfdrop_packet_size_bytes for one group and class. The
// observed value is an IP datagram length (0..65535), so instead of a
// client_golang histogram (whose native buckets cost a sync.Map lookup per
// observation) it keeps the exact count of every length — one uncontended
// atomic add per packet — and builds the classic and the native buckets at
// scrape time, exactly as a client_golang histogram with the same options
// would expose them (see TestSizeHistogramMatchesClientGolang).
type sizeHistogram struct {
	desc    *prometheus.Desc
	bounds  []float64       // classic upper bounds, ascending
	counts  []atomic.Uint64 // index: datagram length (IPv6: up to 40+65535); pages of unseen lengths stay untouched
	created time.Time
	// The largest length observed, so that a scrape reads counts[:max+1]
	// (a few thousand entries) instead of all 65,576. Only the writer stores
	// it, and only when it grows.
	max atomic.Uint32
}

// sizeSchema is the native schema client_golang picks for a bucket factor of
// 1.1 (the largest factor 2^(2^-n) not above it: 2^(1/8) ≈ 1.0905).
const sizeSchema = 3

// sizeBounds are client_golang's nativeHistogramBounds for schema 3.
var sizeBounds = []float64{
	0.5, 0.5452538663326288, 0.5946035575013605, 0.6484197773255048,
	0.7071067811865475, 0.7711054127039704, 0.8408964152537144, 0.9170040432046711,
}

func newSizeHistogram(o prometheus.HistogramOpts) *sizeHistogram {
	return &sizeHistogram{
		desc:    prometheus.NewDesc(prometheus.BuildFQName(o.Namespace, o.Subsystem, o.Name), o.Help, nil, o.ConstLabels),
		bounds:  o.Buckets,
		counts:  make([]atomic.Uint64, maxLength+1),
		created: time.Now(),
	}
}

// maxLength is the largest datagram length a header can state: IPv6's
// 40-byte header plus a 16-bit payload length.
const maxLength = 40 + 65535

func (h *sizeHistogram) observe(length uint32) {
	l := min(length, maxLength)
	if l > h.max.Load() { // before the count, so that a scrape never skips it
		h.max.Store(l)
	}
	h.counts[l].Add(1)
}

func (h *sizeHistogram) Describe(ch chan<- *prometheus.Desc) { ch <- h.desc }

// nativeKey is the schema-3 bucket index of v > 0 (client_golang's
// histogramCounts.observe).
func nativeKey(v float64) int {
	frac, exp := math.Frexp(v)
	return sort.SearchFloat64s(sizeBounds, frac) + (exp-1)*len(sizeBounds)
}

// sizeKeys caches nativeKey for every length.
var sizeKeys = func() []int32 {
	k := make([]int32, maxLength+1)
	for v := 1; v < len(k); v++ {
		k[v] = int32(nativeKey(float64(v)))
	}
	return k
}()

// metric snapshots the histogram as a const metric with classic and native
// buckets.
func (h *sizeHistogram) metric() (prometheus.Metric, error) {
	var (
		count, zero uint64
		sum         float64
		classic     = make([]uint64, len(h.bounds))
		positive    = map[int]int64{}
	)
	b := 0
	for v := range h.counts[:h.max.Load()+1] {
		n := h.counts[v].Load()
		if n == 0 {
			continue
		}
		count += n
		sum += float64(v) * float64(n)
		if v == 0 {
			zero += n
		} else {
			positive[int(sizeKeys[v])] += int64(n)
		}
		for b < len(h.bounds) && float64(v) > h.bounds[b] {
			b++
		}
		if b < len(h.bounds) {
			classic[b] += n
		}
	}
	m, err := prometheus.NewConstNativeHistogram(h.desc, count, sum, positive, nil, zero, sizeSchema,
		prometheus.DefNativeHistogramZeroThreshold, h.created)
	if err != nil {
		return nil, err
	}
	return &withClassic{Metric: m, bounds: h.bounds, counts: classic}, nil
}

// withClassic adds the classic buckets to a const native histogram.
type withClassic struct {
	prometheus.Metric
	bounds []float64
	counts []uint64 // per bucket, not cumulative
}

func (w *withClassic) Write(m *dto.Metric) error {
	if err := w.Metric.Write(m); err != nil {
		return err
	}
	var cum uint64
	m.Histogram.Bucket = make([]*dto.Bucket, len(w.bounds))
	for i, ub := range w.bounds {
		cum += w.counts[i]
		m.Histogram.Bucket[i] = &dto.Bucket{CumulativeCount: new(cum), UpperBound: new(ub)}
	}
	return nil
}
