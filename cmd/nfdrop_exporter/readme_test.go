package main

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/alecthomas/kingpin/v2"
	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop-lab/e2e/families"
)

// repoRoot is the module root, seen from this package's directory.
const repoRoot = "../.."

// tableBetween returns the part of a document between two marker comments.
func tableBetween(t *testing.T, doc, begin, end string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, doc))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	i, j := strings.Index(s, begin), strings.Index(s, end)
	if i < 0 || j < i {
		t.Fatalf("%s has no %s / %s markers", doc, begin, end)
	}
	return s[i:j]
}

// metricsDoc holds the metric reference; flagsDoc the serve command's flags.
const (
	metricsDoc = "collector/README.md"
	flagsDoc   = "deploy/README.md"
)

// readmeMetrics returns the metric names listed in the metrics table.
func readmeMetrics(t *testing.T) map[string]bool {
	t.Helper()
	table := tableBetween(t, metricsDoc, "<!-- METRICS:BEGIN", "<!-- METRICS:END -->")
	names := map[string]bool{}
	for _, m := range regexp.MustCompile("(?m)^\\| `(nfdrop_[a-z_]+)`").FindAllStringSubmatch(table, -1) {
		names[m[1]] = true
	}
	return names
}

// exposedMetrics returns the metric families of the golden exposition plus the
// ones it filters out or that need a live kernel (extra).
func exposedMetrics(t *testing.T, extra ...string) map[string]bool {
	t.Helper()
	b, err := os.ReadFile("testdata/e2e-output.txt")
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^# TYPE (nfdrop_[a-z_]+) `).FindAllStringSubmatch(string(b), -1) {
		names[m[1]] = true
	}
	for _, e := range extra {
		names[e] = true
	}
	return names
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TestReadmeMetricsMatchExporter keeps the metric reference from drifting.
func TestReadmeMetricsMatchExporter(t *testing.T) {
	doc := readmeMetrics(t)
	code := exposedMetrics(t, append(keys(families.Of(t, families.AllParts)), "nfdrop_exporter_build_info")...)
	for _, n := range keys(code) {
		if !doc[n] {
			t.Errorf("%s is exposed but missing from the metrics table of %s", n, metricsDoc)
		}
	}
	for _, n := range keys(doc) {
		if !code[n] {
			t.Errorf("the metrics table of %s lists %s, which the exporter does not expose", metricsDoc, n)
		}
	}
}

// builtinFlags are kingpin's own, documented by --help itself.
var builtinFlags = map[string]bool{"help": true, "help-long": true, "help-man": true, "version": true}

// serveFlags returns name → default of every visible flag the default (serve)
// command accepts: the application's flags plus the command's own, so the
// check holds whether the serving flags live on the app or on serve.
func serveFlags(t *testing.T) map[string]string {
	t.Helper()
	var f flags
	app, _, _ := newApp(&f, "")
	model := app.Model()
	groups := [][]*kingpin.FlagModel{model.Flags}
	found := false
	for _, c := range model.Commands {
		if c.Default {
			groups = append(groups, c.Flags)
			found = true
		}
	}
	if !found {
		t.Fatal("the exporter has no default command")
	}
	out := map[string]string{}
	for _, g := range groups {
		for _, fl := range g {
			if fl.Hidden || builtinFlags[fl.Name] {
				continue
			}
			def := strings.Join(fl.Default, ",")
			if def == "" && fl.IsBoolFlag() {
				def = "false"
			}
			out[fl.Name] = def
		}
	}
	return out
}

// docFlags returns name → default of the flags table; a bool flag may be
// written --[no-]name.
func docFlags(t *testing.T) map[string]string {
	t.Helper()
	table := tableBetween(t, flagsDoc, "<!-- FLAGS:BEGIN", "<!-- FLAGS:END -->")
	re := regexp.MustCompile("(?m)^\\| `--(?:\\[no-\\])?([a-z0-9.-]+)` \\| (?:`([^`]*)`)? *\\|")
	out := map[string]string{}
	for _, m := range re.FindAllStringSubmatch(table, -1) {
		if _, dup := out[m[1]]; dup {
			t.Errorf("%s lists --%s twice", flagsDoc, m[1])
		}
		out[m[1]] = m[2]
	}
	if len(out) == 0 {
		t.Fatalf("no flag rows between the FLAGS markers of %s", flagsDoc)
	}
	return out
}

