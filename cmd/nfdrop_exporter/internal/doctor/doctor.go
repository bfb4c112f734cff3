// Package doctor reads what a network namespace's firewall does with the
// packets it drops and says which drops no exporter sees, with the fix for
// the program that manages the firewall (ufw, firewalld, Docker, podman,
// kube-proxy, iptables-nft, nftables). Diagnose turns a ruleset snapshot and
// the namespace's facts into findings; WriteText and WriteJSON render them.
package doctor

import (
	"fmt"
	"slices"

	"github.com/nfdrop/nfdrop_exporter/collector/droppoint"
	"github.com/nfdrop/nfdrop_exporter/collector/fwmanager"
	"github.com/nfdrop/nfdrop_exporter/collector/nsfacts"
	"github.com/nfdrop/nfdrop_exporter/collector/ruleset"
)

// Severity of a finding. Only errors make doctor exit 1.
type Severity string

// Severities.
const (
	Error   Severity = "error"
	Warning Severity = "warning"
	Info    Severity = "info"
)

// Finding ids.
const (
	IDDropNotLogged    = "drop-not-logged"
	IDDropCannotTell   = "drop-cannot-tell"
	IDDropSampled      = "drop-log-sampled"
	IDLogRateLimited   = "log-rate-limited"
	IDLogKernel        = "log-to-kernel-log"
	IDLogUncounted     = "log-without-counter"
	IDLogGroupUnread   = "log-group-unread"
	IDGroupReadByOther = "log-group-read-by-other"
	IDGroupBusy        = "group-bound-by-other"
	IDGroupNoRule      = "group-without-log-rule"
	IDLegacy           = "iptables-legacy-rules"
	IDQueue            = "queue-verdict"
	IDTCPLoose         = "conntrack-tcp-loose"
	IDLogInvalid       = "conntrack-log-invalid"
	IDEBPF             = "ebpf-source"
)

// Finding is one thing doctor reports.
type Finding struct {
	ID       string   `json:"id"`
	Severity Severity `json:"severity"`
	Family   string   `json:"family"`
	Table    string   `json:"table"`
	Chain    string   `json:"chain"`
	// Packets are the packets the kernel counted for it (a drop's rule or
	// policy counter, a log rule's counter); nil where it keeps none.
	Packets *uint64 `json:"packets"`
	Fix     string  `json:"fix"`

	Message string  `json:"message"`
	Manager string  `json:"manager,omitempty"`
	Rule    *uint64 `json:"rule,omitempty"`  // the rule's handle
	Group   *uint16 `json:"group,omitempty"` // the NFLOG group it is about
}

// Report is doctor's answer.
type Report struct {
	Managers []fwmanager.Manager `json:"managers"`
	Findings []Finding           `json:"findings"`
	Groups   []uint16            `json:"groups"`
	Ruleset  RulesetInfo         `json:"ruleset"`
}

// RulesetInfo says what was read.
type RulesetInfo struct {
	Tables     int     `json:"tables"`
	Chains     int     `json:"chains"`
	Rules      int     `json:"rules"`
	DropPoints int     `json:"drop_points"`
	Generation uint32  `json:"generation"`
	ReadMillis float64 `json:"read_ms"`
}

// ExitCode is 1 when a finding is an error, else 0.
func (r Report) ExitCode() int {
	for _, f := range r.Findings {
		if f.Severity == Error {
			return 1
		}
	}
	return 0
}

// EBPF says whether the kernel can run the exporter's eBPF drop source.
type EBPF struct {
	Supported bool
	Reason    string // why not, when not
}

// Input is what Diagnose reads.
type Input struct {
	Snapshot *ruleset.Snapshot
	Facts    nsfacts.Facts
	// Groups are the NFLOG groups the exporter reads (--nflog.group).
	Groups []uint16
	EBPF   EBPF
	// Text gives rule texts for fixes; nil writes fixes without them.
	Text RuleText
	// Exporter is the exporter's process name, whose own bindings are not
	// another process's (default nfdrop_exporter).
	Exporter string
}

