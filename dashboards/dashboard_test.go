// Package dashboards holds no code: its tests check nfdrop.json structurally
// (the conventions of grafana/dashboard-linter and the node-mixin, without
// needing Grafana) and that every metric the dashboard and the Prometheus
// rules name exists in the exporter's exposition.
package dashboards

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop-lab/e2e/families"
	yaml "go.yaml.in/yaml/v2"
)

const (
	dashboardFile = "nfdrop.json"
	alertsFile    = "../deploy/prometheus/alerts.yml"
	rulesFile     = "../deploy/prometheus/rules.yml"
	rulesDir      = "../deploy/prometheus"
	// goldenFile is the exporter's exposition captured by its e2e test.
	goldenFile = "../cmd/nfdrop_exporter/testdata/e2e-output.txt"
)

// contractMetrics is the exporter's metric contract (core and teardown
// evidence), by type.
// It is the reference until goldenFile exists; from then on the golden file
// is, so a metric renamed in the exporter breaks this test.
var contractMetrics = map[string]string{
	"nfdrop_packets_total":                 "counter",
	"nfdrop_packet_size_bytes":             "histogram",
	"nfdrop_messages_lost_total":           "counter",
	"nfdrop_receive_errors_total":          "counter",
	"nfdrop_decode_errors_total":           "counter",
	"nfdrop_last_packet_timestamp_seconds": "gauge",
	"nfdrop_up":                            "gauge",
	"nfdrop_exporter_build_info":           "gauge",
	"nfdrop_teardown_evidence_total":       "counter",
	"nfdrop_teardown_delay_seconds":        "histogram",
	"nfdrop_conntrack_events_total":        "counter",
	"nfdrop_conntrack_events_lost_total":   "counter",
	"nfdrop_conntrack_flows_remembered":    "gauge",
	"nfdrop_conntrack_up":                  "gauge",
}

// Labels each metric family carries besides job and instance; decides which
// dashboard variables its selectors must use.
func hasGroupLabel(metric string) bool {
	for _, p := range []string{"nfdrop_conntrack_", "nfdrop_firewall_", "nfdrop_ebpf_", "nfdrop_kernel_drops_", "nfdrop_log_rule_audit_"} {
		if strings.HasPrefix(metric, p) {
			return false
		}
	}
	return metric != "nfdrop_exporter_build_info"
}

type dashboard struct {
	ID            any                   `json:"id"`
	UID           string                `json:"uid"`
	Title         string                `json:"title"`
	Tags          []string              `json:"tags"`
	Editable      bool                  `json:"editable"`
	SchemaVersion int                   `json:"schemaVersion"`
	Time          struct{ From string } `json:"time"`
	Templating    struct {
		List []variable `json:"list"`
	} `json:"templating"`
	Panels []panel `json:"panels"`
}

type datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type variable struct {
	Name       string          `json:"name"`
	Type       string          `json:"type"`
	Query      json.RawMessage `json:"query"`
	Datasource *datasource     `json:"datasource"`
	Multi      bool            `json:"multi"`
	IncludeAll bool            `json:"includeAll"`
	AllValue   string          `json:"allValue"`
	Refresh    int             `json:"refresh"`
}

// queryString returns a variable's query in either JSON form Grafana uses
// (a string, or {"query": "..."} since Grafana 10).
func (v variable) queryString() string {
	var s string
	if json.Unmarshal(v.Query, &s) == nil {
		return s
	}
	var o struct{ Query string }
	_ = json.Unmarshal(v.Query, &o)
	return o.Query
}

