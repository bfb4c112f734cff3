package doctor

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/nfdrop/nfdrop_exporter/collector/classify"
	"github.com/nfdrop/nfdrop_exporter/collector/droppoint"
	"github.com/nfdrop/nfdrop_exporter/collector/fwmanager"
	"github.com/nfdrop/nfdrop_exporter/collector/ruleset"
)

// fixer writes fixes in the terms of the program that owns the chain.
type fixer struct {
	snap  *ruleset.Snapshot
	text  RuleText
	group uint16
}

const ufwRecipe = "deploy/firewall/ufw/install --group %d"

func (f fixer) iptablesLine(r *ruleset.Rule) (string, bool) {
	if f.text == nil || r == nil {
		return "", false
	}
	return f.text.Iptables(r)
}

func (f fixer) nftText(r *ruleset.Rule) (string, bool) {
	if f.text == nil || r == nil {
		return "", false
	}
	return f.text.Nft(r)
}

// drop is the fix for a drop point no NFLOG rule sees.
func (f fixer) drop(p droppoint.DropPoint) string {
	switch owner := fwmanager.Owner(f.snap, p.Chain); owner {
	case fwmanager.UFW:
		return f.ufw(p)
	case fwmanager.Firewalld:
		return f.firewalld(p)
	case fwmanager.Docker, fwmanager.Podman, fwmanager.KubeProxy:
		note := map[string]string{
			fwmanager.Docker:    "Docker rewrites its chains when it restarts or a network changes: apply it again after that (an ExecStartPost= of docker.service), or use --ebpf.enable.",
			fwmanager.Podman:    "podman rewrites its chains when a container's network starts or stops: apply it again after that, or use --ebpf.enable.",
			fwmanager.KubeProxy: "kube-proxy rewrites its chains at every sync, so a rule added there is lost within seconds: use --ebpf.enable instead.",
		}[owner]
		if iptablesOwned(p.Chain.Table) {
			return f.iptables(p) + "\n" + note
		}
		return f.nft(p) + "\n" + note
	case fwmanager.IptablesNFT:
		save := "iptables-save > /etc/iptables/rules.v4"
		if p.Chain.Table.Family == ruleset.FamilyIP6 {
			save = "ip6tables-save > /etc/iptables/rules.v6"
		}
		fix := f.iptables(p) + "\nThen save the rules where your boot loads them (netfilter-persistent save, or " + save + ")."
		if p.Kind == droppoint.PolicyDrop && p.Chain.Name == "FORWARD" && f.containerHost() {
			fix += fmt.Sprintf("\nOn this container host, deploy/firewall/containers/install --group %d adds the rule and keeps it the last of FORWARD when docker or podman add theirs; run it after the runtime has started.", f.group)
		}
		return fix
	}
	return f.nft(p) + "\nThen add the same statement to the file your boot loads (/etc/nftables.conf)."
}

// containerHost says that docker or podman write rules here.
func (f fixer) containerHost() bool {
	for _, m := range fwmanager.Detect(f.snap) {
		if m.Name == fwmanager.Docker || m.Name == fwmanager.Podman {
			return true
		}
	}
	return false
}

func iptablesOwned(t *ruleset.Table) bool {
	for _, c := range t.Chains {
		for _, r := range c.Rules {
			if r.Xtables {
				return true
			}
		}
	}
	return t.Family == ruleset.FamilyIP || t.Family == ruleset.FamilyIP6
}

// nflogTarget is the iptables NFLOG target for the group.
func (f fixer) nflogTarget(prefix string) string {
	s := fmt.Sprintf("-j NFLOG --nflog-group %d", f.group)
	if prefix != "" {
		s += fmt.Sprintf(" --nflog-prefix %q", prefix)
	}
	return s
}