// Diagnose finds what the exporter cannot see in the snapshot.
func Diagnose(in Input) Report {
	if in.Exporter == "" {
		in.Exporter = "nfdrop_exporter"
	}
	if len(in.Groups) == 0 {
		in.Groups = []uint16{0}
	}
	s := in.Snapshot
	a := droppoint.Analyze(s, droppoint.Options{Groups: in.Groups})
	k := droppoint.Analyze(s, droppoint.Options{Groups: in.Groups, KernelLog: true})
	d := diagnosis{in: in, fix: fixer{snap: s, text: in.Text, group: in.Groups[0]}}
	d.rep.Managers = fwmanager.Detect(s)
	if d.rep.Managers == nil {
		d.rep.Managers = []fwmanager.Manager{}
	}
	d.rep.Groups = in.Groups
	d.rep.Ruleset = RulesetInfo{Tables: len(s.Tables), Chains: len(s.Chains()), Rules: s.RuleCount(),
		DropPoints: len(a.DropPoints), Generation: s.Generation, ReadMillis: float64(s.ReadTook.Microseconds()) / 1000}

	hidden := false
	for i, p := range a.DropPoints {
		switch p.Coverage {
		case droppoint.NotCovered, droppoint.CannotTell, droppoint.Sampled:
			d.drop(p)
			hidden = hidden || p.Coverage == droppoint.NotCovered
		}
		// A kernel-log statement that would cover the drop if it were
		// NFLOG is one where NFLOG is meant.
		if kp := k.DropPoints[i]; (p.Coverage == droppoint.NotCovered || p.Coverage == droppoint.CannotTell) &&
			(kp.Coverage == droppoint.Covered || kp.Coverage == droppoint.Sampled) && kp.By != nil {
			d.kernelLog(kp.By, p)
		}
	}
	d.logs(a)
	d.groups(a)
	d.facts()
	if hidden && in.EBPF.Supported {
		d.add(Finding{ID: IDEBPF, Severity: Info,
			Message: "Drops are hidden from NFLOG and this kernel can report every netfilter drop to the exporter's eBPF source (BTF with SKB_DROP_REASON_NETFILTER_DROP).",
			Fix:     "Run the exporter with --ebpf.enable: it counts every netfilter drop of the namespace, with or without a log rule."})
	}
	slices.SortStableFunc(d.rep.Findings, func(x, y Finding) int { return rank(x.Severity) - rank(y.Severity) })
	if d.rep.Findings == nil {
		d.rep.Findings = []Finding{}
	}
	return d.rep
}

func rank(s Severity) int {
	switch s {
	case Error:
		return 0
	case Warning:
		return 1
	}
	return 2
}

type diagnosis struct {
	in       Input
	fix      fixer
	rep      Report
	kernSeen map[*ruleset.Rule]bool
}

func (d *diagnosis) add(f Finding) { d.rep.Findings = append(d.rep.Findings, f) }

// where fills a finding's family, table, chain and manager.
func (d *diagnosis) where(f *Finding, c *ruleset.Chain, r *ruleset.Rule) {
	f.Family, f.Table, f.Chain = c.Table.Family.String(), ruleset.Printable(c.Table.Name), ruleset.Printable(c.Name)
	f.Manager = fwmanager.Owner(d.in.Snapshot, c)
	if r != nil {
		h := r.Handle
		f.Rule = &h
	}
}

func (d *diagnosis) drop(p droppoint.DropPoint) {
	f := Finding{ID: IDDropNotLogged, Severity: Error}
	d.where(&f, p.Chain, p.Rule)
	if p.Counted {
		n := p.Packets
		f.Packets = &n
	}
	what := dropWhat(p)
	switch p.Coverage {
	case droppoint.NotCovered:
		f.Message = what + " packets that no NFLOG rule to group " + groupList(d.in.Groups) + " sees first."
	case droppoint.CannotTell:
		f.ID, f.Severity = IDDropCannotTell, Warning
		f.Message = what + " packets; " + ruleRef(p.By) + " logs before it, but with another condition: whether it sees every dropped packet cannot be told from the rules."
	case droppoint.Sampled:
		f.ID, f.Severity = IDDropSampled, Warning
		f.Message = what + " packets; the NFLOG rule that sees them (" + ruleRef(p.By) + ") is rate-limited, so the exporter counts a sample."
	}
	if !p.Counted {
		f.Message += " The kernel keeps no counter for this drop."
	}
	f.Fix = d.fix.drop(p)
	if p.Coverage == droppoint.Sampled {
		f.Fix = d.fix.unlimit(p.By)
	}
	d.add(f)
}

func dropWhat(p droppoint.DropPoint) string {
	verb := "drops"
	if p.Verdict == ruleset.Reject {
		verb = "rejects"
	}
	switch p.Kind {
	case droppoint.PolicyDrop:
		return "The chain's policy (drop) " + verb
	case droppoint.MapDrop:
		return fmt.Sprintf("The verdict map of rule %d %s", p.Rule.Handle, verb)
	}
	return fmt.Sprintf("Rule %d %s", p.Rule.Handle, verb)
}

