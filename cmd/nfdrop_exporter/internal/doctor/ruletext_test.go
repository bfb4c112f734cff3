package doctor

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestIptablesMatches(t *testing.T) {
	for in, want := range map[string]string{
		"-A ufw-before-input -m conntrack --ctstate INVALID -j DROP":          "-m conntrack --ctstate INVALID",
		"-A ufw-not-local -j DROP":                                            "",
		"-A INPUT -p tcp -m tcp --dport 23 -j REJECT --reject-with tcp-reset": "-p tcp -m tcp --dport 23",
		"-A INPUT -p udp -g skip":                                             "-p udp",
		"-P INPUT DROP":                                                       "",
		`-A CNI-ISOLATION-STAGE-2 -o cni-podman3 -m comment --comment "CNI firewall plugin rules (ingressPolicy: same-bridge)" -j DROP`: "-o cni-podman3",
		`-A X -p tcp -m comment --comment "say \"hi\" -j x" --dport 22 -j DROP`:                                                         "-p tcp --dport 22",
		`-A X -m comment --comment plain -s 192.0.2.1/32 -j DROP`:                                                                       "-s 192.0.2.1/32",
	} {
		if got := iptablesMatches(in); got != want {
			t.Errorf("iptablesMatches(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestNftMatches(t *testing.T) {
	for in, want := range map[string]string{
		"ct state invalid drop": "ct state invalid",
		"meta nfproto ipv6 fib saddr . mark . iif oif missing drop":      "meta nfproto ipv6 fib saddr . mark . iif oif missing",
		"tcp dport 25 counter packets 5 bytes 500 reject with tcp reset": "tcp dport 25",
		"reject with icmpx admin-prohibited":                             "",
		`iifname "lo" accept`:                                            `iifname "lo"`,
	} {
		if got := nftMatches(in); got != want {
			t.Errorf("nftMatches(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseRecordedTexts(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "ufw.iptables-save"))
	if err != nil {
		t.Fatal(err)
	}
	s := ParseIptablesSave(string(b))
	if l := s[[2]string{"filter", "ufw-not-local"}]; len(l) != 5 || l[4] != "-A ufw-not-local -j DROP" {
		t.Errorf("ufw-not-local: %q", l)
	}
	b, err = os.ReadFile(filepath.Join("testdata", "firewalld.nft"))
	if err != nil {
		t.Fatal(err)
	}
	n := ParseNftList(string(b))
	if got := n[nftKey{"inet", "firewalld", "filter_INPUT", 29}]; got != "ct state invalid drop" {
		t.Errorf("rule 29: %q", got)
	}
}

func FuzzParseIptablesSave(f *testing.F) {
	b, _ := os.ReadFile(filepath.Join("testdata", "ufw.iptables-save"))
	f.Add(string(b))
	f.Add("*filter\n-A X -j DROP\n-A\n*\nCOMMIT\n")
	f.Fuzz(func(t *testing.T, s string) {
		for k, lines := range ParseIptablesSave(s) {
			for _, l := range lines {
				if !strings.HasPrefix(l, "-A ") || !strings.Contains(s, l) {
					t.Fatalf("%v: line %q", k, l)
				}
				_ = iptablesMatches(l)
			}
		}
	})
}

func FuzzParseNftList(f *testing.F) {
	b, _ := os.ReadFile(filepath.Join("testdata", "firewalld.nft"))
	f.Add(string(b))
	f.Add("table inet \"a b\" {\nchain c {\ndrop # handle 3\n}\n}\n")
	f.Fuzz(func(t *testing.T, s string) {
		for k, text := range ParseNftList(s) {
			if strings.Contains(text, " # handle ") || !strings.Contains(s, text) {
				t.Fatalf("%v: text %q", k, text)
			}
			_ = nftMatches(text)
		}
	})
}
