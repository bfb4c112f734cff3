package logline

import (
	"bytes"
	"fmt"
	"testing"
)

// adversarialLines are lines built to make a search for the "IN=<dev> OUT="
// head revisit the same bytes: many "IN=" candidates before one far space.
func adversarialLines(size int) map[string][]byte {
	rep := func(s string) []byte { return bytes.Repeat([]byte(s), size/len(s)) }
	return map[string][]byte{
		"IN= repeated":           rep("IN="),
		"IN= repeated, OUT= end": append(rep("IN="), " OUT= SRC=1.2.3.4 TTL=1 PROTO=UDP SPT=1 DPT=2"...),
		"IIN= repeated":          rep("IIN="),
		"IN=x repeated":          rep("IN=x"),
		"IN= then spaces":        append(rep("IN="), bytes.Repeat([]byte(" IN=a"), size/10)...),
		"syslog header, IN=":     append([]byte("Nov 25 13:34:54 web1 kernel: "), rep("IN=")...),
		"journal JSON, IN=":      append(append([]byte(`{"_TRANSPORT":"kernel","MESSAGE":"`), rep("IN=")...), `"}`...),
	}
}

// TestFindINIsLinear holds the head search to a fixed number of examined
// bytes per line byte on lines of repeated "IN=" (the quadratic search
// examined about len²/6 bytes: 1 MiB took about two minutes). Counting bytes
// instead of timing makes the bound deterministic.
func TestFindINIsLinear(t *testing.T) {
	const size = 1 << 20
	for name, line := range adversarialLines(size) {
		t.Run(name, func(t *testing.T) {
			_, _, examined := scanIN(line)
			if limit := 2*len(line) + 16; examined > limit {
				t.Fatalf("scanIN examined %d bytes of a %d-byte line, want at most %d", examined, len(line), limit)
			}
		})
	}
	// The counter must see real work: a plain kernel line is examined up to its head.
	line := []byte(msgV4SYN)
	k, ok, examined := scanIN(line)
	if !ok || k != len("nfdDx18383-raw ") || examined < k+len(inKey) || examined > len(line) {
		t.Fatalf("scanIN(%q) = %d, %v, examined %d", line, k, ok, examined)
	}
}

// TestParseAdversarialLines parses 1 MiB adversarial lines through every
// wrapper and requires the outcome a 1 KiB line of the same shape gets.
func TestParseAdversarialLines(t *testing.T) {
	var p Parser
	small := adversarialLines(1 << 10)
	for name, line := range adversarialLines(1 << 20) {
		t.Run(name, func(t *testing.T) {
			var r Record
			st, reason := p.Parse(line, &r)
			wantSt, wantReason := p.Parse(small[name], &r)
			if st != wantSt || reason != wantReason {
				t.Fatalf("1 MiB line: %d %q; 1 KiB line of the same shape: %d %q", st, reason, wantSt, wantReason)
			}
		})
	}
}

// BenchmarkParseAdversarial shows the cost per byte staying flat from 64 KiB
// to 1 MiB (compare ns/op / size across the sub-benchmarks).
func BenchmarkParseAdversarial(b *testing.B) {
	for _, size := range []int{64 << 10, 128 << 10, 1 << 20} {
		line := adversarialLines(size)["IN= repeated"]
		b.Run(fmt.Sprintf("%dKiB", size>>10), func(b *testing.B) {
			var p Parser
			var r Record
			b.SetBytes(int64(len(line)))
			b.ReportAllocs()
			for b.Loop() {
				p.Parse(line, &r)
			}
		})
	}
}
