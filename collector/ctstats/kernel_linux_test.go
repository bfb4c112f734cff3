//go:build linux

package ctstats

import (
	"encoding/binary"
	"strconv"
	"strings"
	"testing"

	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop-lab/e2e"
	"golang.org/x/sys/unix"
)

// The kernel test reads a network namespace of its own (nfdS-*). It needs
// root.

// TestNetlinkMatchesConntrackTool: after invalid packets in a fresh
// namespace, the ctnetlink read equals what conntrack -S (summed over CPUs)
// and /proc/sys/net/netfilter print for that namespace.
func TestNetlinkMatchesConntrackTool(t *testing.T) {
	e2e.Require(t, "ip", "iptables", "conntrack")
	n := e2e.NewNetns(t, "S")
	// Conntrack only tracks a namespace once a rule uses it.
	n.Exec("iptables", "-A", "INPUT", "-m", "conntrack", "--ctstate", "INVALID", "-j", "DROP")
	fd := n.FD()

	const sent = 5
	sendNullScans(t, n, sent)
	// A valid datagram leaves an entry (UDP, 30 s) for the entry count.
	n.Exec("bash", "-c", "echo x >/dev/udp/127.0.0.1/9")

	got, err := Netlink{NetNS: fd}.Stats()
	if err != nil {
		t.Fatal(err)
	}
	want := conntrackS(t, n)
	// Each segment passes conntrack twice, leaving (OUTPUT) and arriving
	// (PREROUTING) on loopback, and is invalid both times.
	if got.Invalid != 2*sent || got.Entries != 1 {
		t.Errorf("invalid %d, entries %d after %d NULL scans and one datagram, want %d and 1", got.Invalid, got.Entries, sent, 2*sent)
	}
	for _, c := range []struct {
		field string
		got   uint64
	}{
		{"invalid", got.Invalid}, {"drop", got.Drop}, {"early_drop", got.EarlyDrop},
		{"insert_failed", got.InsertFailed}, {"search_restart", got.SearchRestart},
	} {
		if c.got != want[c.field] {
			t.Errorf("%s: netlink %d, conntrack -S %d", c.field, c.got, want[c.field])
		}
	}
	for _, c := range []struct {
		file string
		got  uint64
	}{{"nf_conntrack_count", got.Entries}, {"nf_conntrack_max", got.MaxEntries}} {
		s := strings.TrimSpace(n.Exec("cat", "/proc/sys/net/netfilter/"+c.file))
		if n, err := strconv.ParseUint(s, 10, 64); err != nil || n != c.got {
			t.Errorf("%s: netlink %d, /proc %q", c.file, c.got, s)
		}
	}
	t.Logf("netlink %+v; conntrack -S %v", got, want)
}

// conntrackS sums the per-CPU lines of conntrack -S.
func conntrackS(t *testing.T, n *e2e.Netns) map[string]uint64 {
	t.Helper()
	sum := map[string]uint64{}
	for _, line := range strings.Split(n.Exec("conntrack", "-S"), "\n") {
		for _, f := range strings.Fields(line) {
			k, v, ok := strings.Cut(f, "=")
			if !ok || k == "cpu" {
				continue
			}
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				t.Fatalf("conntrack -S: %q", f)
			}
			sum[k] += n
		}
	}
	return sum
}

// sendNullScans sends n TCP segments without any flag to 127.0.0.1 from a
// raw socket inside the namespace: conntrack rejects the flag combination.
func sendNullScans(t *testing.T, ns *e2e.Netns, n int) {
	t.Helper()
	var s int
	var err error
	ns.Do(func() { s, err = unix.Socket(unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_RAW) })
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(s)
	pkt := make([]byte, 40)
	pkt[0], pkt[8], pkt[9] = 0x45, 64, unix.IPPROTO_TCP
	binary.BigEndian.PutUint16(pkt[2:], 40)
	copy(pkt[12:], []byte{127, 0, 0, 1, 127, 0, 0, 1})
	binary.BigEndian.PutUint16(pkt[20:], 40000)
	binary.BigEndian.PutUint16(pkt[22:], 9)
	pkt[32] = 5 << 4 // data offset; flags byte pkt[33] stays 0
	binary.BigEndian.PutUint16(pkt[34:], 512)
	for i := range n {
		binary.BigEndian.PutUint32(pkt[24:], uint32(1000+i))
		if err := unix.Sendto(s, pkt, 0, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
			t.Fatal(err)
		}
	}
}

// BenchmarkNetlinkStats measures one scrape's read: a ctnetlink socket, the
// per-CPU dump and the table statistics.
func BenchmarkNetlinkStats(b *testing.B) {
	e2e.Require(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := (Netlink{}).Stats(); err != nil {
			b.Fatal(err)
		}
	}
}
