package landing

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop_exporter/internal/summary"
	"github.com/nfdrop/nfdrop_exporter/collector"
	"github.com/nfdrop/nfdrop_exporter/collector/classify"
	"github.com/prometheus/common/promslog"
	"github.com/prometheus/exporter-toolkit/web"
)

func TestPage(t *testing.T) {
	c, err := collector.New(collector.Config{Groups: []classify.Group{7}, MaxPrefixes: 1, SourcesCapacity: 4}, promslog.NewNopLogger())
	if err != nil {
		t.Fatal(err)
	}
	h, err := New(Config{LandingConfig: web.LandingConfig{Name: "x_exporter", Description: "d", Version: "v9",
		Links: []web.LandingLinks{{Address: "/metrics", Text: "Metrics"}}},
		Summary: summary.New(summary.Config{Collector: c, Sources: true})})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	body := rec.Body.String()
	for _, want := range []string{
		"<h1>x_exporter</h1>", "Version: v9", `href="/metrics"`, // the toolkit's page around it
		`id="group-7"`, `id="g7-packets">0<`, `id="g7-verdict" class="verdict idle">No drops yet.`,
		`<svg id="g7-classes-svg"`, `id="g7-bar-teardown"`, `id="g7-evidence-off"`, `id="g7-addresses"`,
		`data-api="api/v1/summary"`, "<script>", "</html>",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	for _, absent := range []string{"debug/pprof", "<!--nfdrop-summary-->", reasonsHeading, "http://", "https://"} {
		if strings.Contains(body, absent) {
			t.Errorf("page has %q", absent)
		}
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/other", nil))
	if rec.Code != http.StatusNotFound {
		t.Errorf("/other: %d, want 404", rec.Code)
	}
}

// TestPageEBPF: the eBPF source's section is titled as such, with the
// label value "ebpf" in its element ids, next to an NFLOG group's.
func TestPageEBPF(t *testing.T) {
	c, err := collector.New(collector.Config{Groups: []classify.Group{7, classify.GroupEBPF}, MaxPrefixes: 1}, promslog.NewNopLogger())
	if err != nil {
		t.Fatal(err)
	}
	h, err := New(Config{LandingConfig: web.LandingConfig{Name: "x_exporter"}, Summary: summary.New(summary.Config{Collector: c})})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	body := rec.Body.String()
	for _, want := range []string{
		`<h3>NFLOG group 7 <span id="g7-up"`, `id="g7-packets">0<`,
		`id="group-ebpf" data-group="ebpf"`, `<h3>eBPF source (kernel drop tracepoint) <span id="gebpf-up"`,
		`id="gebpf-packets">0<`, `id="gebpf-bar-teardown"`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(body, "NFLOG group ebpf") {
		t.Error("the eBPF source is called an NFLOG group")
	}
}

// reasonsHeading is the heading of the split by conntrack's reason.
const reasonsHeading = "Why the kernel dropped them (conntrack's reason)"

type fakeReasons map[string]uint64

func (f fakeReasons) DropReasons(classify.Group) (map[string]uint64, bool) { return f, f != nil }

type fakeRules int

func (f fakeRules) LogRules(classify.Group) (int, bool) { return int(f), f >= 0 }

// TestPageOptionalParts: the reasons split is shown exactly when the exporter
// has one, and a group no nf_tables rule logs to says so instead of "No
// drops yet."
func TestPageOptionalParts(t *testing.T) {
	for _, tc := range []struct {
		name    string
		reasons fakeReasons
		rules   fakeRules
		want    []string
		absent  []string
	}{
		{"neither", nil, -1, []string{"No drops yet."}, []string{reasonsHeading, "No nf_tables rule"}},
		{"reasons", fakeReasons{"invalid_new": 3}, 1, []string{reasonsHeading, `id="g7-reasons"`, "invalid_new", "No drops yet."}, []string{"No nf_tables rule"}},
		{"no log rule", nil, 0, []string{`class="verdict look">No nf_tables rule logs to NFLOG group 7`, "iptables-legacy rules are invisible to nf_tables"}, []string{"No drops yet."}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := collector.New(collector.Config{Groups: []classify.Group{7}, MaxPrefixes: 1}, promslog.NewNopLogger())
			if err != nil {
				t.Fatal(err)
			}
			cfg := summary.Config{Collector: c, Rules: tc.rules}
			if tc.reasons != nil {
				cfg.Reasons = tc.reasons
			}
			h, err := New(Config{LandingConfig: web.LandingConfig{Name: "x_exporter"}, Summary: summary.New(cfg)})
			if err != nil {
				t.Fatal(err)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
			body := rec.Body.String()
			for _, want := range tc.want {
				if !strings.Contains(body, want) {
					t.Errorf("page lacks %q", want)
				}
			}
			for _, absent := range tc.absent {
				if strings.Contains(body, absent) {
					t.Errorf("page has %q", absent)
				}
			}
		})
	}
}
