package explain

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/nfdrop/nfdrop_exporter/cmd/nfdrop_exporter/internal/logline"
	"github.com/nfdrop/nfdrop_exporter/collector/classify"
)

// Report is the JSON document (schema in doc.go). Field names and meanings
// are stable; new fields may be added, none removed or renamed.
type Report struct {
	SchemaVersion int               `json:"schema_version"`
	Inputs        []InputReport     `json:"inputs"`
	Total         uint64            `json:"total"`
	Unparsed      uint64            `json:"unparsed"`
	Ignored       uint64            `json:"ignored"`
	NotKernel     uint64            `json:"not_kernel"`
	Classes       map[string]uint64 `json:"classes"`
	Series        []Series          `json:"series"`
	Prefixes      []PrefixCount     `json:"prefixes"`
	TimeSpan      *TimeSpan         `json:"time_span"`
	UnparsedLines []UnparsedLine    `json:"unparsed_lines"`
	// Who sent the drops, teardown-shaped ones apart: the heaviest exact
	// source addresses and /24 (IPv4) or /48 (IPv6) networks, largest first.
	TopSources          []Source  `json:"top_sources"`           // drops other than teardown
	TopNetworks         []Source  `json:"top_networks"`          // drops other than teardown
	TopTeardownSources  []Source  `json:"top_teardown_sources"`  // teardown-shaped drops
	TopTeardownNetworks []Source  `json:"top_teardown_networks"` // teardown-shaped drops
	NonTeardown         Breakdown `json:"non_teardown"`
	Teardown            Breakdown `json:"teardown"`
	Verdict             string    `json:"verdict"`
}

// InputReport is one input file's contribution.
type InputReport struct {
	Name string `json:"name"`
	// Format is "pcap" or "pcapng" for a capture, else the wrapper of most
	// of its packet lines: "syslog", "ulogd-logemu", "dmesg", "kmsg",
	// "journal-json", "ulogd-json"; "journalctl" for journalctl's output
	// without packets; or "text" (bare messages, or no packets).
	Format   string `json:"format"`
	Error    string `json:"error,omitempty"` // why the input could not be read (to the end)
	Lines    uint64 `json:"lines"`           // text lines, or capture records
	Packets  uint64 `json:"packets"`
	Ignored  uint64 `json:"ignored"`
	Unparsed uint64 `json:"unparsed"`
	// NotKernel counts lines with the LOG head that another program wrote
	// (a name[pid]: syslog tag, or a journal entry not from the kernel).
	NotKernel uint64 `json:"not_kernel"`
	// JournalMeta counts the lines journalctl writes about the journal
	// ("-- Boot <id> --", "-- Logs begin at ...", "-- No entries --"):
	// neither packets nor ignored lines.
	JournalMeta uint64 `json:"journal_meta"`
	// NoEntries: journalctl printed "-- No entries --", it had nothing to show.
	NoEntries bool `json:"no_entries"`
}

// Series is one nfdrop_packets_total series without the group label.
type Series struct {
	Prefix string `json:"prefix"`
	Family string `json:"family"`
	Proto  string `json:"proto"`
	Port   string `json:"port"`
	Side   string `json:"side"`
	Flags  string `json:"flags"`
	Class  string `json:"class"`
	Count  uint64 `json:"count"`
}

// PrefixCount is the number of packets logged with one prefix.
type PrefixCount struct {
	Prefix string `json:"prefix"`
	Count  uint64 `json:"count"`
}

// TimeSpan is the time covered by the inputs, on the best clock they carry.
type TimeSpan struct {
	// Clock is "wall" (RFC 3339 times), "syslog" (year-less local syslog
	// times, written without a year as "Jan _2 15:04:05.999999") or "uptime"
	// (seconds since boot from dmesg / kmsg, written as decimal seconds).
	Clock   string  `json:"clock"`
	First   string  `json:"first"`
	Last    string  `json:"last"`
	Seconds float64 `json:"seconds"`
}

// UnparsedLine is one of the first lines (or capture records) that could not be understood.
type UnparsedLine struct {
	Input  string `json:"input"`
	Line   uint64 `json:"line"`
	Reason string `json:"reason"`
	Text   string `json:"text"`
}