// ufw: drops in before.rules chains get an NFLOG line in front of them;
// the policy and the drops that stand for it (skip-to-policy, reject)
// are logged at the top of ufw-after-input (and its forward and output
// twins); drops written from ufw's own rules (user.rules) cannot be
// preceded.
func (f fixer) ufw(p droppoint.DropPoint) string {
	v6 := p.Chain.Table.Family == ruleset.FamilyIP6
	prefix, sfx := "ufw-", ""
	if v6 {
		prefix, sfx = "ufw6-", "6"
	}
	recipe := fmt.Sprintf("Or run "+ufwRecipe+" for all of ufw's drops at once.", f.group)
	name := p.Chain.Name
	dir := chainDirection(name)
	switch {
	case strings.HasPrefix(name, prefix+"user-"):
		return "This is a ufw rule of your own (ufw deny, reject or limit; `ufw status numbered` lists it). ufw writes it to user.rules" + sfx +
			", where no recipe can put a log rule in front of it. Its packets are counted in nfdrop_firewall_drops_total{chain=\"" + classify.LabelText(name) +
			"\"}; to see them packet by packet, run the exporter with --ebpf.enable."
	case strings.HasPrefix(name, prefix+"before-") || name == prefix+"not-local":
		file := "/etc/ufw/before" + sfx + ".rules"
		line, ok := f.iptablesLine(p.Rule)
		if !ok {
			return fmt.Sprintf("In %s, add a line with the same matches as the drop rule of %s and %s in front of it (iptables -S %s shows the rule), then run: ufw reload\n%s",
				file, name, f.nflogTarget("[UFW BLOCK] "), name, recipe)
		}
		nflog := "-A " + name
		if m := iptablesMatches(line); m != "" {
			nflog += " " + m
		}
		nflog += " " + f.nflogTarget("[UFW BLOCK] ")
		return fmt.Sprintf("In %s, add above the line\n    %s\nthe line\n    %s\nthen run: ufw reload\n%s", file, line, nflog, recipe)
	case dir != "":
		chain := prefix + "after-" + dir
		return fmt.Sprintf("Add as the first %s rule of /etc/ufw/after%s.rules:\n    -A %s %s\nthen run: ufw reload\n%s",
			chain, sfx, chain, f.nflogTarget("[UFW BLOCK] "), recipe)
	}
	return recipe
}

// chainDirection tells input, forward or output from a ufw chain's name or
// the base chain it hooks.
func chainDirection(name string) string {
	l := strings.ToLower(name)
	for _, d := range []string{"input", "forward", "output"} {
		if strings.HasSuffix(l, d) || strings.Contains(l, "-"+d) {
			return d
		}
	}
	return ""
}

var firewalldZoneChain = regexp.MustCompile(`^filter_(IN|FWD)_(.+?)(_(pre|log|deny|allow|post))?$`)

// firewalld: a zone's own reject or drop is logged by a rich rule at the
// end of the zone; a rich rule that drops gets an nflog element; the drops
// firewalld writes itself (INVALID, reverse path) are logged from a table
// of your own that runs just before firewalld's chain.
func (f fixer) firewalld(p droppoint.DropPoint) string {
	if m := firewalldZoneChain.FindStringSubmatch(p.Chain.Name); m != nil && !strings.HasPrefix(m[2], "policy_") {
		zone, sub := m[2], m[4]
		kind := "--zone=" + zone
		switch {
		case sub == "deny" || sub == "allow":
			return fmt.Sprintf("Add nflog group=\"%d\" to the rich rule that drops these packets (firewall-cmd %s --list-rich-rules), e.g.\n    firewall-cmd --permanent %s --add-rich-rule='rule family=ipv4 source address=192.0.2.1 nflog group=\"%d\" prefix=\"denied\" drop'\n(remove the old one with --remove-rich-rule), then run: firewall-cmd --reload",
				f.group, kind, kind, f.group)
		case m[1] == "IN":
			return fmt.Sprintf("firewall-cmd --permanent %s --add-rich-rule='rule priority=32767 nflog group=\"%d\" prefix=\"denied\"'\nfirewall-cmd --reload\n(the rule logs, at the end of the zone, every packet the zone then rejects)", kind, f.group)
		case sub == "":
			return f.firewalldForward(p, zone)
		}
	}
	if p.Kind == droppoint.PolicyDrop || (p.Rule != nil && p.Rule.Unconditional()) {
		return "firewalld drops here every packet its earlier rules did not accept (a zone's or a policy's default target). Zone rich rules log input only, and a log rule in front of it elsewhere would also log the packets firewalld accepts. Count these drops with the exporter's --ebpf.enable."
	}
	hook := p.Chain.HookName()
	if p.Chain.Base == nil {
		hook = "input"
		if strings.Contains(p.Chain.Name, "FORWARD") || strings.Contains(p.Chain.Name, "FWD") {
			hook = "forward"
		}
	}
	prio := int32(5)
	if p.Chain.Base != nil {
		prio = p.Chain.Base.Priority - 5
	}
	match := ""
	if t, ok := f.nftText(p.Rule); ok {
		match = nftMatches(t)
	}
	if match == "" && p.Rule != nil && !p.Rule.Unconditional() {
		match = "<the drop rule's matches: nft -a list chain inet firewalld " + p.Chain.Name + ">"
	}
	rule := strings.TrimSpace(match + fmt.Sprintf(" log group %d counter", f.group))
	return fmt.Sprintf("firewalld writes this drop itself and no firewall-cmd setting logs it to NFLOG. Log the same packets from a table of your own that runs just before firewalld's chain (firewalld leaves other tables alone):\n"+
		"    nft add table inet nfdrop\n    nft add chain inet nfdrop %s '{ type filter hook %s priority %d ; }'\n    nft add rule inet nfdrop %s %s\n"+
		"and keep them in /etc/nftables.conf (nftables.service) so that they survive a reboot.", hook, hook, prio, hook, rule)
}

