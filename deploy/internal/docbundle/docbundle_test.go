package docbundle

import (
	"bytes"
	"maps"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

func TestRewriteLinks(t *testing.T) {
	up := func(s string) string { return strings.ToUpper(s) }
	tests := []struct{ name, in, want string }{
		{"no link", "plain [text] (not a link)", "plain [text] (not a link)"},
		{"one link", "see [a](b.md).", "see [a](B.MD)."},
		{"two links and an image", "[a](x) ![i](y.png) [b](z#f)", "[a](X) ![i](Y.PNG) [b](Z#F)"},
		{"space ends no target", "[a](b c)", "[a](b c)"},
		{"empty target", "[a]()", "[a]()"},
		{"code span", "`[a](b)`", "`[a](B)`"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := string(RewriteLinks([]byte(tc.in), up)); got != tc.want {
				t.Errorf("RewriteLinks(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

// writeTree creates files (path → content) under a new directory.
func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for p, c := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestBundleExact: every kind of link in a small repository, and the exact bundle.
func TestBundleExact(t *testing.T) {
	const u = "https://example.org/r"
	repo := writeTree(t, map[string]string{
		"README.md": "[deploy](deploy/README.md#install) [lab](lab/README.md) [code](pkg) " +
			"[doc.go](pkg/doc.go) [web](https://x.org/a.md) [self](#top) [gone](nope.md) [lic](LICENSE)\n",
		"LICENSE":                 "license\n",
		"deploy/README.md":        "[rules](firewall) [cfg](web.yml) [back](../README.md) [pkg](../pkg/README.md)\n",
		"deploy/web.yml":          "cfg\n",
		"deploy/firewall/a.nft":   "a\n",
		"deploy/firewall/b.rules": "b\n",
		"deploy/unlinked.yml":     "not shipped\n",
		"pkg/doc.go":              "package pkg\n",
		"pkg/README.md":           "[impl](impl.go)\n",
		"pkg/impl.go":             "package pkg\n",
		"lab/README.md":           "lab\n",
	})
	b := &Bundle{Repo: repo, URL: u, Revision: "abc123", Exclude: []string{"lab/"}}
	if err := b.Build("README.md"); err != nil {
		t.Fatal(err)
	}
	wantDocs := map[string]string{
		"README.md": "[deploy](deploy/README.md#install) [lab](" + u + "/blob/abc123/lab/README.md) [code](" + u + "/tree/abc123/pkg) " +
			"[doc.go](" + u + "/blob/abc123/pkg/doc.go) [web](https://x.org/a.md) [self](#top) [gone](" + u + "/blob/abc123/nope.md) [lic](LICENSE)\n",
		"deploy/README.md": "[rules](firewall) [cfg](web.yml) [back](../README.md) [pkg](../pkg/README.md)\n",
		"pkg/README.md":    "[impl](" + u + "/blob/abc123/pkg/impl.go)\n",
	}
	got := map[string]string{}
	for k, v := range b.Docs {
		got[k] = string(v)
	}
	if !maps.Equal(got, wantDocs) {
		t.Errorf("docs:\n%q\nwant\n%q", got, wantDocs)
	}
	wantFiles := []string{"LICENSE", "deploy/firewall/a.nft", "deploy/firewall/b.rules", "deploy/web.yml"}
	if !slices.Equal(b.Files, wantFiles) {
		t.Errorf("files %q, want %q", b.Files, wantFiles)
	}
	if want := []string{"README.md links to nope.md, which does not exist"}; !slices.Equal(b.Warnings, want) {
		t.Errorf("warnings %q, want %q", b.Warnings, want)
	}

	out := filepath.Join(t.TempDir(), "out")
	if err := b.Write(out); err != nil {
		t.Fatal(err)
	}
	var written []string
	err := filepath.WalkDir(out, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(out, p)
		written = append(written, filepath.ToSlash(rel)+" "+info.Mode().String())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	wantWritten := []string{
		". drwxr-xr-x", "LICENSE -rw-r--r--", "README.md -rw-r--r--", "deploy drwxr-xr-x",
		"deploy/README.md -rw-r--r--", "deploy/firewall drwxr-xr-x", "deploy/firewall/a.nft -rw-r--r--",
		"deploy/firewall/b.rules -rw-r--r--", "deploy/web.yml -rw-r--r--", "pkg drwxr-xr-x", "pkg/README.md -rw-r--r--",
	}
	if !slices.Equal(written, wantWritten) {
		t.Errorf("written %q, want %q", written, wantWritten)
	}
	if data, _ := os.ReadFile(filepath.Join(out, "deploy/web.yml")); string(data) != "cfg\n" {
		t.Errorf("deploy/web.yml = %q, want the source's", data)
	}
}

func TestBundleErrors(t *testing.T) {
	repo := writeTree(t, map[string]string{"README.md": "[up](../outside.md)\n", "ok.md": "fine\n"})
	b := &Bundle{Repo: repo, Revision: "r"}
	if err := b.Build("README.md"); err == nil || !strings.Contains(err.Error(), "outside the repository") {
		t.Errorf("a link out of the repository: error %v, want one naming it", err)
	}
	if err := (&Bundle{Repo: repo}).Build("ok.md"); err == nil || !strings.Contains(err.Error(), "-revision") {
		t.Errorf("no revision: error %v, want one naming -revision", err)
	}
	if err := (&Bundle{Repo: repo, Revision: "r"}).Build("missing.md"); err == nil {
		t.Error("a missing entry document: no error")
	}
}

// TestBundleRepository bundles the repository's own README.md as `make docs` does, and
// checks what the archive and the package rely on: every relative link of every shipped
// document resolves inside the bundle, no Go code is shipped, and every link to the
// published repository names this revision.
func TestBundleRepository(t *testing.T) {
	b := &Bundle{Repo: "../../..", Revision: "0123abc", Exclude: []string{"cmd/nfdrop-lab/"}}
	if err := b.Build("README.md"); err != nil {
		t.Fatal(err)
	}
	for _, w := range b.Warnings {
		t.Logf("warning: %s", w)
	}
	shipped := map[string]bool{}
	for p := range b.Docs {
		shipped[p] = true
	}
	for _, p := range b.Files {
		shipped[p] = true
		if strings.HasSuffix(p, ".go") {
			t.Errorf("ships Go code %s", p)
		}
	}
	for _, must := range []string{"README.md", "deploy/README.md", "collector/README.md", "dashboards/README.md", "LICENSE", "deploy/firewall/iptables.rules"} {
		if !shipped[must] {
			t.Errorf("%s is not in the bundle", must)
		}
	}
	if shipped["cmd/nfdrop-lab/README.md"] {
		t.Error("the excluded lab README is in the bundle")
	}
	remote := regexp.MustCompile(`^` + regexp.QuoteMeta(DefaultURL) + `/(blob|tree)/0123abc/`)
	for doc, data := range b.Docs {
		for _, m := range linkRE.FindAllSubmatch(data, -1) {
			target := string(m[1])
			switch {
			case strings.HasPrefix(target, DefaultURL):
				if !remote.MatchString(target) {
					t.Errorf("%s: %s does not point at the revision", doc, target)
				}
			case strings.Contains(target, "://"), strings.HasPrefix(target, "#"), strings.HasPrefix(target, "mailto:"):
			default:
				file, _, _ := strings.Cut(target, "#")
				p := path.Clean(path.Join(path.Dir(doc), file))
				if !shipped[p] && !shippedDir(shipped, p) {
					t.Errorf("%s links to %s (%s), which the bundle does not hold", doc, target, p)
				}
			}
		}
	}
	t.Logf("%d documents, %d other files", len(b.Docs), len(b.Files))
}

func shippedDir(shipped map[string]bool, dir string) bool {
	for p := range shipped {
		if strings.HasPrefix(p, dir+"/") {
			return true
		}
	}
	return false
}

// FuzzRewriteLinks: keeping every target returns the document unchanged, and replacing
// every target replaces exactly the matched ones.
func FuzzRewriteLinks(f *testing.F) {
	for _, s := range []string{"", "[a](b)", "](", "]()", "[a](b c) [d](e#f) ![i](j.png)", "]](x))", "[a](ü/ß.md)", "\x00](\xff)"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		if got := RewriteLinks(doc, func(s string) string { return s }); !bytes.Equal(got, doc) {
			t.Fatalf("identity rewrite changed %q into %q", doc, got)
		}
		n := len(linkRE.FindAllIndex(doc, -1))
		calls := 0
		got := RewriteLinks(doc, func(string) string { calls++; return "\x01" })
		if calls != n || bytes.Count(got, []byte("](\x01)")) < n {
			t.Fatalf("%d links, %d calls, output %q", n, calls, got)
		}
	})
}
