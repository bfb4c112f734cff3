package main

import (
	"fmt"
	"io"
	"os"
	"strconv"

	"github.com/alecthomas/kingpin/v2"
	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop_exporter/internal/explain"
	"github.com/nfdrop/nfdrop_exporter/collector/classify"
	"golang.org/x/sys/unix"
)

type explainFlags struct {
	format      string
	ports       string
	maxPrefixes int
	files       []string
}

func addExplainCommand(app *kingpin.Application, f *explainFlags) *kingpin.CmdClause {
	cmd := app.Command("explain", "Classify the drops already recorded in kernel LOG lines (syslog, journalctl -k / -o json, dmesg), ulogd2 LOGEMU and JSON files, and packet captures (tcpdump -i nflog:N -w; pcap or pcapng), offline, with the exporter's classifier; and say who sent them.")
	cmd.Flag("format", "Output format: table or json.").Default("table").EnumVar(&f.format, "table", "json")
	cmd.Flag("ports", "Comma-separated service ports labelled by number, as --collector.ports.").Default(classify.DefaultPorts).StringVar(&f.ports)
	cmd.Flag("max-prefixes", "Distinct prefix label values before \"(other)\", as --collector.max-prefixes.").Default(fmt.Sprint(classify.DefaultMaxPrefixes)).IntVar(&f.maxPrefixes)
	cmd.Arg("file", "Log files or captures (gzip is read directly); none or - reads standard input.").StringsVar(&f.files)
	return cmd
}

// stdinHint is what explain says when it would read a terminal: without it
// the command seems to hang.
const stdinHint = "explain: reading kernel LOG lines from the terminal: paste them and end with Ctrl-D, or name files (nfdrop_exporter explain /var/log/kern.log, journalctl -k -o json | nfdrop_exporter explain)."

// runExplain exits 2 on a bad flag, as the exporter does, and 1 when an
// input could not be read.
func runExplain(f *explainFlags, stdin, stdout, stderr *os.File) int {
	if err := f.validate(); err != nil {
		fmt.Fprintln(stderr, "explain:", err)
		return 2
	}
	if readsStdin(f.files) && isTerminal(stdin) {
		fmt.Fprintln(stderr, stdinHint)
	}
	opts := explain.Options{Format: f.format, Ports: f.ports, MaxPrefixes: f.maxPrefixes, Files: f.files,
		Width: terminalWidth(os.Getenv("COLUMNS"), stdout)}
	if err := explain.Run(opts, stdin, stdout); err != nil {
		fmt.Fprintln(stderr, "explain:", err)
		return 1
	}
	return 0
}

func readsStdin(files []string) bool {
	if len(files) == 0 {
		return true
	}
	for _, f := range files {
		if f == "-" {
			return true
		}
	}
	return false
}

// validate applies the exporter's checks to the flags explain shares with it.
func (f *explainFlags) validate() error {
	if _, err := classify.ParsePorts(f.ports); err != nil {
		return fmt.Errorf("--ports: %w", err)
	}
	return classify.CheckMaxPrefixes("--max-prefixes", f.maxPrefixes)
}

// fileDescriptor is an *os.File, or anything else with a descriptor.
type fileDescriptor interface{ Fd() uintptr }

// isTerminal reports whether r is a terminal (TCGETS succeeds only on one).
func isTerminal(r io.Reader) bool {
	f, ok := r.(fileDescriptor)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// terminalWidth is the column count the verdict wraps at: $COLUMNS when it
// is a number, else the terminal's width when w is one, else 80.
func terminalWidth(columns string, w io.Writer) int {
	if n, err := strconv.Atoi(columns); err == nil && n > 0 {
		return n
	}
	if f, ok := w.(fileDescriptor); ok {
		if ws, err := unix.IoctlGetWinsize(int(f.Fd()), unix.TIOCGWINSZ); err == nil && ws.Col > 0 {
			return int(ws.Col)
		}
	}
	return 80
}
