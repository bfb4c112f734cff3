//go:build linux

package doctor

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop-lab/e2e"
	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop-lab/e2e/e2elab"
	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop-lab/lab"
	"github.com/nfdrop/nfdrop_exporter/collector/ruleset"
	"golang.org/x/sys/unix"
)

// TestRecord rewrites testdata/ from the real ufw and firewalld of Debian,
// run in lab namespaces: the nf_tables messages of one read (.nlmsg) and the
// rule texts doctor's fixes quote (.iptables-save, .ip6tables-save, .nft).
// Run it with NFDROP_RECORD=1 NFDROP_E2E=1 as root after a package upgrade;
// the golden tests then show what changed.
func TestRecord(t *testing.T) {
	if os.Getenv("NFDROP_RECORD") != "1" {
		t.Skip("set NFDROP_RECORD=1 (with NFDROP_E2E=1, as root) to record testdata from real ufw and firewalld")
	}
	e2e.Require(t, "ufw", "firewalld", "nft", "iptables-nft-save", "ip6tables-nft-save")
	t.Run("ufw", func(t *testing.T) {
		l, u := e2elab.NewUFWLab(t, "drec")
		e2elab.SendAuditSet(t, l)
		record(t, l.Server, "ufw")
		u.LogEveryDrop(t, 0)
		u.Run(t, "reload")
		record(t, l.Server, "ufw-after")
	})
	t.Run("firewalld", func(t *testing.T) {
		l, err := lab.New(fmt.Sprintf("nfd-drecf%d", os.Getpid()%100000))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = l.Close() })
		f := e2elab.StartFirewalld(t, l.Server)
		record(t, l.Server, "firewalld")
		f.Cmd(t, "--permanent", "--zone=public", `--add-rich-rule=rule priority=32767 nflog group="0" prefix="denied"`)
		f.Cmd(t, "--reload")
		e2elab.LogInFrontOfDrops(t, l.Server, "inet", "firewalld", 0)
		record(t, l.Server, "firewalld-after")
	})
}

// record writes testdata/<name>.* from namespace ns.
func record(t *testing.T, ns, name string) {
	t.Helper()
	fd, err := unix.Open(filepath.Join(lab.NetnsDir, ns), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	raw, err := ruleset.Netlink{Timeout: 5 * time.Second, NetNS: fd}.ReadMessages()
	if err != nil {
		t.Fatal(err)
	}
	write(t, name+".nlmsg", raw)
	for ext, cmd := range map[string][]string{
		".iptables-save":  {"iptables-nft-save"},
		".ip6tables-save": {"ip6tables-nft-save"},
		".nft":            {"nft", "-a", "list", "ruleset"},
	} {
		out, err := exec.Command("ip", append([]string{"netns", "exec", ns}, cmd...)...).Output()
		if err != nil {
			t.Fatalf("%v: %v", cmd, err)
		}
		write(t, name+ext, out)
	}
}

func write(t *testing.T, name string, b []byte) {
	t.Helper()
	if err := os.WriteFile(filepath.Join("testdata", name), b, 0o644); err != nil {
		t.Fatal(err)
	}
}
