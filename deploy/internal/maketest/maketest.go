// Package maketest runs the repository's Makefile targets for the tests under deploy/:
// the release archives, the container image and the Debian package are checked as a user
// builds them, with `make`.
package maketest

import (
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/nfdrop/nfdrop_exporter/deploy/internal/docbundle"
)

// E2E skips unless end-to-end tests are enabled (NFDROP_E2E=1) and the test runs as root;
// what is enabled but missing fails.
func E2E(t *testing.T, tools ...string) {
	t.Helper()
	if os.Getenv("NFDROP_E2E") != "1" {
		t.Skip("end-to-end build test: set NFDROP_E2E=1 and run as root")
	}
	if os.Geteuid() != 0 {
		t.Skip("end-to-end build test needs root")
	}
	for _, tool := range append([]string{"make", "git", "go"}, tools...) {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("NFDROP_E2E=1 but %s is missing: %v (.ci/deps installs it)", tool, err)
		}
	}
}

// Tools skips a test that needs these tools when one is missing, unless end-to-end tests
// are enabled (NFDROP_E2E=1): then a missing tool fails it. For tests that need no root.
func Tools(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("NFDROP_E2E") == "1" {
				t.Fatalf("NFDROP_E2E=1 but %s is missing: %v (.ci/deps installs it)", tool, err)
			}
			t.Skipf("needs %s: %v", tool, err)
		}
	}
}

// Root is the repository's top directory, where the Makefile is.
func Root(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
}

// Make runs `make ARGS` in the repository with env added to the environment, failing the
// test with make's output when it fails.
func Make(t *testing.T, env []string, args ...string) string {
	t.Helper()
	cmd := exec.Command("make", append([]string{"--no-print-directory", "-C", Root(t)}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("make %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// SourceDateEpoch is the build time the Makefile stamps: the last commit's.
func SourceDateEpoch(t *testing.T) int64 {
	t.Helper()
	out, err := exec.Command("git", "-C", Root(t), "log", "-1", "--format=%ct").Output()
	if err != nil {
		t.Fatalf("git log: %v", err)
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// Run runs a command, failing the test with its output when it fails.
func Run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// CheckDocs asserts that dir holds a self-contained copy of the repository's documents:
// every relative link of every Markdown file resolves inside dir, every link to the
// published repository names revision, and every file equals the repository's at the same
// path, Markdown files up to those rewritten links. It returns the files, relative to dir,
// but for those in ignore (files of other origin, checked apart).
func CheckDocs(t *testing.T, dir, revision string, ignore ...string) []string {
	t.Helper()
	root := Root(t)
	remote := regexp.MustCompile(`^` + regexp.QuoteMeta(docbundle.DefaultURL) + `/(?:blob|tree)/([^/]+)/(.*)$`)
	var files []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if !slices.Contains(ignore, filepath.ToSlash(rel)) {
			files = append(files, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, rel := range files {
		got, err := os.ReadFile(filepath.Join(dir, rel))
		if err != nil {
			t.Fatal(err)
		}
		src, err := os.ReadFile(filepath.Join(root, rel))
		if err != nil {
			t.Errorf("%s is not a file of the repository: %v", rel, err)
			continue
		}
		if !strings.HasSuffix(rel, ".md") {
			if !bytes.Equal(got, src) {
				t.Errorf("%s differs from the repository's", rel)
			}
			continue
		}
		// Both sides with every link as the repository path it names.
		canon := func(doc []byte, installed bool) []byte {
			return docbundle.RewriteLinks(doc, func(target string) string {
				file, frag, hasFrag := strings.Cut(target, "#")
				var p string
				switch m := remote.FindStringSubmatch(file); {
				case m != nil:
					if installed && m[1] != revision {
						t.Errorf("%s links to %s, not at revision %s", rel, target, revision)
					}
					p = m[2]
				case strings.Contains(target, "://"), strings.HasPrefix(target, "mailto:"), file == "":
					return target
				default:
					p = path.Clean(path.Join(path.Dir(rel), file))
					if _, err := os.Stat(filepath.Join(dir, filepath.FromSlash(p))); installed && err != nil {
						t.Errorf("%s links to %s, which is not in %s", rel, target, dir)
					}
				}
				if hasFrag {
					p += "#" + frag
				}
				return "/" + p
			})
		}
		if !bytes.Equal(canon(got, true), canon(src, false)) {
			t.Errorf("%s differs from the repository's in more than its links", rel)
		}
	}
	return files
}

// DebVersion is the Debian version nfpm writes for a VERSION: a semantic version's
// pre-release comes after "~" instead of "-" (it sorts before the release), build metadata
// keeps its "+" (it sorts after).
func DebVersion(v string) string {
	core, meta, hasMeta := strings.Cut(v, "+")
	core = strings.Replace(core, "-", "~", 1)
	if hasMeta {
		return core + "+" + meta
	}
	return core
}

// DefaultVersion is what `make` stamps without VERSION: deploy/release/version's output.
func DefaultVersion(t *testing.T) string {
	t.Helper()
	cmd := exec.Command(filepath.Join(Root(t), "deploy", "release", "version"))
	cmd.Dir = Root(t)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("deploy/release/version: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// Revision is the repository's HEAD commit, which the builds stamp.
func Revision(t *testing.T) string {
	t.Helper()
	return strings.TrimSpace(Run(t, "git", "-C", Root(t), "rev-parse", "HEAD"))
}

// mentionRE matches a repository path written in a comment or text, such as
// "collector/ctlog/README.md" or "deploy/firewall/", but not inside an absolute path.
var mentionRE = regexp.MustCompile(`(?:^|[^A-Za-z0-9_./-])((?:deploy|collector|dashboards|cmd)/[A-Za-z0-9_./-]*[A-Za-z0-9_/])`)

// CheckMentions asserts that every repository path the files mention exists under base,
// the directory the installed copies call the documentation.
func CheckMentions(t *testing.T, base string, files ...string) {
	t.Helper()
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range mentionRE.FindAllSubmatch(data, -1) {
			p := string(m[1])
			if _, err := os.Stat(filepath.Join(base, filepath.FromSlash(p))); err != nil {
				t.Errorf("%s mentions %s, which is not in %s", f, p, base)
			}
		}
	}
}