func ruleRef(r *ruleset.Rule) string {
	if r == nil {
		return "a log rule"
	}
	return fmt.Sprintf("rule %d of %s %s %s", r.Handle, r.Chain.Table.Family, ruleset.Printable(r.Chain.Table.Name), ruleset.Printable(r.Chain.Name))
}

func groupList(gs []uint16) string {
	s := ""
	for i, g := range gs {
		if i > 0 {
			s += ", "
		}
		s += fmt.Sprint(g)
	}
	return s
}

// kernelLog reports a kernel-log statement that would cover a drop.
func (d *diagnosis) kernelLog(r *ruleset.Rule, p droppoint.DropPoint) {
	if d.kernSeen == nil {
		d.kernSeen = map[*ruleset.Rule]bool{}
	}
	if d.kernSeen[r] {
		return
	}
	d.kernSeen[r] = true
	f := Finding{ID: IDLogKernel, Severity: Warning}
	d.where(&f, r.Chain, r)
	if r.Counter != nil {
		n := r.Counter.Packets
		f.Packets = &n
	}
	f.Message = fmt.Sprintf("Rule %d logs the packets that %s drops to the kernel log (LOG, or nft log without group), which no NFLOG reader sees.", r.Handle, pointRef(p))
	f.Fix = d.fix.kernelLog(r)
	d.add(f)
}

func pointRef(p droppoint.DropPoint) string {
	where := fmt.Sprintf("%s %s %s", p.Chain.Table.Family, ruleset.Printable(p.Chain.Table.Name), ruleset.Printable(p.Chain.Name))
	if p.Rule == nil {
		return "the policy of " + where
	}
	return fmt.Sprintf("rule %d of %s", p.Rule.Handle, where)
}

// logs reports log statements that the exporter cannot count exactly.
func (d *diagnosis) logs(a *droppoint.Analysis) {
	for _, l := range a.Logs {
		if !l.NFLOG {
			continue
		}
		g := l.Group
		read := slices.Contains(d.in.Groups, g)
		f := Finding{Group: &g}
		d.where(&f, l.Rule.Chain, l.Rule)
		if l.Counted {
			n := l.Packets
			f.Packets = &n
		}
		switch {
		case read && l.Sampled && !logsOwnDrops(l):
			f.ID, f.Severity = IDLogRateLimited, Warning
			f.Message = fmt.Sprintf("Rule %d logs to group %d behind a rate limit (%s): the exporter counts a sample of the packets, not all of them.", l.Rule.Handle, g, limitText(l.Rule))
			f.Fix = d.fix.unlimit(l.Rule)
			d.add(f)
		case read && !l.Counted:
			f.ID, f.Severity = IDLogUncounted, Warning
			f.Message = fmt.Sprintf("Rule %d logs to group %d without a counter: the exporter cannot check its counts against the kernel's.", l.Rule.Handle, g)
			f.Fix = d.fix.counter(l.Rule)
			if f.Manager == fwmanager.Firewalld {
				// firewalld has no setting that adds one: nothing to act on.
				f.Severity = Info
			}
			d.add(f)
		case !read:
			if b, ok := d.in.Facts.Bound(g); ok {
				f.ID, f.Severity = IDGroupReadByOther, Info
				f.Message = fmt.Sprintf("Rule %d logs to group %d, which %s reads, not the exporter.", l.Rule.Handle, g, procName(b))
				f.Fix = fmt.Sprintf("Nothing to do if %s is meant to read these packets; to count them, point the rule at group %d or run a second exporter with --nflog.group=%d.", procName(b), d.in.Groups[0], g)
			} else {
				f.ID, f.Severity = IDLogGroupUnread, Warning
				f.Message = fmt.Sprintf("Rule %d logs to group %d, which no process reads and the exporter is not told to read: the kernel discards these messages.", l.Rule.Handle, g)
				f.Fix = fmt.Sprintf("Run the exporter with --nflog.group=%d (repeat the flag for several groups), or point the rule at group %d.", g, d.in.Groups[0])
			}
			d.add(f)
		}
	}
}

// logsOwnDrops says that a log statement sees exactly the packets its own
// rule drops (no condition after it, a drop or reject verdict): a rate
// limit in front of it limits the drops as well, and the count is exact.
func logsOwnDrops(l droppoint.LogStatement) bool {
	return l.Rule.Verdict.Kind.Drops() && l.Rule.Map == nil && l.Before == len(l.Rule.Terms)
}

func procName(b nsfacts.Binding) string {
	if b.Process == "" {
		return fmt.Sprintf("netlink port %d (no process found)", b.PortID)
	}
	return fmt.Sprintf("%s (pid %d)", b.Process, b.PID)
}

