package explain

import (
	"bufio"
	"bytes"
	"os"
	"testing"

	"github.com/nfdrop/nfdrop_exporter/collector/classify"
)

// BenchmarkReadText reads syslog lines with every breakdown on; set
// NFDROP_BENCH_FILE to a file made by `nfdrop-lab explain-bench` for a
// realistic mix of sources (default: the lab's real kernel lines).
func BenchmarkReadText(b *testing.B) {
	path := os.Getenv("NFDROP_BENCH_FILE")
	if path == "" {
		path = "testdata/lab-iptables.log"
	}
	data, err := os.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	for len(data) < 8<<20 {
		data = append(data, data...)
	}
	lines := bytes.Count(data, []byte("\n"))
	c := classify.NewClassifier(classify.MustParsePorts(classify.DefaultPorts))
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		a := newAggregator(c, 32)
		in := &input{name: "x"}
		if err := a.readText(in, bufio.NewReaderSize(bytes.NewReader(data), 1<<16)); err != nil || in.packets == 0 {
			b.Fatalf("readText: %v, %d packets", err, in.packets)
		}
	}
	b.ReportMetric(float64(lines)*float64(b.N)/b.Elapsed().Seconds()/1e6, "Mlines/s")
}
