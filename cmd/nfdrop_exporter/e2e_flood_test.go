//go:build linux

package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop-lab/e2e"
	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop-lab/lab"
)

// TestE2EFloodAccountingUnderOverload floods the real exporter past what it
// can take and checks the accounting identity (collector/README.md, Accounting) exactly:
//
//	sum(nfdrop_packets_total) + nfdrop_messages_lost_total == NFLOG rule counter
//
// The overload is forced, not hoped for: four identical NFLOG rules turn
// every packet into four messages, the socket receive buffer is cut to
// 64 KiB, and the exporter is stopped (SIGSTOP) for 300 ms in the middle of
// the flood, as a reader that is descheduled during a burst would be. Loss
// must therefore happen (lost > 0) and every lost message must be counted
// (a slow tail of packets after the flood reveals a loss at its very end,
// which sequence numbers can only show once a later message arrives).
// It takes about 10 s:
//
//	sudo NFDROP_E2E=1 go test -run E2EFlood -v ./cmd/nfdrop_exporter/
func TestE2EFloodAccountingUnderOverload(t *testing.T) {
	e2e.Require(t, labTools...)
	bin := e2e.Binary(t)
	const group, rules, packets = 0, 4, 150_000

	l, err := lab.New(fmt.Sprintf("nfdG-e2e%d", os.Getpid()))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := l.Close(); err != nil {
			t.Error(err)
		}
	}()
	if err := l.ApplyRepeated(filepath.Join(e2e.Root(), "deploy", "firewall"), t.TempDir(), group, rules); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd, err := l.Start(l.Server, &stderr, &stderr, bin, "--web.listen-address=127.0.0.1:9786",
		"--nflog.socket.receive-buffer=64KiB", "--log.level=warn")
	if err != nil {
		t.Fatal(err)
	}
	client := lab.HTTPClient(l.Server, 5*time.Second)
	const url = "http://127.0.0.1:9786/metrics"
	// scrape returns what the accounting invariant needs from one scrape.
	type counts struct{ packets, lost, up, rebinds float64 }
	scrape := func() (counts, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s, err := lab.FetchMetrics(ctx, client, url)
		if err != nil {
			return counts{}, err
		}
		g := map[string]string{"group": strconv.Itoa(group)}
		lost, _ := s.Value("nfdrop_messages_lost_total", g)
		up, _ := s.Value("nfdrop_up", g)
		rebinds, _ := s.Value("nfdrop_rebinds_total", g)
		return counts{lab.Sum(s.Packets(strconv.Itoa(group))), lost, up, rebinds}, nil
	}
	var bound time.Time
	for deadline := time.Now().Add(10 * time.Second); ; {
		c, err := scrape()
		if err == nil && c.up == 1 {
			bound = time.Now()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("exporter not up within 10s (%v): %s", err, stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Baselines: anything logged before the flood (nothing, in the silent
	// lab) is left out on both sides.
	logged0, err := l.RuleCounter(group)
	if err != nil {
		t.Fatal(err)
	}
	base, err := scrape()
	if err != nil {
		t.Fatal(err)
	}
	pool, err := lab.BuildPool(lab.MixTeardown, lab.PoolSize, 7)
	if err != nil {
		t.Fatal(err)
	}

	type floodResult struct {
		res lab.FloodResult
		err error
	}
	done := make(chan floodResult, 1)
	go func() {
		var fr lab.FloodResult
		err := lab.InNetns(l.Client, func() error {
			var err error
			fr, err = lab.Flood(lab.ClientIf, pool, packets, 0, 30*time.Second, nil)
			return err
		})
		done <- floodResult{fr, err}
	}()
	// Stall the reader while the flood runs.
	time.Sleep(200 * time.Millisecond)
	if err := cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if err := cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	fr := <-done
	if fr.err != nil {
		t.Fatal(fr.err)
	}
	// A lost batch is counted from the sequence-number gap it leaves, i.e.
	// when a later message arrives. Once the exporter has drained the
	// queue, a slow tail of packets (which it surely receives) makes any
	// loss at the very end of the flood visible too.
	time.Sleep(time.Second)
	const tail = 100
	var tr lab.FloodResult
	if err := lab.InNetns(l.Client, func() error {
		var err error
		tr, err = lab.Flood(lab.ClientIf, pool, tail, 1000, 10*time.Second, nil)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	fr.res.Sent += tr.Sent
	time.Sleep(100 * time.Millisecond) // the last frames' softirq work
	logged1, err := l.RuleCounter(group)
	if err != nil {
		t.Fatal(err)
	}
	logged := logged1 - logged0
	// Every flood packet must reach all the NFLOG rules (none accepted before them).
	if logged != fr.res.Sent*rules {
		t.Errorf("NFLOG rules logged %d messages, want %d packets x %d rules", logged, fr.res.Sent, rules)
	}

	// Wait until every logged message is counted or counted as lost (the
	// last kernel batch is flushed within --nflog.flush-timeout).
	var c counts
	for deadline := time.Now().Add(10 * time.Second); ; {
		if c, err = scrape(); err != nil {
			t.Fatal(err)
		}
		if uint64(c.packets+c.lost-base.packets-base.lost) >= logged || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // nothing may arrive after the count matched
	// The configuration requests at binding wait for their answers under a
	// 5 s read deadline: one left behind fails the reader then, and the
	// re-bind loses packets without a sequence gap. Read no earlier.
	time.Sleep(time.Until(bound.Add(6 * time.Second)))
	if c, err = scrape(); err != nil {
		t.Fatal(err)
	}
	c.packets -= base.packets
	c.lost -= base.lost
	t.Logf("sent %d packets at %.0f pps x %d rules: logged %d, counted %.0f, lost %.0f (%.1f %%)",
		fr.res.Sent, fr.res.PPS(), rules, logged, c.packets, c.lost, 100*c.lost/float64(logged))
	if uint64(c.packets)+uint64(c.lost) != logged {
		t.Errorf("sum(nfdrop_packets_total) %.0f + nfdrop_messages_lost_total %.0f = %.0f, want the NFLOG rule counter %d exactly",
			c.packets, c.lost, c.packets+c.lost, logged)
	}
	if c.rebinds != 0 {
		t.Errorf("nfdrop_rebinds_total %.0f, want 0: the group was closed and bound again, and packets logged in between are counted nowhere (%s)", c.rebinds, stderr.String())
	}
	if c.lost == 0 {
		t.Errorf("no message lost with a 64 KiB socket buffer and a stalled reader: the test did not overload the exporter")
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("exporter exit after SIGTERM: %v: %s", err, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Errorf("exporter did not exit within 10s of SIGTERM")
	}
}
