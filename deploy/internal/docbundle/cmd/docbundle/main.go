// Command docbundle writes the documentation bundle of the release archive and the
// Debian package (package docbundle says what it holds). It runs from the repository's
// top directory, as `make docs` does:
//
//	go run ./deploy/internal/docbundle/cmd/docbundle -out DIR -revision REV [-exclude PREFIX]... DOC...
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/nfdrop/nfdrop_exporter/deploy/internal/docbundle"
)

// excludes collects repeated -exclude flags.
type excludes []string

func (e *excludes) String() string     { return strings.Join(*e, ",") }
func (e *excludes) Set(s string) error { *e = append(*e, s); return nil }

func main() {
	out := flag.String("out", "", "directory to write the bundle into (created)")
	revision := flag.String("revision", "", "commit or tag the links to what is not shipped point at")
	url := flag.String("url", docbundle.DefaultURL, "where the repository is published")
	var exclude excludes
	flag.Var(&exclude, "exclude", "repository path prefix never shipped (repeatable)")
	flag.Parse()
	if *out == "" || flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: docbundle -out DIR -revision REV [-exclude PREFIX]... DOC...")
		os.Exit(2)
	}
	b := &docbundle.Bundle{Repo: ".", URL: *url, Revision: *revision, Exclude: exclude}
	if err := b.Build(flag.Args()...); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for _, w := range b.Warnings {
		fmt.Fprintln(os.Stderr, "docbundle: warning:", w)
	}
	if err := b.Write(*out); err != nil {
		fmt.Fprintln(os.Stderr, "docbundle:", err)
		os.Exit(1)
	}
}
