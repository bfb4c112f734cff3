package main

import (
	"fmt"
	"io"
	"time"

	"github.com/alecthomas/kingpin/v2"

	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop_exporter/internal/doctor"
	"github.com/nfdrop/nfdrop_exporter/collector/classify"
	"github.com/nfdrop/nfdrop_exporter/collector/nsfacts"
	"github.com/nfdrop/nfdrop_exporter/collector/ruleset"
)

type doctorFlags struct {
	groups  []string
	format  string
	timeout time.Duration
}

func addDoctorCommand(app *kingpin.Application, f *doctorFlags) *kingpin.CmdClause {
	cmd := app.Command("doctor", "Read this network namespace's firewall (nf_tables) and say which drops no exporter sees (drop rules and policies without an NFLOG rule in front, rate-limited or kernel-log rules, groups nobody reads), with the fix for ufw, firewalld, Docker, podman, iptables or nft. Exit 0: every drop is logged; 1: some are hidden; 2: the firewall could not be read.")
	cmd.Flag("nflog.group", "NFLOG group the exporter reads, as serve's --nflog.group; repeat for several.").Default("0").StringsVar(&f.groups)
	cmd.Flag("format", "Output format: text or json.").Default("text").EnumVar(&f.format, "text", "json")
	cmd.Flag("timeout", "Longest the ruleset may take to read.").Default(ruleset.DefaultTimeout.String()).DurationVar(&f.timeout)
	return cmd
}

// runDoctor exits 0 when no finding is an error, 1 when one is, and 2 when
// the flags are wrong or the ruleset cannot be read.
func runDoctor(f *doctorFlags, stdout, stderr io.Writer) int {
	groups, err := classify.ParseGroups("--nflog.group", f.groups)
	if err != nil {
		fmt.Fprintln(stderr, "doctor:", err)
		return 2
	}
	if f.timeout < 10*time.Millisecond || f.timeout > time.Minute {
		fmt.Fprintf(stderr, "doctor: --timeout=%s: want 10ms to 1m\n", f.timeout)
		return 2
	}
	snap, err := ruleset.Netlink{Timeout: f.timeout}.Read()
	if err != nil {
		// No CAP_NET_ADMIN, no nf_tables, a timeout, a ruleset that kept
		// changing: each error says what to do.
		fmt.Fprintln(stderr, "doctor:", err)
		return 2
	}
	facts, err := nsfacts.Read(nsfacts.Paths{})
	if err != nil {
		// The ruleset is what matters; the facts only add to it.
		fmt.Fprintf(stderr, "doctor: reading /proc (NFLOG bindings, iptables-legacy tables, conntrack settings): %v; reporting without them\n", err)
	}
	rep := doctor.Diagnose(doctor.Input{
		Snapshot: snap,
		Facts:    facts,
		Groups:   nflogGroups(groups),
		EBPF:     doctor.CheckEBPF(doctor.KernelBTF),
		Text:     &doctor.Commands{},
	})
	if f.format == "json" {
		err = doctor.WriteJSON(stdout, rep)
	} else {
		err = doctor.WriteText(stdout, rep)
	}
	if err != nil {
		fmt.Fprintln(stderr, "doctor:", err)
		return 2
	}
	return rep.ExitCode()
}
