//go:build linux

package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop-lab/e2e"
	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop-lab/e2e/e2elab"
	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop-lab/lab"
)

// TestE2EPrefixNotUTF8 loads real iptables rules whose NFLOG prefixes are
// a Latin-1 "café" (the byte 0xE4, which iptables accepts) and the
// overflow value "(other)", sends connection attempts that hit them, and
// scrapes the real binary: the prefixes must come out sanitized and
// reserved, every packet counted, and the scrape must still carry
// nfdrop_up of a second group that logged nothing.
func TestE2EPrefixNotUTF8(t *testing.T) {
	e2e.Require(t, "ip", "iptables-restore", "ip6tables-restore", "iptables-save", "ip6tables-save", "nft", "conntrack", "sysctl")
	bin := e2e.Binary(t)
	l, err := lab.New(fmt.Sprintf("nfpfx%d", os.Getpid()%100000))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("lab close: %v", err)
		}
	})
	rules := []struct {
		port   int
		prefix string
		sends  int
		want   lab.Series
	}{
		{22, "caf\xe4", 3, lab.Series{Group: "7", Prefix: "caf\uFFFD", Port: "22"}},
		{23, "(other)", 2, lab.Series{Group: "7", Prefix: "((other))", Port: "system"}},
	}
	want := map[lab.Series]float64{}
	for _, r := range rules {
		// exec passes the prefix's bytes unchanged, as a shell's $'caf\xe4' would.
		if _, err := l.Run(l.Server, "iptables", "-A", "INPUT", "-p", "tcp", "--syn", "--dport", strconv.Itoa(r.port),
			"-j", "NFLOG", "--nflog-group", "7", "--nflog-prefix", r.prefix); err != nil {
			t.Fatal(err)
		}
		w := r.want
		w.Family, w.Proto, w.Side, w.Flags, w.Class = "ipv4", "tcp", "client", "SYN", "handshake"
		want[w] = float64(r.sends)
	}

	exp, exited, logs := e2elab.StartExporter(t, l, bin, "--nflog.group=7", "--nflog.group=8",
		"--no-conntrack.correlate", "--web.listen-address=127.0.0.1:9786")
	client := lab.HTTPClient(l.Server, 2*time.Second)
	url := "http://127.0.0.1:9786/metrics"
	ctx := context.Background()
	deadline := time.Now().Add(10 * time.Second)
	for {
		sc, err := lab.FetchMetrics(ctx, client, url)
		if err == nil {
			if up, ok := sc.Value("nfdrop_up", map[string]string{"group": "7"}); ok && up == 1 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("exporter not ready (nfdrop_up{group=\"7\"} != 1) after 10s; last error: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// Nothing listens on the server: each SYN is answered by a RST, so it
	// is logged exactly once.
	for _, r := range rules {
		addr := net.JoinHostPort(lab.ServerIPv4.String(), strconv.Itoa(r.port))
		for i := 0; i < r.sends; i++ {
			c, err := lab.DialContext(ctx, l.Client, "tcp", addr)
			if err == nil {
				c.Close()
				t.Fatalf("connection to %s accepted, want refused", addr)
			}
		}
	}

	var (
		sc      lab.Scrape
		got     map[lab.Series]float64
		counter uint64
	)
	deadline = time.Now().Add(5 * time.Second)
	for {
		if counter, err = nflogRuleCounter(l); err != nil {
			t.Fatal(err)
		}
		if sc, err = lab.FetchMetrics(ctx, client, url); err != nil {
			t.Fatal(err)
		}
		got = sc.Packets("")
		if (lab.Sum(got) == float64(counter) && counter == uint64(lab.Sum(want))) || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if counter != uint64(lab.Sum(want)) {
		t.Errorf("NFLOG rules counted %d packets, want %v", counter, lab.Sum(want))
	}
	if d := lab.DiffSeries(got, want); d != "" {
		t.Errorf("nfdrop_packets_total differs:\n%s", d)
	}
	for _, g := range []string{"7", "8"} {
		if up, ok := sc.Value("nfdrop_up", map[string]string{"group": g}); !ok || up != 1 {
			t.Errorf("nfdrop_up{group=%q} = %v (present %v), want 1", g, up, ok)
		}
	}
	if strings.Contains(logs.String(), "UTF-8") {
		t.Errorf("the exporter logged a label error:\n%s", logs.String())
	}

	e2elab.StopExporter(t, exp, exited)
}

// nflogRuleCounter sums the packet counters of the server's INPUT NFLOG rules.
func nflogRuleCounter(l *lab.Lab) (uint64, error) {
	out, err := l.Run(l.Server, "iptables", "-nvxL", "INPUT")
	if err != nil {
		return 0, err
	}
	var sum uint64
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) > 2 && f[2] == "NFLOG" {
			n, err := strconv.ParseUint(f[0], 10, 64)
			if err != nil {
				return 0, fmt.Errorf("iptables counter %q: %v", line, err)
			}
			sum += n
		}
	}
	return sum, nil
}
