package collector

import (
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/nfdrop/nfdrop_exporter/collector/classify"
	"github.com/nfdrop/nfdrop_exporter/collector/packet"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/promslog"
)

// gatherPackets scrapes c through a registry, as promhttp does, and returns
// every nfdrop_packets_total series as "prefix class=count" and the groups
// that have an nfdrop_up series.
func gatherPackets(t *testing.T, c *Collector) (series []string, up []string) {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil {
		t.Errorf("scrape failed: %v", err)
	}
	label := func(m *dto.Metric, name string) string {
		for _, l := range m.GetLabel() {
			if l.GetName() == name {
				return l.GetValue()
			}
		}
		return "<none>"
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			switch mf.GetName() {
			case "nfdrop_packets_total":
				series = append(series, fmt.Sprintf("%s %s=%v", label(m, classify.LabelPrefix), label(m, classify.LabelClass), m.GetCounter().GetValue()))
			case "nfdrop_up":
				up = append(up, label(m, classify.LabelGroup))
			}
		}
	}
	sort.Strings(series)
	sort.Strings(up)
	return series, up
}

// TestCollectorPrefixNotUTF8KeepsEverySeries: iptables and nft accept any
// bytes in a log prefix (a Latin-1 "ä" is the byte 0xE4). The label value
// must come out as UTF-8, and the scrape must still carry every other
// series, the other group's nfdrop_up included.
func TestCollectorPrefixNotUTF8KeepsEverySeries(t *testing.T) {
	c, err := New(Config{Groups: []classify.Group{1, 2}, MaxPrefixes: 4}, promslog.NewNopLogger())
	if err != nil {
		t.Fatal(err)
	}
	c.Bound(1, true)
	c.Bound(2, true)
	fin := ipv4TCP(packet.FlagFIN|packet.FlagACK, 51000, 443)
	for i := 0; i < 3; i++ {
		c.Packet(msg(1, 2, "caf\xe4 ", fin))
	}
	c.Packet(msg(1, 2, "caf\xe5", fin))     // sanitized alike: the same series
	c.Packet(msg(1, 2, "caf\xe4\xe4", fin)) // a different label value
	c.Packet(msg(2, 2, "denied", fin))
	series, up := gatherPackets(t, c)
	want := []string{"caf\uFFFD teardown=4", "caf\uFFFD\uFFFD teardown=1", "denied teardown=1"}
	if strings.Join(series, "|") != strings.Join(want, "|") {
		t.Errorf("series %q, want %q", series, want)
	}
	if strings.Join(up, ",") != "1,2" {
		t.Errorf("nfdrop_up for groups %q, want 1,2", up)
	}
}

// TestCollectorReservesOtherPrefix: a rule whose prefix is "(other)" must not
// merge with the overflow of prefixes past max-prefixes, which would make two
// series with one label set (a failed scrape) or lose counts.
func TestCollectorReservesOtherPrefix(t *testing.T) {
	c, err := New(Config{Groups: []classify.Group{1}, MaxPrefixes: 2}, promslog.NewNopLogger())
	if err != nil {
		t.Fatal(err)
	}
	c.Bound(1, true)
	fin := ipv4TCP(packet.FlagFIN|packet.FlagACK, 51000, 443)
	send := func(prefix string, n int) {
		for i := 0; i < n; i++ {
			c.Packet(msg(1, 2, prefix, fin))
		}
	}
	send("(other)", 3)   // a real prefix: "((other))"
	send("((other))", 7) // also real: "(((other)))", the table is now full
	send("late", 5)      // past max-prefixes: the overflow value "(other)"
	send("(other)", 2)
	series, up := gatherPackets(t, c)
	want := []string{"(((other))) teardown=7", "((other)) teardown=5", "(other) teardown=5"}
	if strings.Join(series, "|") != strings.Join(want, "|") {
		t.Errorf("series %q, want %q", series, want)
	}
	if strings.Join(up, ",") != "1" {
		t.Errorf("nfdrop_up for groups %q, want 1", up)
	}
}

// TestPrefixFirstSeenDuringScrape: a packet with a new prefix that arrives
// while a scrape is under way is shown under its own prefix, never as
// (other): the scrape is held at its first metric, the packet counted, and
// the scrape finished.
func TestPrefixFirstSeenDuringScrape(t *testing.T) {
	c := newTestCollector(t, 5)
	c.Packet(msg(5, 2, "first", ipv4TCP(packet.FlagRST, 40000, 443)))
	ch := make(chan prometheus.Metric)
	go func() { c.Collect(ch); close(ch) }()
	metrics := []prometheus.Metric{<-ch} // the scrape has started
	c.Packet(msg(5, 2, "second", ipv4TCP(packet.FlagRST, 40001, 443)))
	for m := range ch {
		metrics = append(metrics, m)
	}
	var prefixes []string
	for _, m := range metrics {
		if !strings.Contains(m.Desc().String(), `"nfdrop_packets_total"`) {
			continue
		}
		var d dto.Metric
		if err := m.Write(&d); err != nil {
			t.Fatal(err)
		}
		for _, l := range d.GetLabel() {
			if l.GetName() == classify.LabelPrefix {
				prefixes = append(prefixes, l.GetValue())
			}
		}
	}
	sort.Strings(prefixes)
	if strings.Join(prefixes, ",") != "first,second" {
		t.Errorf("prefixes of the scrape = %q, want first and second", prefixes)
	}
}
