package release_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nfdrop/nfdrop_exporter/deploy/internal/maketest"
)

// gitRepo is a scratch repository whose commits have chosen dates.
type gitRepo struct {
	t    *testing.T
	dir  string
	date time.Time
}

func (g *gitRepo) git(args ...string) string {
	g.t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = g.dir
	d := g.date.Format(time.RFC3339)
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_DATE="+d, "GIT_COMMITTER_DATE="+d, "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1",
		"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.org", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.org")
	out, err := cmd.CombinedOutput()
	if err != nil {
		g.t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// commit commits a change to file.txt at the repository's clock, then advances it.
func (g *gitRepo) commit(step time.Duration) string {
	g.t.Helper()
	g.date = g.date.Add(step)
	f := filepath.Join(g.dir, "file.txt")
	old, _ := os.ReadFile(f)
	if err := os.WriteFile(f, append(old, '.'), 0o644); err != nil {
		g.t.Fatal(err)
	}
	g.git("add", "file.txt")
	g.git("commit", "-q", "-m", "change")
	return "g" + g.git("rev-parse", "--short=12", "HEAD")
}

// version runs deploy/release/version in the scratch repository.
func (g *gitRepo) version(script string) string {
	g.t.Helper()
	cmd := exec.Command(script)
	cmd.Dir = g.dir
	out, err := cmd.Output()
	if err != nil {
		g.t.Fatalf("%s: %v", script, err)
	}
	return strings.TrimSpace(string(out))
}

func dpkgOK(args ...string) bool {
	return exec.Command("dpkg", args...).Run() == nil
}

// TestDefaultVersion runs the version script on a history with snapshots, a dirty tree,
// release tags and a pre-release tag: each version is the exact expected string, valid
// for dpkg, and every state sorts after the one before it, as dpkg compares them.
func TestDefaultVersion(t *testing.T) {
	maketest.Tools(t, "git", "dpkg")
	script := filepath.Join(maketest.Root(t), "deploy", "release", "version")
	g := &gitRepo{t: t, dir: t.TempDir(), date: time.Date(2026, 12, 7, 20, 54, 44, 0, time.UTC)}

	if v := g.version(script); v != "0.0.0-dev" {
		t.Errorf("no commit yet: %q, want 0.0.0-dev", v)
	}
	g.git("init", "-q", "-b", "main")

	// Each state records the script's output as the history is built.
	type state struct{ what, want, got string }
	var states []state
	at := func(what, want string) { states = append(states, state{what, want, g.version(script)}) }
	edit := func() {
		if err := os.WriteFile(filepath.Join(g.dir, "file.txt"), []byte("edited"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	h := g.commit(0)
	at("first commit", "0.0.0-git20261207205444."+h)
	h = g.commit(time.Second)
	at("a second later", "0.0.0-git20261207205445."+h)
	h = g.commit(9 * time.Hour)
	at("the next day (UTC)", "0.0.0-git20261208055445."+h)
	edit()
	at("uncommitted edit", "0.0.0-git20261208055445."+h+".dirty")
	g.git("checkout", "-q", "file.txt")
	g.git("tag", "v0.1.0")
	at("tag v0.1.0", "0.1.0")
	h = g.commit(time.Minute)
	at("1 commit after v0.1.0", "0.1.0+git1."+h)
	g.git("tag", "v0.1.1foo") // not a version: ignored
	h = g.commit(time.Minute)
	at("2 commits after v0.1.0", "0.1.0+git2."+h)
	edit()
	at("uncommitted edit", "0.1.0+git2."+h+".dirty")
	g.git("checkout", "-q", "file.txt")
	h = g.commit(time.Minute)
	at("3 commits after v0.1.0", "0.1.0+git3."+h)
	g.git("tag", "v0.2.0-rc.1")
	at("tag v0.2.0-rc.1", "0.2.0-rc.1")
	h = g.commit(time.Minute)
	at("1 commit after v0.2.0-rc.1", "0.2.0-rc.1+git1."+h)
	g.git("tag", "v0.2.0")
	at("tag v0.2.0", "0.2.0")
	edit()
	at("uncommitted edit on the tag", "0.2.0+dirty")

	var prev string
	for _, s := range states {
		if s.got != s.want {
			t.Errorf("%s: version %q, want %q", s.what, s.got, s.want)
		}
		deb := maketest.DebVersion(s.got)
		if !dpkgOK("--validate-version", deb) {
			t.Errorf("%s: dpkg rejects %q", s.what, deb)
		}
		verdict := "valid"
		if prev != "" {
			if dpkgOK("--compare-versions", prev, "lt", deb) {
				verdict = "valid, > previous"
			} else {
				verdict = "NOT > previous"
				t.Errorf("%s: dpkg does not sort %q after %q", s.what, deb, prev)
			}
		}
		t.Logf("%-27s %-40s deb %-40s %s", s.what, s.got, deb, verdict)
		prev = deb
	}
	// The old default, git describe --always, gave a bare hash before the first tag:
	// dpkg refuses one that starts with a letter (this commit's was dcaf25e).
	if dpkgOK("--validate-version", "dcaf25e") {
		t.Error("dpkg accepts the hash dcaf25e as a version")
	}
}

// TestReleaseNeedsVersion: `make release` without VERSION refuses, naming the fix, before
// building anything.
func TestReleaseNeedsVersion(t *testing.T) {
	maketest.Tools(t, "make", "git")
	dir := t.TempDir()
	cmd := exec.Command("make", "--no-print-directory", "-C", maketest.Root(t), "release", "RELEASE_DIR="+dir)
	// No VERSION inherited from the caller's environment either.
	cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "VERSION=") })
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 {
		t.Fatalf("make release without VERSION: %v, want exit status 2\n%s", err, out)
	}
	if !strings.Contains(string(out), "make release needs VERSION=x.y.z") {
		t.Errorf("make release without VERSION printed:\n%s", out)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("make release without VERSION wrote %d entries into RELEASE_DIR", len(entries))
	}
}