func (a *aggregator) report() *Report {
	r := &Report{SchemaVersion: 1, Classes: make(map[string]uint64)}
	for _, c := range classify.ReportOrder {
		r.Classes[c.String()] = 0
	}
	for _, in := range a.inputs {
		ir := InputReport{Name: in.name, Format: in.formatName(), Lines: in.lines, Packets: in.packets,
			Ignored: in.ignored, Unparsed: in.unparsed, NotKernel: in.notKernel,
			JournalMeta: in.journalMeta, NoEntries: in.noEntries}
		if in.err != nil {
			ir.Error = in.err.Error()
		}
		r.Inputs = append(r.Inputs, ir)
		r.Total += in.packets
		r.Unparsed += in.unparsed
		r.Ignored += in.ignored
		r.NotKernel += in.notKernel
	}
	names := a.prefixes.Names()
	ports := a.classifier.Ports()
	prefixCounts := make([]uint64, len(names))
	for k, n := range a.counts {
		l := k.Labels(ports)
		r.Series = append(r.Series, Series{
			Prefix: names[k.Prefix()],
			Family: l.FamilyLabel(), Proto: l.ProtoLabel(), Port: l.PortLabel(),
			Side: l.SideLabel(), Flags: l.FlagsLabel(), Class: l.ClassLabel(),
			Count: n,
		})
		r.Classes[l.ClassLabel()] += n
		prefixCounts[k.Prefix()] += n
	}
	slices.SortFunc(r.Series, func(x, y Series) int {
		if c := cmp.Compare(y.Count, x.Count); c != 0 {
			return c
		}
		return cmp.Compare(x.key(), y.key())
	})
	for i, n := range prefixCounts {
		if n > 0 {
			r.Prefixes = append(r.Prefixes, PrefixCount{names[i], n})
		}
	}
	sortPrefixes(r.Prefixes)
	r.TimeSpan = a.span.report()
	clock := a.span.clock()
	r.TopSources, r.TopNetworks, r.NonTeardown = a.who[groupOther].report(names, clock)
	r.TopTeardownSources, r.TopTeardownNetworks, r.Teardown = a.who[groupTeardown].report(names, clock)
	for _, e := range a.examples {
		r.UnparsedLines = append(r.UnparsedLines, UnparsedLine{e.input, e.line, e.reason, e.text})
	}
	if r.Series == nil {
		r.Series = []Series{}
	}
	if r.Prefixes == nil {
		r.Prefixes = []PrefixCount{}
	}
	if r.UnparsedLines == nil {
		r.UnparsedLines = []UnparsedLine{}
	}
	if r.Inputs == nil {
		r.Inputs = []InputReport{}
	}
	r.Verdict = verdict(r)
	return r
}

func sortPrefixes(p []PrefixCount) {
	slices.SortStableFunc(p, func(x, y PrefixCount) int {
		if c := cmp.Compare(y.Count, x.Count); c != 0 {
			return c
		}
		return cmp.Compare(x.Prefix, y.Prefix)
	})
}

// clock renders a stamp (aggregator.stamp) on the clock it was taken on,
// which its value tells: lines of one input may carry different clocks.
func (s *span) clock() clockOf {
	return renderStamp
}

func renderStamp(t time.Time) string {
	switch ns := t.UnixNano(); {
	case ns == math.MinInt64:
		return ""
	case t.Year() < 1971: // uptime: seconds since boot
		return strconv.FormatFloat(time.Duration(ns).Seconds(), 'f', 6, 64)
	case t.Year() == 2000: // a year-less syslog time
		return t.Format(syslogLayout)
	}
	return t.Format(time.RFC3339Nano)
}

const syslogLayout = "Jan _2 15:04:05.999999"

func (s Series) key() string {
	return strings.Join([]string{s.Class, s.Prefix, s.Family, s.Proto, s.Port, s.Side, s.Flags}, "\x00")
}