// firewalldForward: zone rich rules see input only; a policy from the zone
// to ANY at the highest priority runs last before the zone's reject of
// forwarded packets, and logs what it then rejects. firewalld applies it to
// the zone's interfaces and sources only: packets it sends to the default
// zone because their interface is in no zone pass no policy.
func (f fixer) firewalldForward(p droppoint.DropPoint, zone string) string {
	if name := f.firewalldLoggingPolicy(p.Chain.Table); name != "" {
		return fmt.Sprintf("firewalld's policy %s logs the forwarded packets of the interfaces and sources of its ingress zones. "+
			"Packets from an interface in no zone reach the default zone's reject without passing any policy: put every interface that forwards in a zone "+
			"(firewall-cmd --permanent --zone=%s --change-interface=IF, then firewall-cmd --reload), with that zone among the policy's ingress zones "+
			"(firewall-cmd --permanent --policy=%s --add-ingress-zone=ZONE), or count them with the exporter's --ebpf.enable.",
			shellWord(name), shellWord(zone), shellWord(name))
	}
	pol := "firewall-cmd --permanent --policy=nfdrop-forward "
	return fmt.Sprintf("Log what the zone then rejects with a policy that runs last for its forwarded packets:\n"+
		"    firewall-cmd --permanent --new-policy=nfdrop-forward\n"+
		"    %s--add-ingress-zone=%s\n    %s--add-egress-zone=ANY\n    %s--set-priority=32767\n    %s--set-target=CONTINUE\n"+
		"    %s--add-rich-rule='rule priority=32767 nflog group=\"%d\" prefix=\"forward\"'\n"+
		"    firewall-cmd --reload\n"+
		"(deploy/firewall/firewalld/install --group %d does this for every zone that rejects). firewalld applies a policy to the interfaces and sources of the zone only: "+
		"packets from an interface in no zone reach the default zone's reject without it, so put every interface that forwards in a zone "+
		"(firewall-cmd --permanent --zone=%s --change-interface=IF), or count those with the exporter's --ebpf.enable.",
		pol, shellWord(zone), pol, pol, pol, pol, f.group, f.group, shellWord(zone))
}

var firewalldPolicyChain = regexp.MustCompile(`^filter_FWD_policy_(.+)_(pre|log|deny|allow|post)$`)

// firewalldLoggingPolicy names a policy whose forward chains log to the
// exporter's group ("" if none).
func (f fixer) firewalldLoggingPolicy(t *ruleset.Table) string {
	for _, c := range t.Chains {
		m := firewalldPolicyChain.FindStringSubmatch(c.Name)
		if m == nil {
			continue
		}
		for _, r := range c.Rules {
			for _, l := range r.Logs {
				if l.NFLOG && l.Group == f.group {
					return m[1]
				}
			}
		}
	}
	return ""
}

