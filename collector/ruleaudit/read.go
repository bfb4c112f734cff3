package ruleaudit

import (
	"fmt"
	"time"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
)

// Rule is one nf_tables rule that logs to an NFLOG group.
type Rule struct {
	Family string // nft family name: ip, ip6, inet, arp, bridge, netdev
	Table  string
	Chain  string
	LogTarget
}

// Reader reads the log rules of the ruleset the exporter's network namespace
// sees.
type Reader interface {
	LogRules() ([]Rule, error)
}

// Netlink reads the ruleset over nf_tables netlink (CAP_NET_ADMIN) in the
// calling process's network namespace.
type Netlink struct {
	// Timeout bounds one whole read: a ruleset too large to dump in time
	// fails the read instead of stalling scrapes.
	Timeout time.Duration
	// NetNS is a file descriptor of another network namespace to read;
	// 0 reads the caller's own.
	NetNS int
}

// LogRules lists every chain, then dumps each chain's rules: the kernel
// filters a rule dump by exact table and chain name only.
func (n Netlink) LogRules() ([]Rule, error) {
	deadline := time.Now().Add(n.Timeout)
	c, err := nftables.New(nftables.AsLasting(), nftables.WithNetNSFd(n.NetNS), nftables.WithSockOptions(func(c *netlink.Conn) error {
		return c.SetDeadline(deadline)
	}))
	if err != nil {
		return nil, fmt.Errorf("nf_tables netlink: %w", err)
	}
	defer c.CloseLasting()
	chains, err := c.ListChains()
	if err != nil {
		return nil, fmt.Errorf("listing nf_tables chains: %w", err)
	}
	var out []Rule
	for _, ch := range chains {
		if ch.Table == nil {
			continue
		}
		rules, err := c.GetRules(ch.Table, ch)
		if err != nil {
			return nil, fmt.Errorf("reading rules of chain %s %s %s: %w", FamilyName(ch.Table.Family), ch.Table.Name, ch.Name, err)
		}
		for _, r := range rules {
			if t, ok := Match(r.Exprs); ok {
				out = append(out, Rule{Family: FamilyName(ch.Table.Family), Table: ch.Table.Name, Chain: ch.Name, LogTarget: t})
			}
		}
	}
	return out, nil
}

// FamilyName is the family as nft spells it.
func FamilyName(f nftables.TableFamily) string {
	switch f {
	case nftables.TableFamilyIPv4:
		return "ip"
	case nftables.TableFamilyIPv6:
		return "ip6"
	case nftables.TableFamilyINet:
		return "inet"
	case nftables.TableFamilyARP:
		return "arp"
	case nftables.TableFamilyBridge:
		return "bridge"
	case nftables.TableFamilyNetdev:
		return "netdev"
	}
	return "unknown"
}
