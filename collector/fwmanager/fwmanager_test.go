package fwmanager

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/nfdrop/nfdrop_exporter/collector/ruleset"
)

// build makes a ruleset of tables "family name" with chains; chains named
// in upper case are base chains, and xt marks a table whose rules use
// xtables expressions.
func build(tables map[string][]string, xt ...string) *ruleset.Snapshot {
	s := &ruleset.Snapshot{}
	fams := map[string]ruleset.Family{"ip": ruleset.FamilyIP, "ip6": ruleset.FamilyIP6, "inet": ruleset.FamilyINet}
	for key, chains := range tables {
		var fam, name string
		for i := range key {
			if key[i] == ' ' {
				fam, name = key[:i], key[i+1:]
				break
			}
		}
		t := &ruleset.Table{Family: fams[fam], Name: name}
		for _, c := range chains {
			ch := &ruleset.Chain{Table: t, Name: c}
			if c == "INPUT" || c == "FORWARD" || c == "OUTPUT" || c == "PREROUTING" || c == "POSTROUTING" || c == "input" {
				ch.Base = &ruleset.BaseChain{Hook: 1}
			}
			for _, x := range xt {
				if x == key {
					ch.Rules = []*ruleset.Rule{{Chain: ch, Xtables: true}}
				}
			}
			t.Chains = append(t.Chains, ch)
		}
		s.Tables = append(s.Tables, t)
	}
	return s
}

func names(ms []Manager) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Name)
	}
	return out
}

func TestDetect(t *testing.T) {
	for _, tc := range []struct {
		name   string
		tables map[string][]string
		xt     []string
		want   []string
	}{
		{"ufw and Docker", map[string][]string{
			"ip filter": {"INPUT", "FORWARD", "OUTPUT", "ufw-before-input", "DOCKER", "DOCKER-USER", "DOCKER-ISOLATION-STAGE-1"},
			"ip nat":    {"PREROUTING", "DOCKER"},
		}, []string{"ip filter"}, []string{UFW, Docker, IptablesNFT}},
		{"firewalld and podman", map[string][]string{
			"inet firewalld": {"filter_INPUT"},
			"ip filter":      {"FORWARD", "CNI-FORWARD"},
			"ip nat":         {"POSTROUTING", "CNI-HOSTPORT-DNAT", "CNI-abc123"},
		}, nil, []string{Firewalld, Podman, IptablesNFT}},
		{"netavark and kube-proxy over nftables", map[string][]string{
			"inet netavark":     {"input"},
			"ip kube-proxy":     {"filter-input"},
			"ip filter":         {"INPUT", "KUBE-SERVICES"},
			"inet nfdrop":       {"input"},
			"ip6 filter":        {"input"}, // an nft table named like iptables', written by hand
			"ip docker-bridges": {"filter-forward"},
		}, nil, []string{Docker, Podman, KubeProxy, IptablesNFT, Nftables}},
		{"empty", map[string][]string{}, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := names(Detect(build(tc.tables, tc.xt...))); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// TestOwner: ufw owns the filter base chains whose policies it sets; an
// iptables table without ufw belongs to iptables-nft.
func TestOwner(t *testing.T) {
	s := build(map[string][]string{"ip filter": {"INPUT", "ufw-user-input", "DOCKER"}, "ip nat": {"PREROUTING"}})
	for chain, want := range map[string]string{"INPUT": UFW, "ufw-user-input": UFW, "DOCKER": Docker} {
		if got := Owner(s, s.Table(ruleset.FamilyIP, "filter").Chain(chain)); got != want {
			t.Errorf("%s: %s, want %s", chain, got, want)
		}
	}
	if got := Owner(s, s.Table(ruleset.FamilyIP, "nat").Chain("PREROUTING")); got != IptablesNFT {
		t.Errorf("nat PREROUTING: %s", got)
	}
}

func TestDetectRecorded(t *testing.T) {
	for file, want := range map[string][]Manager{
		"ufw.nlmsg":       {{Name: UFW, Tables: []string{"ip filter", "ip6 filter"}}},
		"firewalld.nlmsg": {{Name: Firewalld, Tables: []string{"inet firewalld"}}},
	} {
		b, err := os.ReadFile(filepath.Join("..", "ruleset", "testdata", file))
		if err != nil {
			t.Fatal(err)
		}
		s, err := ruleset.Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		if got := Detect(s); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: %+v, want %+v", file, got, want)
		}
	}
}
