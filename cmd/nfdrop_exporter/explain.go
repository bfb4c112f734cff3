package main

import (
	"fmt"
	"os"

	"github.com/alecthomas/kingpin/v2"

	"github.com/nfdrop/nfdrop_exporter/collector/classify"
	"github.com/nfdrop/nfdrop_exporter/collector/explain"
)

type explainFlags struct {
	format      string
	ports       string
	maxPrefixes int
	files       []string
}

func addExplainCommand(app *kingpin.Application, f *explainFlags) *kingpin.CmdClause {
	cmd := app.Command("explain", "Classify the drops already in kernel LOG lines (syslog, journalctl -k, dmesg) and packet captures (tcpdump -i nflog:N -w), offline, with the exporter's classifier.")
	cmd.Flag("format", "Output format: table or json.").Default("table").EnumVar(&f.format, "table", "json")
	cmd.Flag("ports", "Comma-separated service ports labelled by number, as --collector.ports.").Default(classify.DefaultPorts).StringVar(&f.ports)
	cmd.Flag("max-prefixes", "Distinct prefix label values before \"(other)\", as --collector.max-prefixes.").Default(fmt.Sprint(classify.DefaultMaxPrefixes)).IntVar(&f.maxPrefixes)
	cmd.Arg("file", "Log files or pcap captures (gzip is read directly); none or - reads standard input.").StringsVar(&f.files)
	return cmd
}

// runExplain exits 2 on a bad flag, as the exporter does, and 1 when an
// input could not be read.
func runExplain(f *explainFlags, stdin, stdout, stderr *os.File) int {
	if err := f.validate(); err != nil {
		fmt.Fprintln(stderr, "explain:", err)
		return 2
	}
	err := explain.Run(explain.Options{Format: f.format, Ports: f.ports, MaxPrefixes: f.maxPrefixes, Files: f.files}, stdin, stdout, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "explain:", err)
		return 1
	}
	return 0
}

// validate applies the exporter's checks to the flags explain shares with it.
func (f *explainFlags) validate() error {
	if _, err := classify.ParsePorts(f.ports); err != nil {
		return fmt.Errorf("--ports: %w", err)
	}
	return classify.CheckMaxPrefixes("--max-prefixes", f.maxPrefixes)
}
