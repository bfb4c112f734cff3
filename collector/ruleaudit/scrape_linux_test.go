//go:build linux

package ruleaudit

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop-lab/e2e"
	"github.com/nfdrop/nfdrop_exporter/collector/classify"
	"github.com/nfdrop/nfdrop_exporter/collector/droppoint"
	"github.com/nfdrop/nfdrop_exporter/collector/ruleset"
	"github.com/prometheus/common/promslog"
)

// scrapeNetns creates a namespace (nfdS-<tag>-<pid>) holding text, loaded
// with nft, and returns it and a descriptor of it.
func scrapeNetns(tb testing.TB, tag, text string) (*e2e.Netns, int) {
	tb.Helper()
	e2e.Require(tb, "ip", "nft")
	n := e2e.NewNetns(tb, "S-"+tag)
	p := filepath.Join(tb.TempDir(), "rules.nft")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		tb.Fatal(err)
	}
	n.Exec("nft", "-f", p)
	return n, n.FD()
}

// BenchmarkScrapeRead is the read a scrape makes on a 10,000-rule ruleset
// whose structure does not change between scrapes (only its counters do),
// and its stages: the netlink dumps, decoding them (or recounting a kept
// snapshot from them), the analysis of drop points and log rules, and what
// the audit takes from the analysis.
func BenchmarkScrapeRead(b *testing.B) {
	_, fd := scrapeNetns(b, "bench", e2e.TenThousandRules())
	nl := Netlink{Timeout: 5 * time.Second, NetNS: fd}
	b.Run("read", func(b *testing.B) {
		// MaxAge 0, as by default: every scrape reads. The first read
		// is not measured: it is the first of the generation.
		a := New(Config{Groups: []classify.Group{1}, Reader: nl}, promslog.NewNopLogger())
		if au := a.Read(); au.Err != nil {
			b.Fatal(au.Err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if au := a.Read(); au.Err != nil {
				b.Fatal(au.Err)
			}
		}
	})
	rn := ruleset.Netlink{Timeout: 5 * time.Second, NetNS: fd}
	raw, err := rn.ReadMessages()
	if err != nil {
		b.Fatal(err)
	}
	snap, err := ruleset.Decode(raw)
	if err != nil {
		b.Fatal(err)
	}
	if n := snap.RuleCount(); n != 10000 {
		b.Fatalf("%d rules, want 10000", n)
	}
	b.Run("dumps", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(raw)))
		for b.Loop() {
			if _, err := rn.ReadMessages(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decode", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(raw)))
		for b.Loop() {
			if _, err := ruleset.Decode(raw); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("recount", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if ok, err := snap.Recount(raw); !ok || err != nil {
				b.Fatalf("recount: %v, %v", ok, err)
			}
		}
	})
	b.Run("analyze", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			droppoint.Analyze(snap, droppoint.Options{})
		}
	})
	a := droppoint.Analyze(snap, droppoint.Options{})
	b.Run("fromanalysis", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			fromAnalysis(a)
		}
	})
}

// TestReadFollowsGeneration: reads of one generation recount the kept
// analysis (the counters move, the structure is not read again); a change
// of the ruleset is a new generation, whose results are exactly those of
// the new ruleset.
func TestReadFollowsGeneration(t *testing.T) {
	n, fd := scrapeNetns(t, "gen", `table inet t {
	chain out {
		type filter hook output priority 0; policy accept;
		icmp type echo-request log group 1 counter
	}
	chain in {
		type filter hook input priority 0; policy accept;
		icmp type echo-request counter drop
	}
}
`)
	a := New(Config{Groups: []classify.Group{1}, Reader: Netlink{Timeout: 5 * time.Second, NetNS: fd}}, promslog.NewNopLogger())
	type result struct {
		Groups    []GroupRules
		Chains    []ChainPackets
		Drops     []droppoint.ChainDrops
		Uncounted []droppoint.TableUncounted
	}
	check := func(step string, want result) *ruleset.Snapshot {
		t.Helper()
		au := a.Read()
		if au.Err != nil {
			t.Fatalf("%s: %v", step, au.Err)
		}
		if got := (result{au.Groups, au.Chains, au.Drops, au.Uncounted}); !reflect.DeepEqual(got, want) {
			t.Fatalf("%s:\n got %+v\nwant %+v", step, got, want)
		}
		return a.kept.snap
	}
	ping := func() { n.Exec("sh", "-c", "ping -c 2 -i 0.2 -W 1 127.0.0.1 >/dev/null; true") }

	first := check("first read", result{
		Groups:    []GroupRules{{Group: 1, Rules: 1}},
		Chains:    []ChainPackets{{Group: 1, Family: "inet", Table: "t", Chain: "out"}},
		Drops:     []droppoint.ChainDrops{{Family: "inet", Table: "t", Chain: "in"}},
		Uncounted: []droppoint.TableUncounted{{Family: "inet", Table: "t"}},
	})
	ping()
	if again := check("same generation, 2 packets later", result{
		Groups:    []GroupRules{{Group: 1, Rules: 1}},
		Chains:    []ChainPackets{{Group: 1, Family: "inet", Table: "t", Chain: "out", Packets: 2}},
		Drops:     []droppoint.ChainDrops{{Family: "inet", Table: "t", Chain: "in", Packets: 2}},
		Uncounted: []droppoint.TableUncounted{{Family: "inet", Table: "t"}},
	}); again != first {
		t.Errorf("a read of the same generation decoded the ruleset again")
	}
	n.Exec("nft", "add rule inet t out udp dport 9 log group 1 counter packets 7 bytes 70; "+
		"add rule inet t in tcp dport 9 drop; add chain inet t c; add rule inet t in jump c; add rule inet t c counter packets 3 bytes 30 reject")
	if changed := check("new generation", result{
		Groups:    []GroupRules{{Group: 1, Rules: 2}},
		Chains:    []ChainPackets{{Group: 1, Family: "inet", Table: "t", Chain: "out", Packets: 9}},
		Drops:     []droppoint.ChainDrops{{Family: "inet", Table: "t", Chain: "c", Packets: 3}, {Family: "inet", Table: "t", Chain: "in", Packets: 2}},
		Uncounted: []droppoint.TableUncounted{{Family: "inet", Table: "t", DropPoints: 1}},
	}); changed == first || changed.Generation == first.Generation {
		t.Errorf("the changed ruleset was recounted from generation %d", first.Generation)
	}
}
