package landing

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/nfdrop/nfdrop_exporter/collector"
	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop_exporter/internal/summary"
	"github.com/prometheus/common/promslog"
	"github.com/prometheus/exporter-toolkit/web"
)

func TestPage(t *testing.T) {
	c, err := collector.New(collector.Config{Groups: []uint16{7}, MaxPrefixes: 1, SourcesCapacity: 4}, promslog.NewNopLogger())
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
	for _, absent := range []string{"debug/pprof", "<!--nfdrop-summary-->", "Drops by reason", "http://", "https://"} {
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
