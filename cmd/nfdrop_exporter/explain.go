package main

import (
	"fmt"
	"os"

	"github.com/alecthomas/kingpin/v2"

	"github.com/nfdrop/nfdrop_exporter/collector"
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
	cmd.Flag("ports", "Comma-separated service ports labelled by number, as --collector.ports.").Default(collector.DefaultPorts).StringVar(&f.ports)
	cmd.Flag("max-prefixes", "Distinct prefix label values before \"(other)\", as --collector.max-prefixes.").Default("32").IntVar(&f.maxPrefixes)
	cmd.Arg("file", "Log files or pcap captures (gzip is read directly); none or - reads standard input.").StringsVar(&f.files)
	return cmd
}

func runExplain(f *explainFlags, stdin, stdout, stderr *os.File) int {
	err := explain.Run(explain.Options{Format: f.format, Ports: f.ports, MaxPrefixes: f.maxPrefixes, Files: f.files}, stdin, stdout, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "explain:", err)
		return 1
	}
	return 0
}
