package bench

import (
	_ "embed"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// referenceSource is the reference receiver (reference/reference.c), built
// with the C compiler at bench time.
//
//go:embed reference/reference.c
var referenceSource []byte

// GroupSettings are the kernel settings of an NFLOG group binding.
type GroupSettings struct {
	CopyRange      uint32        `json:"copy_range"`       // bytes of each packet copied
	QueueThreshold uint32        `json:"queue_threshold"`  // messages per kernel batch (qthreshold)
	FlushTimeout   time.Duration `json:"flush_timeout_ns"` // longest a message waits in a kernel batch (10 ms steps)
	BatchSize      uint32        `json:"batch_size"`       // kernel batch buffer (nlbufsiz)
	ReceiveBuffer  int           `json:"receive_buffer"`   // socket receive buffer (SO_RCVBUFFORCE)
}

// ExporterSettings are nfdrop_exporter's defaults (--nflog.copy-range,
// --nflog.queue-threshold, --nflog.flush-timeout, --nflog.batch-size,
// --nflog.socket.receive-buffer), which the bench gives the reference
// receiver and, as far as it has them, ulogd2.
func ExporterSettings() GroupSettings {
	return GroupSettings{CopyRange: 256, QueueThreshold: 1000, FlushTimeout: 10 * time.Millisecond, BatchSize: 128 << 10, ReceiveBuffer: 32 << 20}
}

// groupFlags are the exporter's flags that change GroupSettings.
var groupFlags = []string{"--nflog.copy-range", "--nflog.queue-threshold", "--nflog.flush-timeout", "--nflog.batch-size", "--nflog.socket.receive-buffer"}

// changedGroupFlags returns the exporter arguments that set group settings:
// the other receivers keep ExporterSettings, so such a comparison is not
// like for like.
func changedGroupFlags(args []string) []string {
	var out []string
	for _, a := range args {
		name, _, _ := strings.Cut(a, "=")
		for _, f := range groupFlags {
			if name == f {
				out = append(out, a)
			}
		}
	}
	return out
}

// referenceArgs are the reference receiver's arguments for group g.
func referenceArgs(g int, s GroupSettings) []string {
	return []string{
		"-g", strconv.Itoa(g),
		"-r", strconv.FormatUint(uint64(s.CopyRange), 10),
		"-N", strconv.FormatUint(uint64(s.BatchSize), 10),
		"-q", strconv.FormatUint(uint64(s.QueueThreshold), 10),
		"-t", strconv.FormatInt(int64(s.FlushTimeout/(10*time.Millisecond)), 10),
		"-b", strconv.Itoa(s.ReceiveBuffer),
		// The exporter asks for global sequence numbers too (one
		// attribute more per message, one more counter in the kernel).
		"-G",
	}
}

// BuildReference compiles the reference receiver into dir with cc (e.g.
// "gcc") and returns the binary's path.
func BuildReference(cc, dir string) (string, error) {
	if cc == "" {
		cc = "gcc"
	}
	if _, err := exec.LookPath(cc); err != nil {
		return "", fmt.Errorf("bench: the reference receiver is C and needs %s (apt-get install gcc libc6-dev), or leave it out: %w", cc, err)
	}
	src := filepath.Join(dir, "reference.c")
	bin := filepath.Join(dir, "nfdrop-reference")
	if err := os.WriteFile(src, referenceSource, 0o600); err != nil {
		return "", err
	}
	out, err := exec.Command(cc, "-O2", "-Wall", "-Wextra", "-Werror", "-o", bin, src).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("bench: build the reference receiver with %s: %v: %s", cc, err, tail(string(out)))
	}
	if _, err := os.Stat(bin); err != nil {
		return "", errors.New("bench: the C compiler wrote no reference receiver")
	}
	return bin, nil
}
