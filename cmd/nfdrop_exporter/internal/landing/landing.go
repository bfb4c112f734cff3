// Package landing serves the exporter's landing page: exporter-toolkit's
// page (name, version, links) with, for each NFLOG group, the answer to
// "harmless or real?" rendered on the server from a summary.Summary. A small
// inline script refreshes the numbers from the JSON every few seconds; the
// page needs no external asset and reads fine without JavaScript.
package landing

import (
	"bytes"
	_ "embed"
	"fmt"
	"html/template"
	"net/http"
	"strconv"
	"strings"

	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop_exporter/internal/summary"
	"github.com/nfdrop/nfdrop_exporter/collector/classify"
	"github.com/prometheus/exporter-toolkit/web"
)

// Config is the toolkit's landing page settings and the summary to show.
type Config struct {
	web.LandingConfig // Name, Description, Version, Links; ExtraHTML and ExtraCSS are set here
	Summary           *summary.Summarizer
	// RefreshSeconds is how often the script refetches the summary (0: 5).
	RefreshSeconds int
}

var (
	//go:embed page.html.tmpl
	pageTemplate string
	//go:embed page.css
	pageCSS string
	//go:embed page.js
	pageJS string
)

// marker is where the summary goes in the toolkit's page.
const marker = "<!--nfdrop-summary-->"

// Handler serves the page at the route prefix ("/").
type Handler struct {
	head, tail []byte
	prefix     string
	summary    *summary.Summarizer
	tmpl       *template.Template
	refresh    int
}

// New renders the toolkit's page once around a marker; each request renders
// only the summary into it.
func New(cfg Config) (*Handler, error) {
	lc := cfg.LandingConfig
	lc.ExtraHTML = marker
	lc.ExtraCSS = pageCSS
	lc.Profiling = "false" // the exporter serves no /debug/pprof
	page, err := web.NewLandingPage(lc)
	if err != nil {
		return nil, err
	}
	prefix := lc.RoutePrefix
	if prefix == "" {
		prefix = "/"
	}
	rec := &recorder{header: http.Header{}}
	req, _ := http.NewRequest(http.MethodGet, prefix, nil)
	page.ServeHTTP(rec, req)
	head, tail, ok := bytes.Cut(rec.body.Bytes(), []byte(marker))
	if !ok {
		return nil, fmt.Errorf("landing page: the toolkit's page has no place for extra HTML")
	}
	tmpl, err := template.New("summary").Funcs(funcs).Parse(pageTemplate)
	if err != nil {
		return nil, err
	}
	refresh := cfg.RefreshSeconds
	if refresh <= 0 {
		refresh = 5
	}
	return &Handler{head: head, tail: tail, prefix: prefix, summary: cfg.Summary, tmpl: tmpl, refresh: refresh}, nil
}

// recorder captures the toolkit page once at start.
type recorder struct {
	header http.Header
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header         { return r.header }
func (r *recorder) Write(b []byte) (int, error) { return r.body.Write(b) }
func (r *recorder) WriteHeader(int)             {}

// ServeHTTP renders the page.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != h.prefix {
		http.NotFound(w, r)
		return
	}
	var body bytes.Buffer
	body.Write(h.head)
	data := struct {
		summary.Summary
		API     string
		Refresh int
		Script  template.JS
	}{h.summary.Summary(), strings.TrimPrefix(summary.Path, "/"), h.refresh, template.JS(pageJS)}
	if err := h.tmpl.Execute(&body, data); err != nil {
		http.Error(w, "landing page: "+err.Error(), http.StatusInternalServerError)
		return
	}
	body.Write(h.tail)
	w.Header().Set("Content-Type", "text/html; charset=UTF-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(body.Bytes())
}

// The formats below are also in page.js: the script must print what the
// server printed.
var funcs = template.FuncMap{
	"pct":  func(x float64) string { return strconv.FormatFloat(x*100, 'f', 1, 64) + "%" },
	"rate": func(x float64) string { return strconv.FormatFloat(x, 'f', 2, 64) },
	"age": func(s *float64) string {
		if s == nil {
			return "never"
		}
		return strconv.FormatFloat(*s, 'f', 1, 64) + " s ago"
	},
	// bars lays the counts out as consecutive segments of a 1000-wide bar.
	"bars": func(cs []summary.Count) []bar {
		var out []bar
		x := 0.0
		for _, c := range cs {
			w := c.Share * 1000
			out = append(out, bar{Count: c, X: strconv.FormatFloat(x, 'f', 1, 64), W: strconv.FormatFloat(w, 'f', 1, 64)})
			x += w
		}
		return out
	},
	"evidenceSplit": func(e *summary.Evidence) []summary.Count {
		total := e.Proven + e.Unproven + e.Skipped
		sh := func(n uint64) float64 {
			if total == 0 {
				return 0
			}
			return float64(n) / float64(total)
		}
		return []summary.Count{{Name: "proven", Packets: e.Proven, Share: sh(e.Proven)},
			{Name: "unproven", Packets: e.Unproven, Share: sh(e.Unproven)}, {Name: "skipped", Packets: e.Skipped, Share: sh(e.Skipped)}}
	},
	"classes": func(m map[string]uint64) string {
		var parts []string
		for _, c := range classNames {
			if n := m[c]; n > 0 {
				parts = append(parts, c+" "+strconv.FormatUint(n, 10))
			}
		}
		return strings.Join(parts, ", ")
	},
	"levels": func(s *summary.Sources) []level {
		return []level{{"addresses", s.Addresses}, {"networks", s.Networks}}
	},
	"time": func(t interface{ Format(string) string }) string { return t.Format("15:04:05") },
	// groupTitle names a group's section; its element ids use the group's
	// label value ("7", "ebpf"), as page.js does.
	"groupTitle": func(g summary.GroupID) string {
		if classify.Group(g) == classify.GroupEBPF {
			return "eBPF source (kernel drop tracepoint)"
		}
		return "NFLOG group " + g.String()
	},
}

var classNames = []string{"teardown", "handshake", "probe", "other", "fragment", "malformed"}

type bar struct {
	summary.Count
	X, W string
}

type level struct {
	Name string
	Top  summary.Top
}
