//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop-lab/e2e"
	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop-lab/e2e/e2elab"
	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop-lab/lab"
)

// TestE2EConntrackReasons drives the real exporter in a lab whose server
// namespace logs conntrack's INVALID packets to NFLOG group 0
// (nf_conntrack_log_invalid=6, nfnetlink_log as the IPv4 and IPv6 logger)
// and sends packets that conntrack rejects for each reason the lab can
// produce for real, plus drops conntrack says nothing about. It proves, for
// IPv4 and IPv6, with the drop rule logging to group 0 (shared with
// conntrack) and to group 7 (group 0 bound by --conntrack.reasons.bind):
//   - nfdrop_drop_reasons_total has exactly the hand-written (class, reason)
//     counts, none included;
//   - nfdrop_conntrack_log_messages_total{group="0"} counts conntrack's
//     messages by reason, and they are not in nfdrop_packets_total: the
//     accounting identity sum(nfdrop_packets_total) +
//     nfdrop_messages_lost_total == the log rule's counter holds exactly;
//   - the set-up metrics report the sysctls.
func TestE2EConntrackReasons(t *testing.T) {
	e2e.Require(t, "ip", "iptables-restore", "ip6tables-restore", "iptables-save", "ip6tables-save", "nft", "conntrack", "sysctl")
	bin := e2e.Binary(t)
	fwDir, err := filepath.Abs(filepath.Join("..", "..", "deploy", "firewall"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, group := range []int{0, 7} {
		for _, v6 := range []bool{false, true} {
			fam := map[bool]string{false: "ipv4", true: "ipv6"}[v6]
			prefix := fmt.Sprintf("nfrsn%d-%d", os.Getpid()%100000, n)
			n++
			t.Run(fmt.Sprintf("group%d/%s", group, fam), func(t *testing.T) {
				t.Parallel()
				runReasonsE2E(t, bin, fwDir, prefix, group, v6)
			})
		}
	}
}

func runReasonsE2E(t *testing.T, bin, fwDir, prefix string, group int, v6 bool) {
	fam := map[bool]string{false: "ipv4", true: "ipv6"}[v6]
	dir := fwDir
	args := []string{"--nflog.group=0"}
	if group != 0 {
		// The shipped iptables rulesets with the drop rule moved to another group.
		dir = t.TempDir()
		for _, f := range []string{"iptables.rules", "ip6tables.rules"} {
			b, err := os.ReadFile(filepath.Join(fwDir, f))
			if err != nil {
				t.Fatal(err)
			}
			s := strings.ReplaceAll(string(b), "--nflog-group 0", fmt.Sprintf("--nflog-group %d", group))
			if err := os.WriteFile(filepath.Join(dir, f), []byte(s), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		args = []string{fmt.Sprintf("--nflog.group=%d", group), "--conntrack.reasons.bind"}
	}
	g := fmt.Sprint(group)

	l := e2elab.NewLab(t, prefix, lab.Iptables, dir)
	exp, exited, _ := e2elab.StartExporter(t, l, bin, append(args, "--web.listen-address=127.0.0.1:9786", "--log.level=debug")...)
	client := lab.HTTPClient(l.Server, 2*time.Second)
	url := "http://127.0.0.1:9786/metrics"
	ctx := context.Background()
	sc := e2elab.WaitUp(t, l, exited, "0", g)
	// After the exporter bound its groups: nfnetlink_log is loaded, so it
	// can be made the default logger.
	if err := l.EnableConntrackLog(); err != nil {
		t.Fatal(err)
	}
	if err := l.RunReasons(ctx, v6, nil); err != nil {
		t.Fatal(err)
	}

	want := lab.ExpectedReasons(v6)
	var wantDrops float64
	wantMsgs := map[string]float64{}
	for k, v := range want {
		wantDrops += v
		if k.Reason != "none" {
			wantMsgs[k.Reason] += v
		}
	}
	var got map[lab.ReasonKey]float64
	var packets, lost float64
	var counter uint64
	stable := 0
	var err error
	deadline := time.Now().Add(8 * time.Second)
	for {
		counter, err = l.RuleCounter(group)
		if err != nil {
			t.Fatal(err)
		}
		sc, err = lab.FetchMetrics(ctx, client, url)
		if err != nil {
			t.Fatal(err)
		}
		got = sc.Reasons(g)
		packets = lab.Sum(sc.Packets(g))
		lost, _ = sc.Value("nfdrop_messages_lost_total", map[string]string{"group": g})
		if packets+lost == float64(counter) && sum(got) == float64(counter) {
			stable++
		} else {
			stable = 0
		}
		if stable >= 3 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if float64(counter) != wantDrops {
		t.Errorf("log rule counter %d, want %v (the lab sent a packet that did not, or should not, reach the log rule)", counter, wantDrops)
	}
	if packets+lost != float64(counter) || lost != 0 {
		t.Errorf("accounting: sum(nfdrop_packets_total{group=%q}) %v + nfdrop_messages_lost_total %v != log rule counter %d (or lost != 0)", g, packets, lost, counter)
	}
	if !maps.Equal(got, want) {
		t.Errorf("nfdrop_drop_reasons_total{group=%q}:\n got %v\nwant %v", g, got, want)
	}
	msgs := sc.ConntrackMessages("0", fam)
	if !maps.Equal(msgs, wantMsgs) {
		t.Errorf("nfdrop_conntrack_log_messages_total{group=\"0\",family=%q}:\n got %v\nwant %v", fam, msgs, wantMsgs)
	}
	if group != 0 {
		if p := lab.Sum(sc.Packets("0")); p != 0 {
			t.Errorf("group 0 carries only conntrack's messages, but nfdrop_packets_total{group=\"0\"} = %v", p)
		}
	}
	if w, _ := sc.Value("nfdrop_drop_reasons_waiting", map[string]string{"group": g}); w != 0 {
		t.Errorf("nfdrop_drop_reasons_waiting{group=%q} = %v, want 0", g, w)
	}
	if v, ok := sc.Value("nfdrop_conntrack_log_invalid", nil); !ok || v != 6 {
		t.Errorf("nfdrop_conntrack_log_invalid = %v (present %v), want 6", v, ok)
	}
	for _, f := range []string{"ipv4", "ipv6"} {
		if v, ok := sc.Value("nfdrop_conntrack_logger_info", map[string]string{"family": f, "logger": "nfnetlink_log"}); !ok || v != 1 {
			t.Errorf("nfdrop_conntrack_logger_info{family=%q,logger=\"nfnetlink_log\"} missing", f)
		}
	}
	if _, ok := sc.Value("nfdrop_conntrack_nflog_attributes_supported", nil); !ok {
		t.Error("nfdrop_conntrack_nflog_attributes_supported missing: conntrack attributes were not probed")
	}
	if !t.Failed() {
		t.Logf("group %s %s: drops by (class, reason) %v; conntrack messages %v; sum(packets_total) %v + lost %v == log rule counter %d", g, fam, got, msgs, packets, lost, counter)
	}
	e2elab.StopExporter(t, exp, exited)
}

func sum[K comparable](m map[K]float64) float64 {
	var s float64
	for _, v := range m {
		s += v
	}
	return s
}

// TestE2EConntrackReasonsGroupHeld: with --conntrack.reasons.bind and group 0
// held by another process (here another exporter, as ulogd2 would), the
// exporter exits at start with status 1 and says what to do.
func TestE2EConntrackReasonsGroupHeld(t *testing.T) {
	e2e.Require(t, "ip", "iptables-restore", "ip6tables-restore", "iptables-save", "ip6tables-save", "nft", "conntrack", "sysctl")
	bin := e2e.Binary(t)
	l, err := lab.New(fmt.Sprintf("nfrsh%d", os.Getpid()%100000))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("lab close: %v", err)
		}
	})
	var holderLog lab.SyncBuffer
	holder, err := l.Start(l.Server, &holderLog, &holderLog, bin, "--nflog.group=0", "--web.listen-address=127.0.0.1:9786")
	if err != nil {
		t.Fatal(err)
	}
	client := lab.HTTPClient(l.Server, 2*time.Second)
	deadline := time.Now().Add(10 * time.Second)
	for {
		sc, err := lab.FetchMetrics(context.Background(), client, "http://127.0.0.1:9786/metrics")
		if err == nil {
			if up, _ := sc.Value("nfdrop_up", map[string]string{"group": "0"}); up == 1 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("first exporter not bound to group 0 after 10s:\n%s", holderLog.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	out, err := l.Run(l.Server, bin, "--nflog.group=7", "--conntrack.reasons.bind", "--web.listen-address=127.0.0.1:9787")
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("second exporter: %v, want exit status 1; output:\n%s", err, out)
	}
	for _, want := range []string{"cannot bind NFLOG group 0", "--conntrack.reasons.bind needs group 0", "stop the other reader of group 0"} {
		if !strings.Contains(err.Error()+out, want) {
			t.Errorf("second exporter's output lacks %q:\n%v\n%s", want, err, out)
		}
	}
	holder.Process.Signal(syscall.SIGTERM)
	holder.Wait()
}