// groups reports the exporter's groups that another process holds or that
// no rule logs to.
func (d *diagnosis) groups(a *droppoint.Analysis) {
	for _, g := range d.in.Groups {
		g := g
		if b, ok := d.in.Facts.Bound(g); ok && b.Process != d.in.Exporter {
			d.add(Finding{ID: IDGroupBusy, Severity: Error, Group: &g,
				Message: fmt.Sprintf("NFLOG group %d is bound by %s: the exporter cannot bind it (the kernel allows one reader per group).", g, procName(b)),
				Fix:     fmt.Sprintf("Stop %s or move it to another group, or give the exporter a group of its own (--nflog.group) and log to it.", procName(b))})
		}
		found := false
		for _, l := range a.Logs {
			if l.NFLOG && l.Group == g {
				found = true
				break
			}
		}
		if !found {
			d.add(Finding{ID: IDGroupNoRule, Severity: Warning, Group: &g,
				Message: fmt.Sprintf("No nf_tables rule logs to NFLOG group %d: the exporter would count nothing.", g),
				Fix:     "Add NFLOG rules in front of the drops (the fixes above), or name the group your log rules use with --nflog.group."})
		}
	}
	for _, c := range a.Snapshot.Chains() {
		for _, r := range c.Rules {
			if r.Verdict.Kind != ruleset.Queue {
				continue
			}
			f := Finding{ID: IDQueue, Severity: Info}
			d.where(&f, c, r)
			f.Message = fmt.Sprintf("Rule %d hands packets to the program reading NFQUEUE %d: the drops it decides are made in user space, where no log rule sees them.", r.Handle, r.Verdict.Queue)
			f.Fix = "Count them in that program, or run the exporter with --ebpf.enable, which sees drops by verdict."
			d.add(f)
		}
	}
}

// facts reports what /proc says.
func (d *diagnosis) facts() {
	f := d.in.Facts
	for _, fam := range []string{"ip", "ip6"} {
		names := f.Legacy[fam]
		if len(names) == 0 {
			continue
		}
		tool := map[string]string{"ip": "iptables-legacy", "ip6": "ip6tables-legacy"}[fam]
		d.add(Finding{ID: IDLegacy, Severity: Warning, Family: fam,
			Message: fmt.Sprintf("iptables-legacy tables exist (%v): their rules, and the drops in them, are invisible over nf_tables and to this check.", names),
			Fix:     fmt.Sprintf("List them with %s-save; move them to iptables-nft (update-alternatives --set iptables /usr/sbin/iptables-nft, then reload the firewall) so that they can be checked.", tool)})
	}
	if v := f.TCPLoose; v != nil {
		msg := fmt.Sprintf("net.netfilter.nf_conntrack_tcp_loose=%d: conntrack picks up TCP connections it did not see open, so a late ACK of a closed connection meets the rules as NEW, not INVALID.", *v)
		if *v == 0 {
			msg = "net.netfilter.nf_conntrack_tcp_loose=0: conntrack marks every segment of a connection it did not see open as INVALID (late ACK/ACK,PSH included)."
		}
		d.add(Finding{ID: IDTCPLoose, Severity: Info, Message: msg,
			Fix: "Nothing to fix; it explains where late teardown packets are dropped (the INVALID rule or the policy)."})
	}
	if v := f.LogInvalid; v != nil {
		if *v == 0 {
			d.add(Finding{ID: IDLogInvalid, Severity: Info,
				Message: "net.netfilter.nf_conntrack_log_invalid=0: conntrack does not say why it calls packets INVALID.",
				Fix:     "sysctl -w net.netfilter.nf_conntrack_log_invalid=6 (TCP; 255: every protocol) and net.netfilter.nf_log.2=nfnetlink_log (nf_log.10 for IPv6) in this namespace: the exporter then joins each drop to conntrack's reason (nfdrop_drop_reasons_total)."})
		} else {
			d.add(Finding{ID: IDLogInvalid, Severity: Info,
				Message: fmt.Sprintf("net.netfilter.nf_conntrack_log_invalid=%d: conntrack writes why it calls packets INVALID (to NFLOG group 0 when nf_log.2 is nfnetlink_log).", *v),
				Fix:     "Nothing to fix; the exporter reads these messages from group 0 (--conntrack.reasons)."})
		}
	}
}

func limitText(r *ruleset.Rule) string {
	if r.RateLimit == nil {
		return "a limit"
	}
	if r.RateLimit.Text == "" {
		return r.RateLimit.Kind
	}
	return r.RateLimit.Kind + " " + r.RateLimit.Text
}
