package collector

import (
	"math/rand/v2"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"
)

// TestSizeHistogramMatchesClientGolang feeds the same lengths to a
// client_golang histogram with packetSizeOpts and to sizeHistogram and
// requires identical exposition (classic and native parts), apart from the
// created timestamp.
func TestSizeHistogramMatchesClientGolang(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, tc := range []struct {
		name    string
		lengths func() []uint32
	}{
		{"empty", func() []uint32 { return nil }},
		{"one", func() []uint32 { return []uint32{40} }},
		{"bounds", func() []uint32 {
			return []uint32{0, 1, 27, 28, 29, 40, 52, 60, 64, 80, 128, 256, 576, 1280, 1500, 9000, 65535, 65536, 65575}
		}},
		{"random", func() []uint32 {
			v := make([]uint32, 100000)
			for i := range v {
				switch r.IntN(3) {
				case 0:
					v[i] = uint32(20 + r.IntN(1481))
				case 1:
					v[i] = []uint32{40, 52, 60, 64, 1500}[r.IntN(5)]
				default:
					v[i] = uint32(r.IntN(maxLength + 1))
				}
			}
			return v
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := packetSizeOpts("0", "teardown")
			ref := prometheus.NewHistogram(opts)
			h := newSizeHistogram(opts)
			for _, v := range tc.lengths() {
				ref.Observe(float64(v))
				h.observe(v)
			}
			var want, got dto.Metric
			if err := ref.Write(&want); err != nil {
				t.Fatal(err)
			}
			m, err := h.metric()
			if err != nil {
				t.Fatal(err)
			}
			if err := m.Write(&got); err != nil {
				t.Fatal(err)
			}
			want.Histogram.CreatedTimestamp, got.Histogram.CreatedTimestamp = nil, nil
			if !proto.Equal(&want, &got) {
				t.Errorf("exposition differs:\nclient_golang: %v\nsizeHistogram: %v", &want, &got)
			}
			if prometheus.NewDesc("nfdrop_packet_size_bytes", opts.Help, nil, opts.ConstLabels).String() != h.desc.String() {
				t.Errorf("desc %v", h.desc)
			}
		})
	}
}
