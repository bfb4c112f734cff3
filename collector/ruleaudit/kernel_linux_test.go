//go:build linux

package ruleaudit

import (
	"encoding/binary"
	"fmt"
	"path/filepath"
	"reflect"
	"sort"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/xt"
	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop-lab/e2e"
	"github.com/nfdrop/nfdrop_exporter/collector/classify"
	"github.com/prometheus/common/promslog"
)

// The kernel tests read a real ruleset in a network namespace of their own
// (nfdR-*), so the host's firewall is never touched. They need root.

// kernelNetns creates a namespace (e2e.NewNetns), runs setup commands in it
// and returns a file descriptor of it.
func kernelNetns(tb testing.TB, tag string, setup ...[]string) int {
	tb.Helper()
	e2e.Require(tb, "ip", "iptables", "ip6tables-restore", "nft")
	n := e2e.NewNetns(tb, "R-"+tag)
	for _, c := range setup {
		n.Exec(c[0], c[1:]...)
	}
	return n.FD()
}

// TestNetlinkReadsRealRuleset: iptables-nft NFLOG rules (an xtables target)
// and native nft log rules, with and without counters, as the kernel holds
// them; counters are preset so that the expected values are exact.
func TestNetlinkReadsRealRuleset(t *testing.T) {
	fd := kernelNetns(t, "read",
		[]string{"iptables", "-A", "INPUT", "-p", "udp", "-j", "NFLOG", "--nflog-group", "5", "--nflog-prefix", "denied", "-c", "42", "4200"},
		[]string{"iptables", "-A", "INPUT", "-j", "NFLOG", "-c", "3", "300"}, // group 0, omitted by iptables
		[]string{"iptables", "-A", "INPUT", "-j", "LOG", "-c", "8", "800"},
		// ip6tables-nft 1.8.9 drops a preset counter: this one stays 0.
		[]string{"ip6tables", "-A", "FORWARD", "-j", "NFLOG", "--nflog-group", "5"},
		[]string{"nft", "add table inet fw; add chain inet fw input { type filter hook input priority 0; }; " +
			"add rule inet fw input tcp dport 1 log prefix \"x\" group 5 counter packets 7 bytes 700; " +
			"add rule inet fw input tcp dport 2 log group 65535; " +
			"add rule inet fw input tcp dport 3 log prefix \"kernel-log\" counter packets 9 bytes 900; " +
			"add rule inet fw input counter packets 1 bytes 1 drop"},
	)
	addXtNFLOG(t, fd, 7)
	rs, err := Netlink{Timeout: 2 * time.Second, NetNS: fd}.Read()
	if err != nil {
		t.Fatal(err)
	}
	got := rs.LogRules
	sort.Slice(got, func(i, j int) bool { return fmt.Sprint(got[i]) < fmt.Sprint(got[j]) })
	want := []Rule{
		{Family: "inet", Table: "fw", Chain: "input", LogTarget: LogTarget{Group: 5, Counted: true, Packets: 7}},
		{Family: "inet", Table: "fw", Chain: "input", LogTarget: LogTarget{Group: 65535}},
		{Family: "ip", Table: "filter", Chain: "INPUT", LogTarget: LogTarget{Group: 0, Counted: true, Packets: 3}},
		{Family: "ip", Table: "filter", Chain: "INPUT", LogTarget: LogTarget{Group: 5, Counted: true, Packets: 42}},
		{Family: "ip6", Table: "filter", Chain: "FORWARD", LogTarget: LogTarget{Group: 5, Counted: true}},
		{Family: "ip", Table: "compat", Chain: "in", LogTarget: LogTarget{Group: 7, Counted: true}},
	}
	sort.Slice(want, func(i, j int) bool { return fmt.Sprint(want[i]) < fmt.Sprint(want[j]) })
	if !reflect.DeepEqual(got, want) {
		t.Errorf("log rules:\n got %+v\nwant %+v", got, want)
	}
}

// addXtNFLOG adds the rule older iptables-nft releases write for
// "-j NFLOG --nflog-group N" (Debian 12's 1.8.9 writes a native log
// expression instead): a counter and an xtables NFLOG target, which the
// kernel runs through nft_compat and xt_NFLOG.
func addXtNFLOG(t *testing.T, fd int, group uint16) {
	t.Helper()
	c, err := nftables.New(nftables.WithNetNSFd(fd))
	if err != nil {
		t.Fatal(err)
	}
	tbl := c.AddTable(&nftables.Table{Family: nftables.TableFamilyIPv4, Name: "compat"})
	ch := c.AddChain(&nftables.Chain{Name: "in", Table: tbl, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookInput, Priority: nftables.ChainPriorityFilter})
	c.AddRule(&nftables.Rule{Table: tbl, Chain: ch, Exprs: []expr.Any{
		&expr.Counter{},
		&expr.Target{Name: "NFLOG", Rev: 0, Info: nflogInfo(group, "compat")},
	}})
	if err := c.Flush(); err != nil {
		t.Fatalf("adding an xtables NFLOG rule: %v", err)
	}
}

// TestNetlinkEmptyRuleset: a namespace without any table has no rule and is
// no error.
func TestNetlinkEmptyRuleset(t *testing.T) {
	fd := kernelNetns(t, "empty")
	rs, err := Netlink{Timeout: 2 * time.Second, NetNS: fd}.Read()
	got := rs.LogRules
	if err != nil || len(got) != 0 {
		t.Errorf("empty namespace: %+v, %v; want no rule, no error", got, err)
	}
}

// BenchmarkRead measures one audit, as a scrape asks for it, against the
// shipped rulesets (iptables-nft for both families and the nft table, all
// loaded at once): "uncached" reads the kernel every time, "cached" serves
// the previous read.
func BenchmarkRead(b *testing.B) {
	dir := filepath.Join("..", "..", "deploy", "firewall")
	fd := kernelNetns(b, "bench",
		[]string{"iptables-restore", filepath.Join(dir, "iptables.rules")},
		[]string{"ip6tables-restore", filepath.Join(dir, "ip6tables.rules")},
		[]string{"nft", "-f", filepath.Join(dir, "nftables.nft")},
	)
	for _, bc := range []struct {
		name   string
		maxAge time.Duration
	}{{"uncached", 0}, {"cached", time.Hour}} {
		b.Run(bc.name, func(b *testing.B) {
			a := New(Config{Groups: []classify.Group{0}, Reader: Netlink{Timeout: 2 * time.Second, NetNS: fd}, MaxAge: bc.maxAge}, promslog.NewNopLogger())
			b.ReportAllocs()
			for b.Loop() {
				if au := a.Read(); au.Err != nil {
					b.Fatal(au.Err)
				}
			}
		})
	}
}

// nflogInfo builds struct xt_nflog_info as iptables writes it.
func nflogInfo(group uint16, prefix string) *xt.Unknown {
	b := make([]byte, 4+2+2+2+2+64)
	binary.NativeEndian.PutUint32(b[0:], 256) // len (--nflog-size)
	binary.NativeEndian.PutUint16(b[4:], group)
	binary.NativeEndian.PutUint16(b[8:], 1) // flags: XT_NFLOG_F_COPY_LEN
	copy(b[12:], prefix)
	u := xt.Unknown(b)
	return &u
}