func (s *span) report() *TimeSpan {
	for _, k := range []logline.TimeKind{logline.TimeWall, logline.TimeNoYear} {
		if !s.have[k] {
			continue
		}
		f, l := s.first[k], s.last[k]
		ts := &TimeSpan{Seconds: l.Sub(f).Seconds()}
		if k == logline.TimeWall {
			ts.Clock, ts.First, ts.Last = "wall", f.Format(time.RFC3339Nano), l.Format(time.RFC3339Nano)
		} else {
			ts.Clock, ts.First, ts.Last = "syslog", f.Format(syslogLayout), l.Format(syslogLayout)
		}
		return ts
	}
	if s.have[logline.TimeUptime] {
		return &TimeSpan{
			Clock:   "uptime",
			First:   strconv.FormatFloat(s.firstUp.Seconds(), 'f', 6, 64),
			Last:    strconv.FormatFloat(s.lastUp.Seconds(), 'f', 6, 64),
			Seconds: (s.lastUp - s.firstUp).Seconds(),
		}
	}
	return nil
}

func writeJSON(w io.Writer, r *Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(r)
}

// thousands formats n with comma separators, as an operator reads counts.
func thousands(n uint64) string {
	s := strconv.FormatUint(n, 10)
	if len(s) <= 3 {
		return s
	}
	var b strings.Builder
	pre := len(s) % 3
	if pre > 0 {
		b.WriteString(s[:pre])
	}
	for i := pre; i < len(s); i += 3 {
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(s[i : i+3])
	}
	return b.String()
}

