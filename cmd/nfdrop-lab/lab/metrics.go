package lab

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/nfdrop/nfdrop_exporter/collector/classify"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Scrape is one parsed /metrics exposition.
type Scrape map[string]*dto.MetricFamily

// FetchMetrics scrapes url with client (see HTTPClient) in the text format.
func FetchMetrics(ctx context.Context, client *http.Client, url string) (Scrape, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	// Ask for the classic text format explicitly: it is what the parser
	// below reads, whatever else the exporter could negotiate.
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, fmt.Errorf("GET %s: %s: %s", url, resp.Status, b)
	}
	s, err := ParseMetrics(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", url, err)
	}
	return s, nil
}

// ParseMetrics reads an exposition in the classic text format.
func ParseMetrics(r io.Reader) (Scrape, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(r)
	if err != nil {
		return nil, err
	}
	return Scrape(mfs), nil
}

func labels(m *dto.Metric) map[string]string {
	out := make(map[string]string, len(m.GetLabel()))
	for _, lp := range m.GetLabel() {
		out[lp.GetName()] = lp.GetValue()
	}
	return out
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.GetCounter().GetValue()
	case m.Gauge != nil:
		return m.GetGauge().GetValue()
	case m.Untyped != nil:
		return m.GetUntyped().GetValue()
	}
	return 0
}

// Packets returns every nfdrop_packets_total series of group ("" = all).
func (s Scrape) Packets(group string) map[Series]float64 {
	out := map[Series]float64{}
	mf := s["nfdrop_packets_total"]
	if mf == nil {
		return out
	}
	for _, m := range mf.GetMetric() {
		l := labels(m)
		if group != "" && l[classify.LabelGroup] != group {
			continue
		}
		out[Series{l[classify.LabelGroup], l[classify.LabelPrefix], l[classify.LabelFamily], l[classify.LabelProto],
			l[classify.LabelPort], l[classify.LabelSide], l[classify.LabelFlags], l[classify.LabelClass]}] += value(m)
	}
	return out
}

// Value returns the value of metric name whose labels include want, and
// whether such a series exists.
func (s Scrape) Value(name string, want map[string]string) (float64, bool) {
	return s.find(name, func(l map[string]string) bool {
		for k, v := range want {
			if l[k] != v {
				return false
			}
		}
		return true
	})
}

// ValueExact returns the value of the series of metric name whose labels
// are exactly want (no more, no fewer), and whether it exists.
func (s Scrape) ValueExact(name string, want map[string]string) (float64, bool) {
	return s.find(name, func(l map[string]string) bool { return maps.Equal(l, want) })
}

// find returns the value of the first series of metric name whose labels
// match.
func (s Scrape) find(name string, match func(map[string]string) bool) (float64, bool) {
	for _, m := range s[name].GetMetric() {
		if match(labels(m)) {
			return value(m), true
		}
	}
	return 0, false
}

// Sum adds up series values.
func Sum(m map[Series]float64) float64 {
	var t float64
	for _, v := range m {
		t += v
	}
	return t
}

// WriteSummary prints the human summary of the drops of one group: totals
// and accounting against the kernel's rule counter, drops by class with the
// teardown share, and the top flags, ports and series.
func WriteSummary(w io.Writer, s Scrape, group string, ruleCounter uint64) {
	pk := s.Packets(group)
	total := Sum(pk)
	lost, _ := s.Value("nfdrop_messages_lost_total", map[string]string{"group": group})
	up, upOK := s.Value("nfdrop_up", map[string]string{"group": group})

	fmt.Fprintf(w, "NFLOG group %s: exporter up=%s, counted %.0f packets, lost %.0f; firewall log rule counter %d (%s)\n",
		group, fmtUp(up, upOK), total, lost, ruleCounter, verdict(total+lost, ruleCounter))

	by := func(key func(Series) string) []kv {
		m := map[string]float64{}
		for k, v := range pk {
			m[key(k)] += v
		}
		return sorted(m)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "\nDrops by class:")
	fmt.Fprintln(tw, "class\tpackets\tshare\t")
	for _, c := range classify.ReportOrder {
		var v float64
		for k, n := range pk {
			if k.Class == c.String() {
				v += n
			}
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%s\t\n", c, v, pct(v, total))
	}
	tw.Flush()
	var td float64
	for k, n := range pk {
		if k.Class == classify.ClassTeardown.String() {
			td += n
		}
	}
	fmt.Fprintln(w, Headline(total, td, s.Evidence(group)))

	top := func(title, col string, rows []kv, n int) {
		fmt.Fprintf(w, "\nTop %s:\n", title)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintf(tw, "%s\tpackets\n", col)
		for i, r := range rows {
			if i == n {
				break
			}
			fmt.Fprintf(tw, "%s\t%.0f\n", r.k, r.v)
		}
		tw.Flush()
	}
	top("TCP flags", "flags (class)", by(func(k Series) string {
		if k.Proto != "tcp" {
			return "(not tcp)"
		}
		return k.Flags + " (" + k.Class + ")"
	}), 10)
	top("service ports", "proto/port side", by(func(k Series) string {
		if k.Port == "" {
			return k.Proto
		}
		return k.Proto + "/" + k.Port + " " + k.Side
	}), 10)
	top("families", "family", by(func(k Series) string { return k.Family }), 3)
}

type kv struct {
	k string
	v float64
}

func sorted(m map[string]float64) []kv {
	out := make([]kv, 0, len(m))
	for k, v := range m {
		out = append(out, kv{k, v})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].v != out[j].v {
			return out[i].v > out[j].v
		}
		return out[i].k < out[j].k
	})
	return out
}

