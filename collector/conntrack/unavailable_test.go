package conntrack

import (
	"context"
	"log/slog"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop-lab/e2e"
)

type countingHandler struct{ warns, infos atomic.Int32 }

func (h *countingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *countingHandler) Handle(_ context.Context, r slog.Record) error {
	switch r.Level {
	case slog.LevelWarn:
		h.warns.Add(1)
	case slog.LevelInfo:
		h.infos.Add(1)
	}
	return nil
}
func (h *countingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *countingHandler) WithGroup(string) slog.Handler      { return h }

// TestUnavailable: conntrack cannot be subscribed (here: the namespace file
// descriptor is not a namespace). The tracker warns once however often it
// retries, reports nfdrop_conntrack_up 0, and every teardown drop is still
// counted, as skipped.
func TestUnavailable(t *testing.T) {
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer devnull.Close()
	cfg := testConfig()
	cfg.NetNS = int(devnull.Fd())
	cfg.Hold = 10 * time.Millisecond
	cfg.Window = time.Second
	h := &countingHandler{}
	tr, err := New(cfg, slog.New(h))
	if err != nil {
		t.Fatal(err)
	}
	tr.Start()
	defer tr.Stop()
	p := pkt(tup(t, "10.99.0.2", 40000, "10.99.0.1", 443))
	for i := 0; i < 3; i++ {
		tr.observe(5, p, time.Now().UnixNano())
	}
	tr.flush(5)
	skipped := &tr.groups[tr.groupIndex(5)].evidence[EvidenceSkipped]
	e2e.WaitFor(t, 5*time.Second, "3 skipped", func() bool { return skipped.Load() == 3 })
	time.Sleep(1500 * time.Millisecond) // at least one retry (backoff 1s)
	if w := h.warns.Load(); w != 1 {
		t.Errorf("%d warnings, want exactly 1", w)
	}
	if tr.Stats().Up {
		t.Error("conntrack reported up (nfdrop_conntrack_up 1), want 0")
	}
	for e := Evidence(0); e < NumEvidence; e++ {
		if e != EvidenceSkipped && tr.groups[tr.groupIndex(5)].evidence[e].Load() != 0 {
			t.Errorf("evidence %v counted while conntrack is unavailable", e)
		}
	}
}
