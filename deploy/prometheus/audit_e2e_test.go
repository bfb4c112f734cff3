//go:build linux

package prometheus

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop-lab/e2e"
	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop-lab/e2e/e2elab"
	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop-lab/lab"
)

// TestAuditPrometheusE2E runs the shipped alerts on a real Prometheus that
// scrapes the exporter in the lab, with each ruleset: the
// NfdropLogRuleMissing expression is empty while the rule exists, turns true
// (and the alert pending) once the rule is flushed, and empty again once the
// ruleset is restored. NfdropAccountingMismatch stays empty after traffic.
func TestAuditPrometheusE2E(t *testing.T) {
	e2e.Require(t, "ip", "iptables-restore", "ip6tables-restore", "iptables", "ip6tables", "nft", "conntrack", "prometheus")
	promBin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Fatalf("NFDROP_E2E=1 but the prometheus server is missing (apt-get install -y prometheus): %v", err)
	}
	bin := e2e.Binary(t)
	root := e2e.Root()
	fwDir := filepath.Join(root, "deploy", "firewall")
	rulesFile := filepath.Join(root, "deploy", "prometheus", "rules.yml")
	alertsFile := filepath.Join(root, "deploy", "prometheus", "alerts.yml")
	missing := alertExpr(t, alertsFile, "NfdropLogRuleMissing")
	mismatch := alertExpr(t, alertsFile, "NfdropAccountingMismatch")
	const pending = `ALERTS{alertname="NfdropLogRuleMissing", alertstate="pending", group="0"}`

	for i, rs := range []lab.Ruleset{lab.Iptables, lab.Nftables} {
		t.Run(string(rs), func(t *testing.T) {
			l := e2elab.NewLab(t, fmt.Sprintf("nfaup%d-%d", os.Getpid()%100000, i), rs, fwDir)
			var expLog lab.SyncBuffer
			// The default cache (max-age 5s): the alert sees what operators get.
			exp, err := l.Start(l.Server, &expLog, &expLog, bin, "--nflog.group=0", "--web.listen-address=127.0.0.1:9786")
			if err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			go func() { exited <- exp.Wait() }()
			p := &promServer{name: string(rs), port: 9090}
			p.start(t, l, promBin, rulesFile, alertsFile)
			defer func() {
				if t.Failed() {
					t.Logf("exporter output:\n%s\nprometheus output:\n%s", expLog.String(), p.log.String())
				}
			}()
			p.waitFor(t, `nfdrop_log_rules{job="nfdrop", group="0"} > 0 and on(job, instance) up == 1`, 30*time.Second, exited)
			if r := p.query(t, missing); len(r) != 0 {
				t.Fatalf("rule present: NfdropLogRuleMissing expression returns %s, want nothing", fmtResult(r))
			}

			// Traffic the log rule counts: the accounting balances.
			ctx := context.Background()
			var sent float64
			for _, v6 := range []bool{false, true} {
				inv, val := e2elab.AuditSet(v6)
				for _, sc := range []lab.Scenario{inv, val} {
					if err := l.RunScenario(ctx, sc, 0, 0, nil); err != nil {
						t.Fatal(err)
					}
					sent += float64(sc.Packets())
				}
			}
			p.waitFor(t, fmt.Sprintf(`sum(nfdrop_log_rule_packets_total{group="0"}) == %v and sum(nfdrop_packets_total{group="0"}) == %v`, sent, sent), 30*time.Second, exited)
			if r := p.query(t, mismatch); len(r) != 0 {
				t.Errorf("balanced accounting: NfdropAccountingMismatch expression returns %s, want nothing", fmtResult(r))
			}

			flushed := time.Now()
			e2elab.FlushLogRule(t, l, rs)
			p.waitFor(t, missing, 30*time.Second, exited)
			p.waitFor(t, pending, 30*time.Second, exited)
			r := p.query(t, missing)
			if len(r) != 1 || r[0].Metric["group"] != "0" || r[0].Metric["job"] != "nfdrop" {
				t.Errorf("rule flushed: NfdropLogRuleMissing expression returns %s, want one series for group 0", fmtResult(r))
			}
			t.Logf("%s: rule flushed, missing-rule expression true after %v: %s", rs, time.Since(flushed).Round(100*time.Millisecond), fmtResult(r))

			restored := time.Now()
			if err := l.Apply(rs, fwDir); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(30 * time.Second)
			for {
				r, a := p.query(t, missing), p.query(t, pending)
				if len(r) == 0 && len(a) == 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("ruleset restored 30s ago: expression %s, alert %s; want both empty", fmtResult(r), fmtResult(a))
				}
				time.Sleep(250 * time.Millisecond)
			}
			t.Logf("%s: ruleset restored, missing-rule expression and pending alert gone after %v", rs, time.Since(restored).Round(100*time.Millisecond))
		})
	}
}
