// Package fwmanager tells which programs manage a ruleset (ufw, firewalld,
// Docker, podman, kube-proxy, iptables-nft, plain nftables) from the names
// they give their tables and chains, and which of them owns each chain, so
// that a fix can be written in that program's own terms. Hosts often run two
// at once (ufw and Docker, firewalld and podman).
package fwmanager

import (
	"slices"
	"strings"

	"github.com/nfdrop/nfdrop_exporter/collector/ruleset"
)

// Managers, as Owner and Detect name them.
const (
	UFW         = "ufw"
	Firewalld   = "firewalld"
	Docker      = "docker"
	Podman      = "podman"
	KubeProxy   = "kube-proxy"
	IptablesNFT = "iptables-nft"
	Nftables    = "nftables"
)

// Manager is one program found in the ruleset, with the tables it writes
// to ("ip filter", "inet firewalld").
type Manager struct {
	Name   string   `json:"name"`
	Tables []string `json:"tables"`
}

// Detect lists the managers of the ruleset, in the order of the constants
// above.
func Detect(s *ruleset.Snapshot) []Manager {
	ufw := hasUFW(s)
	tables := map[string][]string{}
	for _, t := range s.Tables {
		tname := t.Family.String() + " " + ruleset.Printable(t.Name)
		seen := map[string]bool{}
		for _, c := range t.Chains {
			seen[owner(c, ufw)] = true
		}
		if len(t.Chains) == 0 {
			seen[tableOwner(t)] = true
		}
		for m := range seen {
			tables[m] = append(tables[m], tname)
		}
	}
	var out []Manager
	for _, m := range []string{UFW, Firewalld, Docker, Podman, KubeProxy, IptablesNFT, Nftables} {
		if ts := tables[m]; len(ts) > 0 {
			slices.Sort(ts)
			out = append(out, Manager{Name: m, Tables: slices.Compact(ts)})
		}
	}
	return out
}

// Owner names the manager that writes chain c.
func Owner(s *ruleset.Snapshot, c *ruleset.Chain) string { return owner(c, hasUFW(s)) }

func hasUFW(s *ruleset.Snapshot) bool {
	for _, c := range s.Chains() {
		if isUFWChain(c.Name) {
			return true
		}
	}
	return false
}

func isUFWChain(name string) bool {
	return strings.HasPrefix(name, "ufw-") || strings.HasPrefix(name, "ufw6-")
}

// iptablesTables are the tables iptables-nft creates.
var iptablesTables = []string{"filter", "nat", "mangle", "raw", "security", "broute"}

// iptablesHooks are the base chain names iptables-nft gives them.
var iptablesHooks = []string{"INPUT", "OUTPUT", "FORWARD", "PREROUTING", "POSTROUTING", "BROUTING"}

func owner(c *ruleset.Chain, ufw bool) string {
	t := c.Table
	switch name := c.Name; {
	case t.Name == "firewalld":
		return Firewalld
	case isUFWChain(name):
		return UFW
	case name == "DOCKER" || strings.HasPrefix(name, "DOCKER-") || t.Name == "docker-bridges":
		return Docker
	case strings.HasPrefix(name, "CNI-") || strings.HasPrefix(name, "NETAVARK") || strings.HasPrefix(name, "PODMAN") || t.Name == "netavark" || t.Name == "podman":
		return Podman
	case strings.HasPrefix(name, "KUBE-") || t.Name == "kube-proxy":
		return KubeProxy
	}
	if iptablesTable(t) {
		if ufw && t.Name == "filter" && (t.Family == ruleset.FamilyIP || t.Family == ruleset.FamilyIP6) &&
			slices.Contains([]string{"INPUT", "OUTPUT", "FORWARD"}, c.Name) {
			return UFW // ufw sets these chains' policies (ufw default ...)
		}
		return IptablesNFT
	}
	return Nftables
}

func tableOwner(t *ruleset.Table) string {
	switch {
	case t.Name == "firewalld":
		return Firewalld
	case iptablesTable(t):
		return IptablesNFT
	}
	return Nftables
}

// iptablesTable says that iptables-nft wrote the table: it uses xtables
// expressions, or it has iptables' name, family and base chain names.
func iptablesTable(t *ruleset.Table) bool {
	for _, c := range t.Chains {
		for _, r := range c.Rules {
			if r.Xtables {
				return true
			}
		}
	}
	switch t.Family {
	case ruleset.FamilyIP, ruleset.FamilyIP6, ruleset.FamilyARP, ruleset.FamilyBridge:
	default:
		return false
	}
	if !slices.Contains(iptablesTables, t.Name) {
		return false
	}
	bases := 0
	for _, c := range t.Chains {
		if c.Base != nil {
			if !slices.Contains(iptablesHooks, c.Name) {
				return false
			}
			bases++
		}
	}
	return bases > 0
}