// iptables: an NFLOG rule with the drop's matches in front of it, or at the
// end of the chain for its policy.
func (f fixer) iptables(p droppoint.DropPoint) string {
	t := p.Chain.Table
	cmd := map[ruleset.Family]string{ruleset.FamilyIP: "iptables", ruleset.FamilyIP6: "ip6tables", ruleset.FamilyARP: "arptables", ruleset.FamilyBridge: "ebtables"}[t.Family]
	if cmd == "" {
		cmd = "iptables"
	}
	if t.Name != "filter" {
		cmd += " -t " + shellWord(ruleset.Printable(t.Name))
	}
	chain := shellWord(ruleset.Printable(p.Chain.Name))
	switch p.Kind {
	case droppoint.PolicyDrop:
		return fmt.Sprintf("%s -A %s %s\n(at the end of the chain it logs exactly the packets the policy drops)", cmd, chain, f.nflogTarget(""))
	case droppoint.MapDrop:
		return f.nft(p)
	}
	line, ok := f.iptablesLine(p.Rule)
	if !ok {
		return fmt.Sprintf("%s -I %s %d <the drop rule's matches: %s -S %s> %s", cmd, chain, p.Rule.Index+1, cmd, chain, f.nflogTarget(""))
	}
	m := iptablesMatches(line)
	if m != "" {
		m += " "
	}
	if j := strings.LastIndex(line, " -j "); j >= 0 && (p.Rule.RateLimit != nil || p.Rule.Stateful) {
		// A copy of a limit or stateful match in an NFLOG rule in front
		// would decide apart from the drop's (or use up its state): the
		// rule jumps to a chain that logs and drops instead.
		target := line[j+len(" -j "):]
		sub := fmt.Sprintf("nfdrop-%s-%d", p.Verdict, p.Rule.Handle)
		return fmt.Sprintf("%s -N %s\n%s -A %s %s\n%s -A %s -j %s\n%s -R %s %d %s-j %s\n(its limit or stateful match decides once, as before, and the new chain logs exactly the packets it %s)",
			cmd, sub, cmd, sub, f.nflogTarget(""), cmd, sub, target, cmd, chain, p.Rule.Index+1, m, sub, dropVerb(p.Verdict))
	}
	return fmt.Sprintf("%s -I %s %d %s%s", cmd, chain, p.Rule.Index+1, m, f.nflogTarget(""))
}

func dropVerb(v ruleset.VerdictKind) string {
	if v == ruleset.Reject {
		return "rejects"
	}
	return "drops"
}

var nftCounter = regexp.MustCompile(`counter packets \d+ bytes \d+`)

// nftLogInRule is the rule's text with a log statement in front of its
// verdict, for nft replace rule ("" if the verdict is not found).
func (f fixer) nftLogInRule(text string) string {
	words := strings.Fields(nftCounter.ReplaceAllString(text, "counter"))
	for i := len(words) - 1; i >= 0; i-- {
		if words[i] == "drop" || words[i] == "reject" {
			log := []string{"log", "group", fmt.Sprint(f.group)}
			if !slices.Contains(words[:i], "counter") {
				log = append(log, "counter")
			}
			return strings.Join(slices.Concat(words[:i], log, words[i:]), " ")
		}
	}
	return ""
}

// nft: a log rule with the drop's matches in front of it, at the end of the
// chain for its policy; a verdict map's drop elements jump to a chain that
// logs and drops.
func (f fixer) nft(p droppoint.DropPoint) string {
	t := p.Chain.Table
	where := t.Family.String() + " " + nftName(t.Name) + " " + nftName(p.Chain.Name)
	switch p.Kind {
	case droppoint.PolicyDrop:
		return fmt.Sprintf("nft add rule %s log group %d counter\n(at the end of the chain it logs exactly the packets the policy drops)", where, f.group)
	case droppoint.MapDrop:
		return fmt.Sprintf("nft add chain %s %s nfdrop_log_drop\nnft add rule %s %s nfdrop_log_drop log group %d counter drop\nthen map the keys of rule %d's verdict map to \"jump nfdrop_log_drop\" instead of \"drop\".",
			t.Family, nftName(t.Name), t.Family, nftName(t.Name), f.group, p.Rule.Handle)
	}
	match := ""
	if text, ok := f.nftText(p.Rule); ok {
		if p.Rule.RateLimit != nil || p.Rule.Stateful {
			// A log rule in front would log the packets the limit (or
			// stateful match) then lets go as well: log in the rule.
			if in := f.nftLogInRule(text); in != "" {
				return fmt.Sprintf("nft replace rule %s handle %d %s\n(the log statement after its limit or stateful match logs exactly the packets it %s)", where, p.Rule.Handle, in, dropVerb(p.Verdict))
			}
		}
		match = nftMatches(text)
	} else if !p.Rule.Unconditional() {
		return fmt.Sprintf("Add \"log group %d\" in front of the verdict of rule %d (nft -a list chain %s shows it), e.g. with nft replace rule %s handle %d <its matches> log group %d counter %s",
			f.group, p.Rule.Handle, where, where, p.Rule.Handle, f.group, p.Verdict)
	}
	stmt := strings.TrimSpace(fmt.Sprintf("%s log group %d counter", match, f.group))
	return fmt.Sprintf("nft insert rule %s position %d %s", where, p.Rule.Handle, stmt)
}

