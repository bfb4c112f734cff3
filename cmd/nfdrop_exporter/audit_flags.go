package main

import (
	"fmt"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/nfdrop/nfdrop_exporter/collector/ctstats"
	"github.com/nfdrop/nfdrop_exporter/collector/ruleaudit"
)

// auditFlags are the flags of the parts that read the kernel's own view at
// scrape time: the log rules feeding the groups, and conntrack's statistics.
type auditFlags struct {
	ruleAudit   bool
	ruleMaxAge  time.Duration
	ruleTimeout time.Duration
	ctStats     bool
}

func addAuditFlags(app *kingpin.CmdClause) *auditFlags {
	f := &auditFlags{}
	app.Flag("collector.rule-audit", "Read the nf_tables rules that log to the bound groups at scrape time (nfdrop_log_rules, nfdrop_log_rule_packets_total). iptables-legacy rules are invisible to nf_tables: switch it off there.").Default("true").BoolVar(&f.ruleAudit)
	app.Flag("collector.rule-audit.max-age", "How long one read of the ruleset serves later scrapes; 0 reads at every scrape (scrapes that arrive during a read share it). nfdrop_log_rule_audit_age_seconds shows the age a scrape serves.").Default(ruleaudit.DefaultMaxAge.String()).DurationVar(&f.ruleMaxAge)
	app.Flag("collector.rule-audit.timeout", "Longest one read of the ruleset may take; a larger ruleset fails the read (nfdrop_log_rule_audit_success 0).").Default(ruleaudit.DefaultTimeout.String()).DurationVar(&f.ruleTimeout)
	app.Flag("collector.conntrack-stats", "Read conntrack's statistics of the exporter's network namespace at scrape time (nfdrop_conntrack_stat_*_total, nfdrop_conntrack_entries).").Default("true").BoolVar(&f.ctStats)
	return f
}

// validate rejects values that would make every read fail or hammer the kernel.
func (f *auditFlags) validate() error {
	switch {
	case f.ruleMaxAge < 0 || f.ruleMaxAge > time.Hour:
		return fmt.Errorf("--collector.rule-audit.max-age=%s: want 0 to 1h", f.ruleMaxAge)
	case f.ruleTimeout < 10*time.Millisecond || f.ruleTimeout > time.Minute:
		return fmt.Errorf("--collector.rule-audit.timeout=%s: want 10ms to 1m", f.ruleTimeout)
	}
	return nil
}

// ruleAuditConfig returns the rule audit's configuration, nil when it is off. A
// replayed capture never passed this kernel's rules, so replay reads none.
func (f *auditFlags) ruleAuditConfig(replay bool) *ruleaudit.Config {
	if replay || !f.ruleAudit {
		return nil
	}
	return &ruleaudit.Config{Reader: ruleaudit.Netlink{Timeout: f.ruleTimeout}, MaxAge: f.ruleMaxAge}
}

// conntrackStats returns the reader of conntrack's statistics, nil when off
// or replaying.
func (f *auditFlags) conntrackStats(replay bool) ctstats.Reader {
	if replay || !f.ctStats {
		return nil
	}
	return ctstats.Netlink{}
}
