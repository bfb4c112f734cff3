// Package docbundle copies the documentation that the release archive and the Debian
// package ship into one directory, in the repository's layout, so that the links between
// the documents still work where they are installed.
//
// Starting from entry documents it follows every relative Markdown link. A Markdown file
// is copied (and its links followed); a file or directory of examples (anything that is
// not Go code) is copied; a link to anything else (Go code, a path under an excluded
// prefix) is rewritten to that file in the repository at the build's revision, so that no
// copy leads nowhere. A link to a path that does not exist becomes a warning and is
// rewritten the same way.
//
// The command is cmd/docbundle (`make docs`).
package docbundle

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

// DefaultURL is where the repository is published; links to what the bundle does not
// hold point into it.
const DefaultURL = "https://github.com/nfdrop/nfdrop_exporter"

// linkRE matches the target of an inline Markdown link or image, "](target)": the form
// the repository's documents use and its link test checks.
var linkRE = regexp.MustCompile(`\]\(([^)\s]+)\)`)

// RewriteLinks returns doc with the target of every inline link replaced by fn(target).
// fn returns its argument to keep a link.
func RewriteLinks(doc []byte, fn func(target string) string) []byte {
	return linkRE.ReplaceAllFunc(doc, func(m []byte) []byte {
		target := string(m[2 : len(m)-1])
		return []byte("](" + fn(target) + ")")
	})
}

// Bundle is the set of files to ship, found from the entry documents.
type Bundle struct {
	Repo     string   // the repository's top directory
	URL      string   // where the repository is published (DefaultURL)
	Revision string   // commit or tag the rewritten links point at
	Exclude  []string // repository path prefixes never shipped (their links are rewritten)

	Docs     map[string][]byte // Markdown files, links rewritten, by repository path
	Files    []string          // other files shipped as they are, by repository path
	Warnings []string          // links to paths that do not exist
}

// Build follows the links from the entry documents (repository paths).
func (b *Bundle) Build(entries ...string) error {
	if b.URL == "" {
		b.URL = DefaultURL
	}
	if b.Revision == "" {
		return errors.New("docbundle: no revision to point the links at (-revision; the Makefile passes git rev-parse HEAD)")
	}
	b.Docs = map[string][]byte{}
	files := map[string]bool{}
	queue := slices.Clone(entries)
	for len(queue) > 0 {
		doc := queue[0]
		queue = queue[1:]
		if _, done := b.Docs[doc]; done {
			continue
		}
		src, err := os.ReadFile(filepath.Join(b.Repo, filepath.FromSlash(doc)))
		if err != nil {
			return fmt.Errorf("docbundle: %w", err)
		}
		var walkErr error
		b.Docs[doc] = RewriteLinks(src, func(target string) string {
			out, ship, err := b.link(doc, target)
			if err != nil && walkErr == nil {
				walkErr = err
			}
			for _, p := range ship {
				if strings.HasSuffix(p, ".md") {
					queue = append(queue, p)
				} else {
					files[p] = true
				}
			}
			return out
		})
		if walkErr != nil {
			return walkErr
		}
	}
	b.Files = slices.Sorted(func(yield func(string) bool) {
		for f := range files {
			if _, isDoc := b.Docs[f]; !isDoc && !yield(f) {
				return
			}
		}
	})
	return nil
}

// link decides what a link in doc becomes: the target itself when what it names is
// shipped (returned in ship), else its address in the published repository.
func (b *Bundle) link(doc, target string) (out string, ship []string, err error) {
	if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") || strings.HasPrefix(target, "#") {
		return target, nil, nil
	}
	file, frag, hasFrag := strings.Cut(target, "#")
	p := path.Clean(path.Join(path.Dir(doc), file))
	if p == ".." || strings.HasPrefix(p, "../") || path.IsAbs(file) {
		return "", nil, fmt.Errorf("docbundle: %s links to %s, outside the repository", doc, target)
	}
	remote := func(kind string) string {
		u := b.URL + "/" + kind + "/" + b.Revision + "/" + p
		if hasFrag {
			u += "#" + frag
		}
		return u
	}
	for _, x := range b.Exclude {
		if x = strings.TrimSuffix(x, "/"); p == x || strings.HasPrefix(p, x+"/") {
			if st, err := os.Stat(filepath.Join(b.Repo, filepath.FromSlash(p))); err == nil && st.IsDir() {
				return remote("tree"), nil, nil
			}
			return remote("blob"), nil, nil
		}
	}
	full := filepath.Join(b.Repo, filepath.FromSlash(p))
	st, err := os.Stat(full)
	if err != nil {
		b.Warnings = append(b.Warnings, fmt.Sprintf("%s links to %s, which does not exist", doc, target))
		return remote("blob"), nil, nil
	}
	if !st.IsDir() {
		if strings.HasSuffix(p, ".go") {
			return remote("blob"), nil, nil
		}
		return target, []string{p}, nil
	}
	// A directory is shipped when it holds examples only: no Go code, no subdirectory.
	entries, err := os.ReadDir(full)
	if err != nil {
		return "", nil, fmt.Errorf("docbundle: %w", err)
	}
	for _, e := range entries {
		if e.IsDir() || strings.HasSuffix(e.Name(), ".go") {
			return remote("tree"), nil, nil
		}
	}
	for _, e := range entries {
		if e.Type().IsRegular() {
			ship = append(ship, p+"/"+e.Name())
		}
	}
	return target, ship, nil
}

// Write writes the bundle into dir: files 0644, directories 0755.
func (b *Bundle) Write(dir string) error {
	write := func(rel string, data []byte) error {
		dst := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		return os.WriteFile(dst, data, 0o644)
	}
	for _, rel := range slices.Sorted(func(yield func(string) bool) {
		for d := range b.Docs {
			if !yield(d) {
				return
			}
		}
	}) {
		if err := write(rel, b.Docs[rel]); err != nil {
			return err
		}
	}
	for _, rel := range b.Files {
		data, err := os.ReadFile(filepath.Join(b.Repo, filepath.FromSlash(rel)))
		if err != nil {
			return err
		}
		if err := write(rel, data); err != nil {
			return err
		}
	}
	// WriteFile and MkdirAll honour the umask; the archive and package need exact modes.
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		mode := fs.FileMode(0o644)
		if d.IsDir() {
			mode = 0o755
		}
		return os.Chmod(p, mode)
	})
}