// unlimit is the fix for a rate-limited NFLOG rule.
func (f fixer) unlimit(r *ruleset.Rule) string {
	if r == nil {
		return "Remove the rate limit from the NFLOG rule."
	}
	if fwmanager.Owner(f.snap, r.Chain) == fwmanager.UFW {
		return "Remove \"-m limit ...\" from the NFLOG line in /etc/ufw/*.rules, then run: ufw reload (the recipe " + fmt.Sprintf(ufwRecipe, f.group) + " writes its NFLOG lines without a limit)."
	}
	if r.Xtables || iptablesOwned(r.Chain.Table) {
		return fmt.Sprintf("Remove the limit match (-m limit / -m hashlimit) from rule %d of chain %s (iptables -S %s shows it): the exporter's counts are exact only if the rule logs every packet.", r.Handle, ruleset.Printable(r.Chain.Name), ruleset.Printable(r.Chain.Name))
	}
	return fmt.Sprintf("Remove the limit statement from rule %d: nft replace rule %s %s %s handle %d <the rule without limit>.", r.Handle, r.Chain.Table.Family, nftName(r.Chain.Table.Name), nftName(r.Chain.Name), r.Handle)
}

// counter is the fix for an NFLOG rule without a counter.
func (f fixer) counter(r *ruleset.Rule) string {
	if fwmanager.Owner(f.snap, r.Chain) == fwmanager.Firewalld {
		return "firewalld writes its log rules without a counter and has no setting to add one; the exporter's check of its counts against the kernel's (nfdrop_log_rule_packets_total) stays unavailable for this rule. Nothing else is affected."
	}
	where := fmt.Sprintf("%s %s %s", r.Chain.Table.Family, nftName(r.Chain.Table.Name), nftName(r.Chain.Name))
	if text, ok := f.nftText(r); ok {
		return fmt.Sprintf("nft replace rule %s handle %d %s counter", where, r.Handle, text)
	}
	return fmt.Sprintf("Add \"counter\" to rule %d (nft -a list chain %s), e.g. log prefix \"denied\" group %d counter.", r.Handle, where, f.group)
}

// kernelLog is the fix for a kernel-log statement where NFLOG is meant.
func (f fixer) kernelLog(r *ruleset.Rule) string {
	switch fwmanager.Owner(f.snap, r.Chain) {
	case fwmanager.UFW:
		return "ufw logs to the kernel log only. " + fmt.Sprintf("Run "+ufwRecipe+", or add NFLOG lines next to its LOG lines in /etc/ufw/*.rules and run: ufw reload.", f.group)
	case fwmanager.Firewalld:
		return fmt.Sprintf("firewalld's log rules (LogDenied, rich rule \"log\") write to the kernel log; use the rich rule element nflog group=\"%d\" instead of log.", f.group)
	}
	if line, ok := f.iptablesLine(r); ok && r.Xtables {
		nflog := strings.Replace(line, "-j LOG", f.nflogTarget(""), 1)
		if i := strings.Index(nflog, " --log-"); i >= 0 {
			nflog = nflog[:i]
		}
		return "Log to NFLOG instead of the kernel log: replace\n    " + line + "\nwith\n    " + nflog
	}
	if r.Xtables {
		return fmt.Sprintf("Use -j NFLOG --nflog-group %d instead of -j LOG in rule %d of chain %s.", f.group, r.Handle, ruleset.Printable(r.Chain.Name))
	}
	return fmt.Sprintf("Give the log statement of rule %d a group: log group %d (nft replace rule %s %s %s handle %d ...).", r.Handle, f.group, r.Chain.Table.Family, nftName(r.Chain.Table.Name), nftName(r.Chain.Name), r.Handle)
}

var plainName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.-]*$`)

// nftName quotes a table or chain name as nft needs it on a shell line.
func nftName(s string) string {
	s = ruleset.Printable(s)
	if plainName.MatchString(s) {
		return s
	}
	return `'"` + strings.ReplaceAll(s, `'`, `'\''`) + `"'`
}

// shellWord quotes a word for a shell line when it needs it.
func shellWord(s string) string {
	if plainName.MatchString(s) {
		return s
	}
	return `'` + strings.ReplaceAll(s, `'`, `'\''`) + `'`
}