func pct(v, total float64) string {
	if total == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f%%", 100*v/total)
}

func fmtUp(v float64, ok bool) string {
	if !ok {
		return "(absent)"
	}
	return fmt.Sprintf("%.0f", v)
}

func verdict(accounted float64, counter uint64) string {
	if accounted == float64(counter) {
		return "every logged packet accounted for"
	}
	return fmt.Sprintf("MISMATCH: counted+lost %.0f != %d", accounted, counter)
}

// DiffSeries describes the differences between got and want, one line per
// series, or "" when equal.
func DiffSeries(got, want map[Series]float64) string {
	keys := map[Series]bool{}
	for k := range got {
		keys[k] = true
	}
	for k := range want {
		keys[k] = true
	}
	var lines []string
	for k := range keys {
		if got[k] != want[k] {
			lines = append(lines, fmt.Sprintf("nfdrop_packets_total%s got %v want %v", k, got[k], want[k]))
		}
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// Evidence is conntrack's verdict on the teardown-shaped drops of a group
// (nfdrop_teardown_evidence_total by evidence).
type Evidence struct {
	Destroyed, Closing, Established, None, Skipped float64
}

// Evidence returns the teardown evidence of group, or nil when the exporter
// collects none (--no-conntrack.correlate).
func (s Scrape) Evidence(group string) *Evidence {
	if s["nfdrop_teardown_evidence_total"] == nil {
		return nil
	}
	v := func(e string) float64 {
		n, _ := s.Value("nfdrop_teardown_evidence_total", map[string]string{"group": group, "evidence": e})
		return n
	}
	return &Evidence{Destroyed: v("destroyed"), Closing: v("closing"), Established: v("established"), None: v("none"), Skipped: v("skipped")}
}

// Headline is the one-line verdict on a group's drops: how many are shaped
// like late TCP teardown and, when conntrack evidence exists (ev not nil),
// how many of those it proved to be late packets of real connections and for
// how many it found no connection at all. Only the proven ones are called
// harmless: the teardown shape alone is also what ACK scans and crafted
// packets look like.
func Headline(total, teardown float64, ev *Evidence) string {
	if total == 0 {
		return "=> no drops counted."
	}
	h := fmt.Sprintf("=> %.0f of %.0f drops (%s) %s shaped like late TCP teardown", teardown, total, pct(teardown, total), isAre(teardown))
	switch {
	case teardown == 0:
	case ev == nil:
		h += "; without conntrack evidence (--no-conntrack.correlate) none is proven harmless"
	default:
		h += fmt.Sprintf("; conntrack proved %.0f of them late packets of real connections (destroyed/closing: harmless)", ev.Destroyed+ev.Closing)
		h += fmt.Sprintf(" and found no connection for %.0f (none: scan or crafted packet, not harmless)", ev.None)
		if ev.Established > 0 {
			h += fmt.Sprintf(", %.0f hit a live connection (established)", ev.Established)
		}
		if ev.Skipped > 0 {
			h += fmt.Sprintf(", %.0f were not checked (skipped)", ev.Skipped)
		}
		if open := teardown - (ev.Destroyed + ev.Closing + ev.Established + ev.None + ev.Skipped); open > 0 {
			h += fmt.Sprintf(", %.0f still wait for evidence", open)
		}
	}
	return h + fmt.Sprintf("; %.0f %s not teardown-shaped.", total-teardown, isAre(total-teardown))
}

func isAre(n float64) string {
	if n == 1 {
		return "is"
	}
	return "are"
}

// WriteEvidence prints what conntrack says about the teardown-shaped drops:
// nfdrop_teardown_evidence_total and nfdrop_teardown_delay_seconds.
func WriteEvidence(w io.Writer, s Scrape, group string) {
	if s["nfdrop_teardown_evidence_total"] == nil {
		fmt.Fprintln(w, "\nTeardown evidence: not collected (--no-conntrack.correlate)")
		return
	}
	up, _ := s.Value("nfdrop_conntrack_up", nil)
	ev := map[string]float64{}
	var total float64
	for _, e := range []string{"destroyed", "closing", "established", "none", "skipped"} {
		v, _ := s.Value("nfdrop_teardown_evidence_total", map[string]string{"group": group, "evidence": e})
		ev[e] = v
		total += v
	}
	var n, sum float64
	if mf := s["nfdrop_teardown_delay_seconds"]; mf != nil {
		for _, m := range mf.GetMetric() {
			if labels(m)["group"] == group {
				n += float64(m.GetHistogram().GetSampleCount())
				sum += m.GetHistogram().GetSampleSum()
			}
		}
	}
	fmt.Fprintf(w, "\nTeardown evidence from conntrack (conntrack_up=%.0f):\n", up)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "evidence\tpackets\tshare\tmeaning\n")
	mean := "-"
	if n > 0 {
		mean = fmt.Sprintf("%.2fs", sum/n)
	}
	for _, r := range [][2]string{
		{"destroyed", "connection ended " + mean + " (mean) before the packet: harmless"},
		{"closing", "connection still closing in conntrack: harmless"},
		{"established", "live connection, segment rejected"},
		{"none", "no connection ever seen: scan or crafted packet"},
		{"skipped", "not determined (lookup budget, queue, conntrack down)"},
	} {
		fmt.Fprintf(tw, "%s\t%.0f\t%s\t%s\n", r[0], ev[r[0]], pct(ev[r[0]], total), r[1])
	}
	tw.Flush()
	fmt.Fprintf(w, "=> %s of the teardown-shaped drops are proven late packets of real connections; %.0f had no connection behind them.\n",
		pct(ev["destroyed"]+ev["closing"], total), ev["none"])
}

// Reasons returns nfdrop_drop_reasons_total of group by class and reason.
func (s Scrape) Reasons(group string) map[ReasonKey]float64 {
	out := map[ReasonKey]float64{}
	for _, m := range s["nfdrop_drop_reasons_total"].GetMetric() {
		if l := labels(m); l["group"] == group {
			out[ReasonKey{l["class"], l["reason"]}] += value(m)
		}
	}
	return out
}

// ConntrackMessages returns nfdrop_conntrack_log_messages_total of group
// and family by reason.
func (s Scrape) ConntrackMessages(group, family string) map[string]float64 {
	out := map[string]float64{}
	for _, m := range s["nfdrop_conntrack_log_messages_total"].GetMetric() {
		if l := labels(m); l["group"] == group && l["family"] == family {
			out[l["reason"]] += value(m)
		}
	}
	return out
}

// WriteReasons prints the drops by conntrack's reason beside their class
// (nfdrop_drop_reasons_total), and conntrack's own messages, which are not
// drops (nfdrop_conntrack_log_messages_total).
func WriteReasons(w io.Writer, s Scrape, group string) {
	if s["nfdrop_drop_reasons_total"] == nil {
		fmt.Fprintln(w, "\nWhy the kernel dropped them: no reasons (--no-conntrack.reasons, or group 0 not read)")
		return
	}
	got := s.Reasons(group)
	classes := []string{"teardown", "handshake", "probe", "other", "fragment", "malformed"}
	reasons := map[string]bool{}
	for k := range got {
		reasons[k.Reason] = true
	}
	fmt.Fprintf(w, "\nWhy the kernel dropped them (conntrack's reason for each drop of group %s):\n", group)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "reason\t")
	for _, c := range classes {
		fmt.Fprintf(tw, "%s\t", c)
	}
	fmt.Fprintln(tw, "total\t")
	for _, r := range sortedKeys(reasons) {
		fmt.Fprintf(tw, "%s\t", r)
		var t float64
		for _, c := range classes {
			v := got[ReasonKey{c, r}]
			t += v
			fmt.Fprintf(tw, "%.0f\t", v)
		}
		fmt.Fprintf(tw, "%.0f\t\n", t)
	}
	tw.Flush()
	var msgs float64
	for _, m := range s["nfdrop_conntrack_log_messages_total"].GetMetric() {
		msgs += value(m)
	}
	fmt.Fprintf(w, "=> %.0f messages from conntrack itself were read and kept out of nfdrop_packets_total.\n", msgs)
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
