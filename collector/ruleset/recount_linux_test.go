//go:build linux

package ruleset

import (
	"reflect"
	"testing"
	"time"

	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop-lab/e2e"
)

// TestRecountKernel: a snapshot recounts from a later read of the same
// generation (rule counters, a named counter, an iptables-nft base chain's
// policy counter) to exactly what a decode of that read gives; it refuses a
// read of another generation, and a ruleset with a verdict map whose
// elements expire never recounts.
func TestRecountKernel(t *testing.T) {
	e2e.Require(t, "ip", "nft", "iptables", "ping")
	n := e2e.NewNetns(t, "S-recount")
	n.Exec("iptables", "-P", "INPUT", "DROP")
	n.Exec("iptables", "-A", "INPUT", "-p", "udp", "-j", "ACCEPT")
	n.Exec("nft", `add table inet t; add counter inet t shared; `+
		`add chain inet t c { type filter hook output priority 0; }; `+
		`add rule inet t c icmp type echo-request counter name shared; add rule inet t c icmp type echo-request counter`)
	nl := Netlink{Timeout: 5 * time.Second, NetNS: n.FD()}
	readRaw := func() []byte {
		t.Helper()
		raw, err := nl.ReadMessages()
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	decode := func(raw []byte) *Snapshot {
		t.Helper()
		s, err := Decode(raw)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	s := decode(readRaw())
	before := counters(s)
	n.Exec("sh", "-c", "ping -c 2 -i 0.2 -W 1 127.0.0.1 >/dev/null; true")
	raw := readRaw()
	if ok, err := s.Recount(raw); !ok || err != nil {
		t.Fatalf("Recount of the same generation: %v, %v", ok, err)
	}
	want := counters(decode(raw))
	if got := counters(s); !reflect.DeepEqual(got, want) || reflect.DeepEqual(got, before) {
		t.Fatalf("recounted %v, decoded %v, before the pings %v", got, want, before)
	}
	if p := *chainOf(t, s, FamilyIP, "filter", "INPUT").Base.Counter; p.Packets != 2 {
		t.Errorf("INPUT policy counter %+v, want 2 packets", p)
	}

	n.Exec("nft", `add map inet t m { type ipv4_addr : verdict; flags timeout; elements = { 192.0.2.1 timeout 1h : drop } }; `+
		`add chain inet t in { type filter hook input priority 0; }; add rule inet t in ip saddr vmap @m`)
	raw = readRaw()
	if ok, _ := s.Recount(raw); ok {
		t.Errorf("recounted a read of generation %d into generation %d", decode(raw).Generation, s.Generation)
	}
	exp := decode(raw)
	if ok, _ := exp.Recount(readRaw()); ok {
		t.Errorf("recounted a ruleset whose verdict map elements expire")
	}
}