type panel struct {
	ID          int         `json:"id"`
	Type        string      `json:"type"`
	Title       string      `json:"title"`
	Description string      `json:"description"`
	Datasource  *datasource `json:"datasource"`
	FieldConfig struct {
		Defaults struct {
			Unit   string                `json:"unit"`
			Color  struct{ Mode string } `json:"color"`
			Custom struct {
				Stacking        struct{ Mode string } `json:"stacking"`
				ThresholdsStyle struct{ Mode string } `json:"thresholdsStyle"`
			} `json:"custom"`
			Thresholds struct {
				Steps []struct {
					Value *float64 `json:"value"`
				} `json:"steps"`
			} `json:"thresholds"`
		} `json:"defaults"`
	} `json:"fieldConfig"`
	Targets []struct {
		RefID      string      `json:"refId"`
		Expr       string      `json:"expr"`
		Instant    bool        `json:"instant"`
		Datasource *datasource `json:"datasource"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // collapsed rows
}

func loadDashboard(t *testing.T) (dashboard, []byte) {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	return d, b
}

// allPanels flattens rows (expanded rows list their panels after them,
// collapsed rows inside them).
func allPanels(d dashboard) []panel {
	var out []panel
	for _, p := range d.Panels {
		out = append(out, p)
		out = append(out, p.Panels...)
	}
	return out
}

func TestDashboardTopLevel(t *testing.T) {
	d, raw := loadDashboard(t)
	var top map[string]json.RawMessage
	if err := json.Unmarshal(raw, &top); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"__inputs", "__requires"} {
		if _, ok := top[k]; ok {
			t.Errorf("%s present: it breaks file provisioning (only the import dialog resolves it)", k)
		}
	}
	if strings.Contains(string(raw), "${DS_") {
		t.Error("dashboard references an import-time ${DS_...} input")
	}
	if d.UID != "nfdrop" {
		t.Errorf("uid %q, want the fixed uid nfdrop", d.UID)
	}
	if d.ID != nil {
		t.Errorf("id %v, want null", d.ID)
	}
	if d.SchemaVersion < 39 {
		t.Errorf("schemaVersion %d, want >= 39", d.SchemaVersion)
	}
	if d.Editable {
		t.Error("editable: the JSON in git is the source of truth, want false")
	}
	if d.Title == "" || !slices.Contains(d.Tags, "nflog") || d.Time.From == "" {
		t.Errorf("title %q, tags %v, time.from %q: want all set, tags with nflog", d.Title, d.Tags, d.Time.From)
	}
}

// TestNoHardCodedDatasource walks the whole document: every datasource
// reference is the ${datasource} variable (the built-in annotation query
// excepted).
func TestNoHardCodedDatasource(t *testing.T) {
	_, raw := loadDashboard(t)
	var doc any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	n := 0
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, c := range v {
				if k == "datasource" {
					n++
					ds, _ := c.(map[string]any)
					ok := ds != nil && ds["type"] == "prometheus" && ds["uid"] == "${datasource}"
					builtin := ds != nil && ds["type"] == "grafana" && ds["uid"] == "-- Grafana --"
					if !ok && !builtin {
						t.Errorf("%s.datasource = %v, want {prometheus ${datasource}}", path, c)
					}
					continue
				}
				walk(path+"."+k, c)
			}
		case []any:
			for i, c := range v {
				walk(fmt.Sprintf("%s[%d]", path, i), c)
			}
		}
	}
	walk("$", doc)
	if n < 20 {
		t.Errorf("only %d datasource references found; panels and targets must each carry one", n)
	}
}

func TestDashboardVariables(t *testing.T) {
	d, _ := loadDashboard(t)
	byName := map[string]variable{}
	nds := 0
	for _, v := range d.Templating.List {
		byName[v.Name] = v
		if v.Type == "datasource" {
			nds++
		}
	}
	if nds != 1 {
		t.Errorf("%d datasource variables, want exactly 1", nds)
	}
	if ds := byName["datasource"]; ds.Type != "datasource" || ds.queryString() != "prometheus" {
		t.Errorf("variable datasource: type %q query %q, want datasource/prometheus", ds.Type, ds.queryString())
	}
	for _, tc := range []struct {
		name, metric, allValue string
		uses                   []string
		single                 bool
	}{
		{"job", "nfdrop_exporter_build_info", ".+", nil, false},
		{"instance", "nfdrop_exporter_build_info", ".+", []string{"$job"}, false},
		// One group at a time: an exporter reading a group and the eBPF
		// source counts each logged drop once in each, so a sum over both
		// would count it twice.
		{"group", "nfdrop_up", "", []string{"$job", "$instance"}, true},
		// A rule without prefix (and the ebpf group) yields prefix="": All
		// must match the empty value.
		{"prefix", "nfdrop_packets_total", ".*", []string{"$job", "$instance", "$group"}, false},
	} {
		v, ok := byName[tc.name]
		if !ok {
			t.Errorf("variable %s missing", tc.name)
			continue
		}
		q := v.queryString()
		if v.Type != "query" || v.Datasource == nil || v.Datasource.UID != "${datasource}" {
			t.Errorf("%s: type %q datasource %v, want a query variable on ${datasource}", tc.name, v.Type, v.Datasource)
		}
		if !strings.HasPrefix(q, "label_values("+tc.metric) || !strings.HasSuffix(q, ", "+tc.name+")") {
			t.Errorf("%s: query %q, want label_values(%s..., %s)", tc.name, q, tc.metric, tc.name)
		}
		for _, u := range tc.uses {
			if !strings.Contains(q, u) {
				t.Errorf("%s: query %q does not filter on %s", tc.name, q, u)
			}
		}
		if v.Multi == tc.single || v.IncludeAll == tc.single || v.AllValue != tc.allValue {
			t.Errorf("%s: multi=%v includeAll=%v allValue=%q, want %v/%v/%q", tc.name, v.Multi, v.IncludeAll, v.AllValue, !tc.single, !tc.single, tc.allValue)
		}
		if v.Refresh != 2 {
			t.Errorf("%s: refresh %d, want 2 (on time range change)", tc.name, v.Refresh)
		}
	}
}

var (
	// A metric name the project owns: nfdrop_* or a recording rule over it.
	fqNameRE   = regexp.MustCompile(`fqName: "([a-z_]+)"`)
	metricRE   = regexp.MustCompile(`\b((?:[a-z_]+:)?nfdrop_[a-z0-9_]+(?::[a-z0-9_]+)?)\s*(\{[^}]*\})?\s*(\[[^\]]*\])?`)
	rangeRE    = regexp.MustCompile(`\[([^\]]*)\]`)
	thresholdE = regexp.MustCompile(`\)\s*>\s*([0-9.]+)\s*$`)
)

// histogramBase returns the histogram a series name belongs to, if any.
func histogramBase(name string) (string, bool) {
	for _, suf := range []string{"_bucket", "_sum", "_count", ""} {
		base := strings.TrimSuffix(name, suf)
		if (suf == "" || base != name) && contractMetrics[base] == "histogram" {
			return base, true
		}
	}
	return "", false
}

// checkExpr applies the dashboard-linter target rules to one query. An
// instant query (a table over the dashboard's time range) may also use
// [$__range].
func checkExpr(expr string, instant bool) []error {
	var errs []error
	if strings.TrimSpace(expr) == "" {
		return []error{errors.New("empty query")}
	}
	for _, m := range rangeRE.FindAllStringSubmatch(expr, -1) {
		if m[1] != "$__rate_interval" && (!instant || m[1] != "$__range") {
			errs = append(errs, fmt.Errorf("range [%s], want [$__rate_interval] (or [$__range] in an instant query)", m[1]))
		}
	}
	native, classic := map[string]bool{}, map[string]bool{}
	found := false
	for _, m := range metricRE.FindAllStringSubmatch(expr, -1) {
		found = true
		name, sel, rng := m[1], m[2], m[3]
		metric := name
		if strings.Contains(name, ":") {
			metric = "nfdrop_" + strings.SplitN(strings.SplitN(name, ":nfdrop_", 2)[1], ":", 2)[0]
		}
		want := []string{`job=~"$job"`, `instance=~"$instance"`}
		if hasGroupLabel(metric) {
			want = append(want, `group=~"$group"`)
		}
		if name == "nfdrop_packets_total" {
			want = append(want, `prefix=~"$prefix"`)
		}
		for _, w := range want {
			if !strings.Contains(sel, w) {
				errs = append(errs, fmt.Errorf("%s%s: missing %s", name, sel, w))
			}
		}
		if strings.HasSuffix(name, "_total") && rng == "" {
			errs = append(errs, fmt.Errorf("%s: a counter is only meaningful in rate()/increase()", name))
		}
		if base, ok := histogramBase(name); ok {
			switch {
			case name == base:
				native[base] = true
			case name == base+"_bucket":
				classic[base] = true
			default:
				errs = append(errs, fmt.Errorf("%s: use the native histogram functions or _bucket, not _sum/_count (absent when only native is ingested)", name))
			}
		}
	}
	if !found {
		errs = append(errs, errors.New("query names no nfdrop metric"))
	}
	for base := range native {
		if !classic[base] {
			errs = append(errs, fmt.Errorf("%s: native form without the classic _bucket form", base))
		}
	}
	for base := range classic {
		if !native[base] {
			errs = append(errs, fmt.Errorf("%s: classic _bucket form without the native form", base))
		}
	}
	if (len(native) > 0 || len(classic) > 0) && !strings.Contains(expr, "\nor") && !strings.Contains(expr, " or ") {
		errs = append(errs, errors.New("histogram query must be \"native form or classic form\""))
	}
	return errs
}

func TestCheckExprRejects(t *testing.T) {
	good := `sum by (class) (rate(nfdrop_packets_total{job=~"$job", instance=~"$instance", group=~"$group", prefix=~"$prefix"}[$__rate_interval]))`
	hist := `sum(rate(nfdrop_packet_size_bytes{job=~"$job", instance=~"$instance", group=~"$group"}[$__rate_interval])) or on () sum by (le) (rate(nfdrop_packet_size_bytes_bucket{job=~"$job", instance=~"$instance", group=~"$group"}[$__rate_interval]))`
	for _, tc := range []struct {
		name, expr, want string
	}{
		{"good counter", good, ""},
		{"good histogram", hist, ""},
		{"fixed range", strings.Replace(good, "$__rate_interval", "5m", 1), "range [5m]"},
		{"no job", strings.Replace(good, `job=~"$job", `, "", 1), `missing job=~"$job"`},
		{"no prefix", strings.Replace(good, `, prefix=~"$prefix"`, "", 1), `missing prefix=~"$prefix"`},
		{"bare counter", `sum(nfdrop_packets_total{job=~"$job", instance=~"$instance", group=~"$group", prefix=~"$prefix"})`, "only meaningful in rate"},
		{"classic only", hist[strings.Index(hist, "sum by (le)"):], "without the native form"},
		{"native only", hist[:strings.Index(hist, " or on")], "without the classic _bucket form"},
		{"histogram count", `sum(rate(nfdrop_packet_size_bytes_count{job=~"$job", instance=~"$instance", group=~"$group"}[$__rate_interval]))`, "not _sum/_count"},
		{"no group on recorded", `instance_group:nfdrop_packets:rate5m{job=~"$job", instance=~"$instance"}`, `missing group=~"$group"`},
		{"not ours", `up`, "names no nfdrop metric"},
		{"range in a range query", strings.Replace(good, "$__rate_interval", "$__range", 1), "range [$__range]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			errs := checkExpr(tc.expr, false)
			if tc.want == "" {
				if len(errs) > 0 {
					t.Fatalf("unexpected errors: %v", errs)
				}
				return
			}
			if !strings.Contains(fmt.Sprint(errs), tc.want) {
				t.Fatalf("errors %v, want one containing %q", errs, tc.want)
			}
		})
	}
}

func TestDashboardPanels(t *testing.T) {
	d, _ := loadDashboard(t)
	ids := map[int]bool{}
	nTargets := 0
	for _, p := range allPanels(d) {
		if ids[p.ID] || p.ID == 0 {
			t.Errorf("panel %q: id %d missing or duplicated", p.Title, p.ID)
		}
		ids[p.ID] = true
		if p.Type == "row" {
			continue
		}
		if p.Title == "" || len(p.Description) < 30 {
			t.Errorf("panel %d %q: needs a title and a description", p.ID, p.Title)
		}
		if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q: datasource %v", p.Title, p.Datasource)
		}
		if p.FieldConfig.Defaults.Unit == "" {
			t.Errorf("panel %q: no unit", p.Title)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q: no query", p.Title)
		}
		refs := map[string]bool{}
		for _, tg := range p.Targets {
			nTargets++
			if refs[tg.RefID] || tg.RefID == "" {
				t.Errorf("panel %q: refId %q missing or duplicated", p.Title, tg.RefID)
			}
			refs[tg.RefID] = true
			if tg.Datasource == nil || tg.Datasource.UID != "${datasource}" {
				t.Errorf("panel %q %s: datasource %v", p.Title, tg.RefID, tg.Datasource)
			}
			for _, err := range checkExpr(tg.Expr, tg.Instant) {
				t.Errorf("panel %q %s: %v\n%s", p.Title, tg.RefID, err, tg.Expr)
			}
		}
	}
	if nTargets < 15 {
		t.Errorf("%d queries, want the full set (>= 15)", nTargets)
	}
}

// alertThreshold reads the number after ">" at the end of an alert's expr.
func alertThreshold(t *testing.T, alert string) float64 {
	t.Helper()
	for _, r := range alertRules(t) {
		if r.Alert != alert {
			continue
		}
		m := thresholdE.FindStringSubmatch(r.Expr)
		if m == nil {
			t.Fatalf("cannot find the threshold in %q", r.Expr)
		}
		v, err := strconv.ParseFloat(m[1], 64)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	t.Fatalf("alert %s not found", alert)
	return 0
}

type alertRule struct {
	Alert, Expr string
	Annotations map[string]string
}

func alertRules(t *testing.T) []alertRule {
	t.Helper()
	b, err := os.ReadFile(alertsFile)
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Groups []struct{ Rules []alertRule }
	}
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	var out []alertRule
	for _, g := range f.Groups {
		out = append(out, g.Rules...)
	}
	return out
}

// TestAlertDashboardLinks: every alert links this dashboard by its uid,
// with the alert's job and instance (and group, if it has one) selected.
func TestAlertDashboardLinks(t *testing.T) {
	d, _ := loadDashboard(t)
	rules := alertRules(t)
	if len(rules) < 9 {
		t.Fatalf("%d alerts in %s, want at least 9", len(rules), alertsFile)
	}
	for _, r := range rules {
		u := r.Annotations["dashboard_url"]
		want := "/d/" + d.UID + "/nfdrop?var-job={{ $labels.job }}&var-instance={{ $labels.instance }}"
		if !strings.HasPrefix(u, want) {
			t.Errorf("%s: dashboard_url %q, want prefix %q", r.Alert, u, want)
		}
		hasGroup := strings.Contains(r.Annotations["description"], "{{ $labels.group }}")
		if got := strings.Contains(u, "&var-group={{ $labels.group }}"); got != hasGroup {
			t.Errorf("%s: dashboard_url selects the group = %v, but the alert has a group label = %v", r.Alert, got, hasGroup)
		}
	}
}

// TestFirstRowAnswersTheQuestion: the first row holds the three key panels
// (class split stacked, teardown share, non-teardown rate with the
// alert's threshold drawn), and the later rows the required breakdowns.
func TestFirstRowAnswersTheQuestion(t *testing.T) {
	d, _ := loadDashboard(t)
	thr := alertThreshold(t, "NfdropNonTeardownDropsHigh")
	if len(d.Panels) == 0 || d.Panels[0].Type != "row" {
		t.Fatal("dashboard must start with a row")
	}
	var first []panel
	for _, p := range d.Panels[1:] {
		if p.Type == "row" {
			break
		}
		first = append(first, p)
	}
	has := func(ps []panel, what string, ok func(panel, string) bool) {
		t.Helper()
		for _, p := range ps {
			for _, tg := range p.Targets {
				if ok(p, tg.Expr) {
					return
				}
			}
		}
		t.Errorf("no panel: %s", what)
	}
	has(first, "stacked drop rate by class", func(p panel, e string) bool {
		return strings.Contains(e, "sum by (class)") && p.FieldConfig.Defaults.Custom.Stacking.Mode == "normal" && p.FieldConfig.Defaults.Unit == "pps"
	})
	has(first, "teardown share in percent, not coloured as health", func(p panel, e string) bool {
		steps := p.FieldConfig.Defaults.Thresholds.Steps
		return strings.Contains(e, `class="teardown"`) && p.FieldConfig.Defaults.Unit == "percentunit" &&
			p.FieldConfig.Defaults.Color.Mode == "fixed" && len(steps) == 1
	})
	has(first, fmt.Sprintf("suspicious drops, red from the alert threshold %g", thr), func(p panel, e string) bool {
		steps := p.FieldConfig.Defaults.Thresholds.Steps
		return strings.Contains(e, "instance_group:nfdrop_packets_suspicious:rate5m") && len(steps) == 2 &&
			steps[1].Value != nil && *steps[1].Value == thr
	})
	has(first, fmt.Sprintf("non-teardown rate with the alert threshold %g drawn and in its description", thr), func(p panel, e string) bool {
		if !strings.Contains(e, `class!="teardown"`) || p.FieldConfig.Defaults.Custom.ThresholdsStyle.Mode == "off" {
			return false
		}
		for _, s := range p.FieldConfig.Defaults.Thresholds.Steps {
			if s.Value != nil && *s.Value == thr {
				return strings.Contains(p.Description, fmt.Sprintf("(%g/s ", thr))
			}
		}
		return false
	})
	all := allPanels(d)
	uthr := alertThreshold(t, "NfdropUnprovenTeardownDropsHigh")
	has(all, fmt.Sprintf("proven vs unproven teardown with the unproven alert threshold %g drawn", uthr), func(p panel, e string) bool {
		if !strings.Contains(e, `evidence="none"`) || p.FieldConfig.Defaults.Custom.ThresholdsStyle.Mode == "off" {
			return false
		}
		for _, s := range p.FieldConfig.Defaults.Thresholds.Steps {
			if s.Value != nil && *s.Value == uthr {
				return strings.Contains(p.Description, fmt.Sprintf("(%g/s ", uthr))
			}
		}
		return false
	})
	// A 0/1 state never shares a graph with a count.
	for _, p := range all {
		if p.Type != "timeseries" {
			continue
		}
		for _, tg := range p.Targets {
			if strings.Contains(tg.Expr, "nfdrop_conntrack_up") || strings.HasPrefix(strings.TrimSpace(tg.Expr), "nfdrop_up") {
				t.Errorf("panel %q draws a 0/1 up state on a graph axis; use a stat", p.Title)
			}
		}
	}
	for _, tc := range []struct{ what, typ, expr string }{
		{"non-teardown by port and side", "timeseries", "by (proto, port, side)"},
		{"non-teardown by flags", "timeseries", "by (flags, class)"},
		{"probes", "timeseries", `class="probe"`},
		{"UDP/ICMP", "timeseries", `class="other"`},
		{"packet size heatmap", "heatmap", "nfdrop_packet_size_bytes"},
		{"teardown evidence split", "timeseries", "sum by (evidence)"},
		{"teardown delay heatmap", "heatmap", "nfdrop_teardown_delay_seconds"},
		{"up", "stat", "nfdrop_up"},
		{"lost messages", "timeseries", "nfdrop_messages_lost_total"},
		{"eBPF source against counted + lost", "timeseries", "nfdrop_ebpf_drops_total"},
		{"kernel drops by reason", "timeseries", "sum by (reason) (rate(nfdrop_kernel_drops_total"},
		{"receive errors", "timeseries", "nfdrop_receive_errors_total"},
		{"decode errors", "timeseries", "nfdrop_decode_errors_total"},
		{"conntrack settings", "table", "nfdrop_conntrack_setting"},
		{"conntrack TCP timeouts", "table", "nfdrop_conntrack_tcp_timeout_seconds"},
		{"pre-existing flows", "stat", "nfdrop_conntrack_preexisting_flows"},
		{"conntrack subscription alone", "stat", "nfdrop_conntrack_up"},
		{"flows remembered", "timeseries", "nfdrop_conntrack_flows_remembered"},
		{"after an alert: top ports, flags and classes", "table", "sum by (class, proto, port, side, flags) (increase(nfdrop_packets_total"},
		{"after an alert: evidence", "table", "sum by (evidence) (increase(nfdrop_teardown_evidence_total"},
	} {
		has(all, tc.what, func(p panel, e string) bool { return p.Type == tc.typ && strings.Contains(e, tc.expr) })
	}
}

// exposition returns the metric names the exporter exposes (histograms with
// their _bucket/_sum/_count series) and where the list came from.
func exposition(t *testing.T) (map[string]bool, string) {
	t.Helper()
	names := map[string]bool{}
	add := func(name, typ string) {
		names[name] = true
		if typ == "histogram" {
			for _, s := range []string{"_bucket", "_sum", "_count"} {
				names[name+s] = true
			}
		}
	}
	f, err := os.Open(goldenFile)
	if errors.Is(err, os.ErrNotExist) {
		for n, typ := range contractMetrics {
			add(n, typ)
		}
		return names, "the contract list in this test (" + goldenFile + " does not exist yet)"
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if fs := strings.Fields(sc.Text()); len(fs) == 4 && fs[0] == "#" && fs[1] == "TYPE" {
			add(fs[2], fs[3])
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(names) == 0 {
		t.Fatalf("%s has no # TYPE lines", goldenFile)
	}
	// The golden file leaves out version-dependent series; main_test.go
	// checks that the exporter exposes build_info.
	names["nfdrop_exporter_build_info"] = true
	return names, goldenFile
}

var recordRE = regexp.MustCompile(`(?m)^\s*- record:\s*(\S+)\s*$`)

// TestMetricsExist: every nfdrop_* name in the dashboard and in
// deploy/prometheus/*.yml is exposed by the exporter, and every recording
// rule the dashboard reads is defined in rules.yml.
func TestMetricsExist(t *testing.T) {
	exposed, source := exposition(t)
	audit := auditFamilies(t)
	t.Logf("exposition: %s", source)
	rules, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	recorded := map[string]bool{}
	for _, m := range recordRE.FindAllStringSubmatch(string(rules), -1) {
		recorded[m[1]] = true
	}
	files := []string{dashboardFile}
	ymls, err := os.ReadDir(rulesDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ymls {
		if strings.HasSuffix(e.Name(), ".yml") {
			files = append(files, rulesDir+"/"+e.Name())
		}
	}
	if len(files) < 4 {
		t.Fatalf("checked files %v: deploy/prometheus yml files missing", files)
	}
	// Teardown-evidence names are checked apart: until the
	// exporter has the feature, the golden exposition has none of them.
	type use struct{ file, name string }
	var core, evidence []use
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		for _, m := range metricRE.FindAllStringSubmatch(string(b), -1) {
			if m[1] != "nfdrop_exporter" { // the program's name in prose
				seen[m[1]] = true
			}
		}
		if len(seen) == 0 {
			t.Errorf("%s names no nfdrop metric", file)
		}
		var names []string
		for n := range seen {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			switch {
			case strings.Contains(n, ":"):
				if !recorded[n] {
					t.Errorf("%s: recording rule %s is not defined in rules.yml", file, n)
				}
			case audit[n]:
				core = append(core, use{file, n})
			case isEvidenceMetric(n):
				evidence = append(evidence, use{file, n})
			default:
				core = append(core, use{file, n})
			}
		}
	}
	check := func(t *testing.T, uses []use) {
		for _, u := range uses {
			if !exposed[u.name] && !audit[u.name] {
				t.Errorf("%s: %s is not in the exporter's exposition (%s)", u.file, u.name, source)
			}
		}
	}
	check(t, core)
	t.Run("teardown evidence", func(t *testing.T) {
		if len(evidence) == 0 {
			t.Fatal("the dashboard and rules name no teardown-evidence metric")
		}
		has := false
		for n := range exposed {
			has = has || isEvidenceMetric(n)
		}
		if !has {
			t.Skipf("the exposition (%s) has no teardown-evidence metric yet: %d uses unchecked", source, len(evidence))
		}
		check(t, evidence)
	})
}

// auditFamilies are the families of the parts that read the kernel's
// ruleset, conntrack statistics and the eBPF program's counts: a replay has
// none of them.
func auditFamilies(t *testing.T) map[string]bool {
	names := families.Of(t, families.RuleAudit|families.ConntrackStats|families.EBPF)
	for n := range families.Of(t, 0) {
		delete(names, n)
	}
	return names
}

func isEvidenceMetric(n string) bool {
	return strings.HasPrefix(n, "nfdrop_teardown_") || strings.HasPrefix(n, "nfdrop_conntrack_")
}
