package main

import (
	"fmt"
	"os"

	"github.com/alecthomas/kingpin/v2"
)

// TEMPORARY until collector/explain lands (lead: replace with /work/notes/explain.go.pending).
type explainFlags struct{ files []string }

func addExplainCommand(app *kingpin.Application, f *explainFlags) *kingpin.CmdClause {
	cmd := app.Command("explain", "Classify drops offline.")
	cmd.Arg("file", "files").StringsVar(&f.files)
	return cmd
}

func runExplain(f *explainFlags, stdin, stdout, stderr *os.File) int {
	fmt.Fprintln(stderr, "explain: not built yet")
	return 1
}
