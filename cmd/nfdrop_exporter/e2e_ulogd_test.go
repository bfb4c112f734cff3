//go:build linux

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
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
	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop_exporter/internal/explain"
)

// ulogd2's NFLOG groups in the lab: one per output stack (an NFLOG group
// can be bound by one socket only).
const (
	ulogdEmuGroup  = 7
	ulogdJSONGroup = 8
)

// TestE2EUlogd2 runs Debian's ulogd2 next to the exporter in the lab: the
// ruleset logs every dropped packet to the exporter's group and to ulogd2's
// two groups (NFLOG does not end the rule walk), the lab sends its crafted
// set and real late teardown, and explain must classify the LOGEMU file and
// the JSON file ulogd2 wrote exactly as the exporter counted the same
// packets: every nfdrop_packets_total series, equal.
func TestE2EUlogd2(t *testing.T) {
	e2e.Require(t, "ip", "iptables-restore", "ip6tables-restore", "iptables-save", "ip6tables-save", "conntrack", "sysctl", "ulogd")
	ulogd, err := exec.LookPath("ulogd")
	if err != nil {
		t.Fatalf("NFDROP_E2E=1 but ulogd is missing (apt-get install ulogd2 ulogd2-json): %v", err)
	}
	plugins, _ := filepath.Glob("/usr/lib/*/ulogd/ulogd_output_JSON.so")
	if len(plugins) == 0 {
		t.Fatal("NFDROP_E2E=1 but ulogd2's JSON plugin is missing (apt-get install ulogd2-json)")
	}
	pluginDir := filepath.Dir(plugins[0])
	bin := e2e.Binary(t)
	dir := t.TempDir()

	// The shipped rulesets, with ulogd2's two NFLOG rules after the exporter's.
	for _, f := range []string{"iptables.rules", "ip6tables.rules"} {
		b, err := os.ReadFile(filepath.Join("..", "..", "deploy", "firewall", f))
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		n := 0
		for _, line := range strings.Split(string(b), "\n") {
			out = append(out, line)
			if strings.HasPrefix(line, "-A INPUT -j NFLOG --nflog-group 0 ") {
				n++
				for _, g := range []int{ulogdEmuGroup, ulogdJSONGroup} {
					out = append(out, strings.Replace(line, "--nflog-group 0 ", fmt.Sprintf("--nflog-group %d ", g), 1))
				}
			}
		}
		if n != 1 {
			t.Fatalf("%s: found %d NFLOG rules for group 0, want 1", f, n)
		}
		if err := os.WriteFile(filepath.Join(dir, f), []byte(strings.Join(out, "\n")), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	emuFile, jsonFile, ulogdLog := filepath.Join(dir, "ulogd-logemu.log"), filepath.Join(dir, "ulogd.json"), filepath.Join(dir, "ulogd.log")
	conf := fmt.Sprintf(`[global]
logfile="%[1]s"
loglevel=3
plugin="%[2]s/ulogd_inppkt_NFLOG.so"
plugin="%[2]s/ulogd_raw2packet_BASE.so"
plugin="%[2]s/ulogd_filter_IFINDEX.so"
plugin="%[2]s/ulogd_filter_IP2STR.so"
plugin="%[2]s/ulogd_filter_PRINTPKT.so"
plugin="%[2]s/ulogd_output_LOGEMU.so"
plugin="%[2]s/ulogd_output_JSON.so"
stack=log1:NFLOG,base1:BASE,ifi1:IFINDEX,ip2str1:IP2STR,print1:PRINTPKT,emu1:LOGEMU
stack=log2:NFLOG,base2:BASE,ifi2:IFINDEX,ip2str2:IP2STR,json1:JSON

[log1]
group=%[3]d
[log2]
group=%[4]d
[emu1]
file="%[5]s"
sync=1
[json1]
file="%[6]s"
sync=1
`, ulogdLog, pluginDir, ulogdEmuGroup, ulogdJSONGroup, emuFile, jsonFile)
	confFile := filepath.Join(dir, "ulogd.conf")
	if err := os.WriteFile(confFile, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}

	l := e2elab.NewLab(t, fmt.Sprintf("nfu%d", os.Getpid()%100000), lab.Iptables, dir)
	if err := l.PrepareTCP(); err != nil {
		t.Fatal(err)
	}

	var logs lab.SyncBuffer
	if _, err := l.Start(l.Server, &logs, &logs, bin, "--nflog.group=0", "--web.listen-address=127.0.0.1:9786", "--no-conntrack.correlate"); err != nil {
		t.Fatal(err)
	}
	ul, err := l.Start(l.Server, &logs, &logs, ulogd, "-c", confFile)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if t.Failed() {
			b, _ := os.ReadFile(ulogdLog)
			t.Logf("exporter and ulogd output:\n%s\nulogd log:\n%s", logs.String(), b)
		}
	}()
	client := lab.HTTPClient(l.Server, 2*time.Second)
	url := "http://127.0.0.1:9786/metrics"
	ctx := context.Background()
	e2e.WaitEvery(t, 15*time.Second, 200*time.Millisecond, "exporter and ulogd2 ready", func() bool {
		b, _ := os.ReadFile(ulogdLog)
		sc, err := lab.FetchMetrics(ctx, client, url)
		if err != nil {
			return false
		}
		up, ok := sc.Value("nfdrop_up", map[string]string{"group": e2eGroup})
		return ok && up == 1 && bytes.Contains(b, []byte("entering main loop"))
	})

	for _, p := range []part{
		{lab.Crafted(false), 0}, {lab.Crafted(true), 0},
		{lab.LateRST(false), 1500 * time.Millisecond}, {lab.LateRST(true), 1500 * time.Millisecond},
		{lab.LateFIN(false), 4500 * time.Millisecond},
	} {
		if err := l.RunScenario(ctx, p.sc, 0, p.settle, nil); err != nil {
			t.Fatal(err)
		}
	}

	// Everything the rule logged must have reached all three readers.
	var counter uint64
	var got map[lab.Series]float64
	e2e.WaitEvery(t, 10*time.Second, 200*time.Millisecond, "every logged packet in /metrics and in both ulogd2 files", func() bool {
		counter, err = l.RuleCounter(0)
		if err != nil {
			t.Fatal(err)
		}
		sc, err := lab.FetchMetrics(ctx, client, url)
		if err != nil {
			return false
		}
		got = sc.Packets(e2eGroup)
		return counter > 0 && lab.Sum(got) == float64(counter) && lines(emuFile) == counter && lines(jsonFile) == counter
	})
	if err := ul.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct{ file, format string }{{emuFile, "ulogd-logemu"}, {jsonFile, "ulogd-json"}} {
		var out bytes.Buffer
		if err := explain.Run(explain.Options{Format: "json", Files: []string{c.file}}, nil, &out); err != nil {
			t.Fatalf("explain %s: %v", c.file, err)
		}
		var rep explain.Report
		if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
			t.Fatal(err)
		}
		if rep.Inputs[0].Format != c.format || rep.Unparsed != 0 || rep.Ignored != 0 || rep.Total != counter {
			t.Errorf("%s: format %q, %d packets, %d unparsed, %d ignored; want %q, %d, 0, 0",
				filepath.Base(c.file), rep.Inputs[0].Format, rep.Total, rep.Unparsed, rep.Ignored, c.format, counter)
		}
		fromFile := map[lab.Series]float64{}
		for _, s := range rep.Series {
			fromFile[lab.Series{Group: e2eGroup, Prefix: s.Prefix, Family: s.Family, Proto: s.Proto, Port: s.Port, Side: s.Side, Flags: s.Flags, Class: s.Class}] += float64(s.Count)
		}
		if d := lab.DiffSeries(fromFile, got); d != "" {
			t.Errorf("explain of ulogd2's %s differs from the exporter's nfdrop_packets_total:\n%s", filepath.Base(c.file), d)
		}
		// The lab's only sender: every source is the client, one list entry.
		if len(rep.TopSources) == 0 || len(rep.TopTeardownSources) == 0 {
			t.Errorf("%s: top sources %v, teardown %v; want the client in both", filepath.Base(c.file), rep.TopSources, rep.TopTeardownSources)
		}
		t.Logf("%s (%s): %d packets in %d series, equal to the exporter's; classes %v", filepath.Base(c.file), rep.Inputs[0].Format, rep.Total, len(rep.Series), rep.Classes)
	}
	if os.Getenv("NFDROP_E2E_UPDATE") == "1" {
		for _, f := range []string{emuFile, jsonFile} {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join("internal", "explain", "testdata", "lab-"+filepath.Base(f)), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// lines counts the lines of a file (0 if it does not exist).
func lines(path string) uint64 {
	b, _ := os.ReadFile(path)
	return uint64(bytes.Count(b, []byte("\n")))
}