func share(n, total uint64) string {
	if total == 0 {
		return "-"
	}
	return strconv.FormatFloat(100*float64(n)/float64(total), 'f', 1, 64) + "%"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// maxRowsPerClass bounds the breakdown table; the JSON series list is complete.
const maxRowsPerClass = 10

// writeTable writes the report for a terminal; the verdict wraps at width.
func writeTable(w io.Writer, r *Report, width int) error {
	var b strings.Builder
	fmt.Fprintf(&b, "Packets classified: %s    lines not understood: %s    other lines ignored: %s\n",
		thousands(r.Total), thousands(r.Unparsed), thousands(r.Ignored))
	if r.NotKernel > 0 {
		fmt.Fprintf(&b, "Not counted: %s firewall-like lines written by other programs, not by the kernel\n", thousands(r.NotKernel))
	}
	for _, in := range r.Inputs {
		writeInput(&b, in)
	}
	if ts := r.TimeSpan; ts != nil {
		d := time.Duration(ts.Seconds * float64(time.Second)).Round(time.Millisecond)
		switch ts.Clock {
		case "uptime":
			fmt.Fprintf(&b, "Time span: %ss to %ss after boot (%s)\n", ts.First, ts.Last, d)
		default:
			fmt.Fprintf(&b, "Time span: %s to %s (%s)\n", ts.First, ts.Last, d)
		}
	} else {
		b.WriteString("Time span: unknown (no timestamps in the input)\n")
	}
	b.WriteString("\n")

	fmt.Fprintf(&b, "%-10s %12s %7s\n", "CLASS", "PACKETS", "SHARE")
	for _, c := range classify.ReportOrder {
		n := r.Classes[c.String()]
		fmt.Fprintf(&b, "%-10s %12s %7s\n", c, thousands(n), share(n, r.Total))
	}
	fmt.Fprintf(&b, "%-10s %12s %7s\n", "total", thousands(r.Total), share(r.Total, r.Total))

	// breakdown within each class: flags/port/side (and proto, family), summed over prefixes
	type row struct {
		proto, flags, port, side string
		n                        uint64
	}
	byClass := map[string][]row{}
	idx := map[string]int{}
	for _, s := range r.Series {
		k := s.Class + "\x00" + s.Proto + "\x00" + s.Flags + "\x00" + s.Port + "\x00" + s.Side
		if i, ok := idx[k]; ok {
			byClass[s.Class][i].n += s.Count
			continue
		}
		idx[k] = len(byClass[s.Class])
		byClass[s.Class] = append(byClass[s.Class], row{s.Proto, s.Flags, s.Port, s.Side, s.Count})
	}
	if len(r.Series) > 0 {
		b.WriteString("\nBy class, then protocol/flags/port/side (share of all packets):\n")
		tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "CLASS\tPROTO\tFLAGS\tPORT\tSIDE\tPACKETS\tSHARE")
		for _, c := range classify.ReportOrder {
			rows := byClass[c.String()]
			slices.SortStableFunc(rows, func(x, y row) int { return cmp.Compare(y.n, x.n) })
			for i, rw := range rows {
				if i == maxRowsPerClass {
					var rest uint64
					for _, x := range rows[i:] {
						rest += x.n
					}
					fmt.Fprintf(tw, "%s\t(%d more)\t\t\t\t%s\t%s\n", c, len(rows)-i, thousands(rest), share(rest, r.Total))
					break
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", c, rw.proto, orDash(rw.flags), orDash(rw.port), orDash(rw.side), thousands(rw.n), share(rw.n, r.Total))
			}
		}
		tw.Flush()
	}
	if len(r.Prefixes) > 0 {
		b.WriteString("\nTop prefixes:\n")
		tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "PREFIX\tPACKETS\tSHARE")
		for i, p := range r.Prefixes {
			if i == 10 {
				fmt.Fprintf(tw, "(%d more prefixes)\t\t\n", len(r.Prefixes)-i)
				break
			}
			fmt.Fprintf(tw, "%q\t%s\t%s\n", p.Prefix, thousands(p.Count), share(p.Count, r.Total))
		}
		tw.Flush()
	}
	writeWho(&b, "Drops other than teardown", r.NonTeardown, r.TopSources, r.TopNetworks, r.Total)
	writeWho(&b, "Teardown-shaped drops", r.Teardown, r.TopTeardownSources, r.TopTeardownNetworks, r.Total)
	if r.Unparsed > 0 {
		fmt.Fprintf(&b, "\nLines not understood: %s (first %d shown)\n", thousands(r.Unparsed), len(r.UnparsedLines))
		for _, u := range r.UnparsedLines {
			fmt.Fprintf(&b, "  %s:%d: %s: %s\n", escape([]byte(u.Input)), u.Line, u.Reason, u.Text) // Text is escaped already
		}
	}
	b.WriteString("\n")
	b.WriteString(wrap("Verdict: "+r.Verdict, width))
	b.WriteString("\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// writeInput writes one input's line of the table.
func writeInput(b *strings.Builder, in InputReport) {
	name := escape([]byte(in.Name))
	switch {
	case in.Error != "" && in.Lines == 0:
		fmt.Fprintf(b, "  %s: not read: %s\n", name, escape([]byte(in.Error)))
		return
	case in.NoEntries && in.Lines == in.JournalMeta:
		fmt.Fprintf(b, "  %s (%s): no entries\n", name, in.Format)
		return
	}
	unit := "lines"
	if in.Format == "pcap" || in.Format == "pcapng" {
		unit = "records"
	}
	fmt.Fprintf(b, "  %s (%s): %s %s, %s packets, %s unparsed, %s ignored",
		name, in.Format, thousands(in.Lines), unit, thousands(in.Packets), thousands(in.Unparsed), thousands(in.Ignored))
	if in.NotKernel > 0 {
		fmt.Fprintf(b, ", %s from other programs", thousands(in.NotKernel))
	}
	if in.JournalMeta > 0 {
		fmt.Fprintf(b, ", %s of journalctl's own (boots, headers)", thousands(in.JournalMeta))
	}
	if in.Error != "" {
		fmt.Fprintf(b, "; then: %s", escape([]byte(in.Error)))
	}
	b.WriteString("\n")
}

// wrap breaks s into lines of at most width columns at spaces (a longer
// word stays whole).
func wrap(s string, width int) string {
	if width < 20 {
		width = 20
	}
	var b strings.Builder
	col := 0
	for i, word := range strings.Fields(s) {
		n := utf8.RuneCountInString(word)
		if i > 0 {
			if col+1+n > width {
				b.WriteByte('\n')
				col = 0
			} else {
				b.WriteByte(' ')
				col++
			}
		}
		b.WriteString(word)
		col += n
	}
	return b.String()
}

// writeWho writes one group's sources, ports, interfaces and prefixes.
func writeWho(b *strings.Builder, title string, g Breakdown, addrs, nets []Source, total uint64) {
	if g.Packets == 0 {
		return
	}
	fmt.Fprintf(b, "\n%s: %s packets (%s of all)\n", title, thousands(g.Packets), share(g.Packets, total))
	for _, l := range []struct {
		name    string
		list    []Source
		acc     Accuracy
		exactly string
	}{
		{"Top sources", addrs, g.Sources, ""},
		{fmt.Sprintf("Top networks (/%d, /%d)", g.Networks.PrefixLengthIPv4, g.Networks.PrefixLengthIPv6), nets, g.Networks, ""},
	} {
		if len(l.list) == 0 {
			continue
		}
		fmt.Fprintf(b, "  %s, %s:\n", l.name, accuracyWords(l.acc))
		tw := tabwriter.NewWriter(b, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "    SOURCE\tPACKETS\tSHARE\tCLASSES\tDST PORTS\tFIRST SEEN\tLAST SEEN")
		for _, s := range l.list {
			fmt.Fprintf(tw, "    %s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.Source, thousands(s.Packets), share(s.Packets, g.Packets),
				classWords(s.Classes), portWordsList(s.Ports), orDash(s.FirstSeen), orDash(s.LastSeen))
		}
		tw.Flush()
	}
	if len(g.DstPorts.Entries) > 0 {
		var ps []string
		for _, p := range g.DstPorts.Entries {
			ps = append(ps, fmt.Sprintf("%s/%d %s", p.Proto, p.Port, thousands(p.Packets)))
		}
		fmt.Fprintf(b, "  Top destination ports (exact): %s\n", strings.Join(ps, ", "))
	}
	if len(g.Interfaces.Entries) > 0 {
		var is []string
		for _, i := range g.Interfaces.Entries {
			is = append(is, fmt.Sprintf("IN=%s OUT=%s %s", escape([]byte(i.In)), escape([]byte(i.Out)), thousands(i.Packets)))
		}
		ex := "exact"
		if !g.Interfaces.Exact {
			ex = fmt.Sprintf("%s packets on interfaces past the first %d not listed", thousands(g.Interfaces.Other), maxInterfaces)
		}
		fmt.Fprintf(b, "  Interfaces (%s): %s\n", ex, strings.Join(is, ", "))
	}
	if len(g.Prefixes.Entries) > 0 {
		var ps []string
		for i, p := range g.Prefixes.Entries {
			if i == 10 {
				ps = append(ps, fmt.Sprintf("(%d more)", len(g.Prefixes.Entries)-i))
				break
			}
			ps = append(ps, fmt.Sprintf("%q %s", p.Prefix, thousands(p.Count)))
		}
		fmt.Fprintf(b, "  Log prefixes (exact): %s\n", strings.Join(ps, ", "))
	}
}

func accuracyWords(a Accuracy) string {
	if a.Exact {
		return "exact"
	}
	return fmt.Sprintf("approximate (more than %d sources: a count may be over by up to its error, at most %s; no source not listed has more)",
		a.Capacity, thousands(a.ErrorBound))
}

func classWords(c map[string]uint64) string {
	var out []string
	for _, cl := range classify.ReportOrder {
		if n := c[cl.String()]; n > 0 {
			out = append(out, fmt.Sprintf("%s %s", cl, thousands(n)))
		}
	}
	return orDash(strings.Join(out, ", "))
}

func portWordsList(p []PortCount) string {
	var out []string
	for _, pc := range p {
		if pc.Error > 0 {
			// taken over from another port: between the guaranteed count and the count
			out = append(out, fmt.Sprintf("%d (%s-%s)", pc.Port, thousands(pc.Packets-pc.Error), thousands(pc.Packets)))
			continue
		}
		out = append(out, fmt.Sprintf("%d (%s)", pc.Port, thousands(pc.Packets)))
	}
	return orDash(strings.Join(out, ", "))
}