// TestReadmeFlagsMatchHelp keeps the flags table equal to what --help shows:
// the same flags, with the same defaults.
func TestReadmeFlagsMatchHelp(t *testing.T) {
	code, doc := serveFlags(t), docFlags(t)
	for _, n := range keys(code) {
		d, ok := doc[n]
		switch {
		case !ok:
			t.Errorf("--%s (default %q) is missing from the flags table of %s", n, code[n], flagsDoc)
		case d != code[n]:
			t.Errorf("%s gives --%s the default %q; the exporter's is %q", flagsDoc, n, d, code[n])
		}
	}
	for _, n := range keys(doc) {
		if _, ok := code[n]; !ok {
			t.Errorf("%s lists --%s, which the exporter's serve command does not have", flagsDoc, n)
		}
	}
}

// TestReadmeSize keeps the top-level README a front page: depth belongs in the
// READMEs next to what they document.
func TestReadmeSize(t *testing.T) {
	const limit = 20 * 1000
	fi, err := os.Stat(filepath.Join(repoRoot, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() > limit {
		t.Errorf("README.md is %d bytes, more than %d: move the depth to the README next to what it documents", fi.Size(), limit)
	}
}

// repoTextFiles calls fn for every text file of the repository, skipping
// version control, build output and test data (captures, recorded logs).
func repoTextFiles(t *testing.T, fn func(rel string, b []byte)) {
	t.Helper()
	err := filepath.WalkDir(repoRoot, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case ".git", ".build", "testdata", "node_modules":
				return filepath.SkipDir
			}
			return nil
		}
		if d.Name() == ".git" || !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if bytes.IndexByte(b[:min(len(b), 8000)], 0) >= 0 {
			return nil // binary (a profile, a built binary)
		}
		rel, _ := filepath.Rel(repoRoot, p)
		fn(filepath.ToSlash(rel), b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestNoOutsideReferences: the project explains itself in its own words, so no
// file may point readers at a document that is not in the repository. The
// patterns are assembled so that this file does not match itself.
func TestNoOutsideReferences(t *testing.T) {
	section := "\u00a7"
	forbidden := []string{
		"design" + ".md",
		"design " + section,
		"reference " + section,
		".." + "/shared",
		"shared" + "/reference",
		"problem " + "statement",
	}
	issue := regexp.MustCompile(`(?i)\b` + "issue" + ` #?[0-9]+\b`)
	files := 0
	repoTextFiles(t, func(rel string, b []byte) {
		files++
		for i, line := range strings.Split(string(b), "\n") {
			low := strings.ToLower(line)
			for _, f := range forbidden {
				if strings.Contains(low, f) {
					t.Errorf("%s:%d refers to %q, which is not in the repository: say it in the project's own words", rel, i+1, f)
				}
			}
			if m := issue.FindString(line); m != "" {
				t.Errorf("%s:%d cites %q: say what it is about instead", rel, i+1, m)
			}
		}
	})
	if files < 50 {
		t.Fatalf("walked only %d files from %s: is the module root right?", files, repoRoot)
	}
}

// TestDocLinksResolve: every relative link in the Markdown files points to a
// file that exists, and a #fragment to a heading of that file.
func TestDocLinksResolve(t *testing.T) {
	link := regexp.MustCompile(`\]\(([^)\s]+)\)`)
	docs := map[string][]byte{}
	repoTextFiles(t, func(rel string, b []byte) {
		if strings.HasSuffix(rel, ".md") {
			docs[rel] = b
		}
	})
	for _, rel := range keys(docs) {
		for _, m := range link.FindAllStringSubmatch(string(docs[rel]), -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			file, frag, _ := strings.Cut(target, "#")
			path := rel
			if file != "" {
				path = filepath.ToSlash(filepath.Join(filepath.Dir(rel), file))
			}
			if _, err := os.Stat(filepath.Join(repoRoot, path)); err != nil {
				t.Errorf("%s links to %s, which does not exist", rel, target)
				continue
			}
			if frag == "" {
				continue
			}
			b, ok := docs[path]
			if !ok {
				t.Errorf("%s links to #%s in %s, which is not a Markdown file", rel, frag, path)
				continue
			}
			if !headingAnchors(b)[frag] {
				t.Errorf("%s links to %s, but %s has no heading with anchor #%s", rel, target, path, frag)
			}
		}
	}
}

// headingAnchors returns the anchors GitHub derives from a document's
// headings: lower case, punctuation removed, spaces turned into hyphens.
func headingAnchors(b []byte) map[string]bool {
	out := map[string]bool{}
	inCode := false
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "```") {
			inCode = !inCode
			continue
		}
		if inCode || !strings.HasPrefix(line, "#") {
			continue
		}
		h := strings.TrimSpace(strings.TrimLeft(line, "#"))
		var a strings.Builder
		for _, r := range strings.ToLower(h) {
			switch {
			case r == ' ':
				a.WriteRune('-')
			case r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r > 127 && r != '\u2014' && r != '\u2013' && r != '\u00a7':
				a.WriteRune(r)
			}
		}
		out[a.String()] = true
	}
	return out
}
