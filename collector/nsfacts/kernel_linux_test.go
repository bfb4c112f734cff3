//go:build linux

package nsfacts

import (
	"fmt"
	"os"
	"reflect"
	"testing"
	"time"

	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop-lab/e2e"
	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop-lab/lab"
)

// TestReadNamespace: in a lab namespace, tcpdump binds NFLOG group 5,
// iptables-legacy holds a rule, and conntrack's settings are changed; Read,
// run on a thread in that namespace, reports each of them.
func TestReadNamespace(t *testing.T) {
	e2e.Require(t, "ip", "tcpdump", "iptables-legacy", "sysctl")
	l, err := lab.New(fmt.Sprintf("nfd-nsf%d", os.Getpid()%100000))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	ns := l.Server
	// Conntrack is loaded (the host has it), so its settings exist in the
	// namespace; a rule that uses it makes sure.
	for _, c := range [][]string{
		{"iptables-legacy", "-A", "INPUT", "-p", "tcp", "--dport", "23", "-j", "DROP"},
		{"sysctl", "-qw", "net.netfilter.nf_conntrack_tcp_loose=0", "net.netfilter.nf_conntrack_log_invalid=6"},
	} {
		if _, err := l.Run(ns, c[0], c[1:]...); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { _, _ = l.Run(ns, "iptables-legacy", "-F", "INPUT") })
	var out lab.SyncBuffer
	td, err := l.Start(ns, &out, &out, "tcpdump", "-i", "nflog:5", "-w", "/dev/null")
	if err != nil {
		t.Fatal(err)
	}
	var f Facts
	deadline := time.Now().Add(10 * time.Second)
	for {
		err = lab.InNetns(ns, func() error {
			var err error
			f, err = Read(Paths{})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := f.Bound(5); ok || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	b, ok := f.Bound(5)
	if !ok || b.Process != "tcpdump" || b.PID != td.Process.Pid {
		t.Fatalf("binding of group 5: %+v (ok %v), want tcpdump pid %d; tcpdump said %s", b, ok, td.Process.Pid, out.String())
	}
	if !f.NFLOGLoaded || len(f.Bindings) != 1 {
		t.Errorf("bindings %+v", f.Bindings)
	}
	if !reflect.DeepEqual(f.Legacy, map[string][]string{"ip": {"filter"}}) {
		t.Errorf("legacy %+v", f.Legacy)
	}
	if f.TCPLoose == nil || *f.TCPLoose != 0 || f.LogInvalid == nil || *f.LogInvalid != 6 {
		t.Errorf("tcp_loose %v, log_invalid %v", f.TCPLoose, f.LogInvalid)
	}
}
