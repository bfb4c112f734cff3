package doctor

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"unicode"
)

// WriteJSON writes the report as one JSON object:
// {"managers": [...], "findings": [{"id", "severity", "family", "table",
// "chain", "packets", "fix", ...}], ...}.
func WriteJSON(w io.Writer, r Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteText writes the report for an operator: one line about the
// ruleset, one block per finding, and a last line with the counts and the
// exit status.
func WriteText(w io.Writer, r Report) error {
	var b strings.Builder
	b.WriteString("Firewall: ")
	if len(r.Managers) == 0 {
		b.WriteString("no nf_tables rules")
	}
	for i, m := range r.Managers {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s (%s)", m.Name, printable(strings.Join(m.Tables, ", ")))
	}
	fmt.Fprintf(&b, "\nRead %d tables, %d chains, %d rules (%d drop points)", r.Ruleset.Tables, r.Ruleset.Chains, r.Ruleset.Rules, r.Ruleset.DropPoints)
	if r.Ruleset.ReadMillis > 0 {
		fmt.Fprintf(&b, " in %.1f ms", r.Ruleset.ReadMillis)
	}
	fmt.Fprintf(&b, "; the exporter reads NFLOG group %s.\n", groupList(r.Groups))
	counts := map[Severity]int{}
	for _, f := range r.Findings {
		counts[f.Severity]++
		b.WriteByte('\n')
		fmt.Fprintf(&b, "%-7s %s", strings.ToUpper(string(f.Severity)), f.ID)
		if f.Chain != "" {
			fmt.Fprintf(&b, "  %s %s %s", f.Family, printable(f.Table), printable(f.Chain))
		} else if f.Family != "" {
			fmt.Fprintf(&b, "  %s", f.Family)
		}
		if f.Rule != nil {
			fmt.Fprintf(&b, " rule %d", *f.Rule)
		}
		if f.Manager != "" {
			fmt.Fprintf(&b, " (%s)", f.Manager)
		}
		switch {
		case f.Packets != nil:
			fmt.Fprintf(&b, "  packets: %d", *f.Packets)
		case strings.HasPrefix(f.ID, "drop-"):
			b.WriteString("  packets: not counted")
		}
		b.WriteByte('\n')
		indent(&b, "  ", "  ", f.Message)
		indent(&b, "  Fix: ", "       ", f.Fix)
	}
	fmt.Fprintf(&b, "\n%d errors, %d warnings, %d notes.", counts[Error], counts[Warning], counts[Info])
	if r.ExitCode() != 0 {
		b.WriteString(" Some drops are hidden from the exporter (exit status 1).\n")
	} else {
		b.WriteString(" Every drop point is seen by a log rule the exporter reads.\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// indent writes text with first before its first line and rest before the
// others.
func indent(b *strings.Builder, first, rest, text string) {
	for i, line := range strings.Split(text, "\n") {
		if i == 0 {
			b.WriteString(first)
		} else {
			b.WriteString(rest)
		}
		b.WriteString(printable(line))
		b.WriteByte('\n')
	}
}

// printable keeps a terminal safe from control characters in names: each
// becomes \xNN (or \uNNNN), and nothing else changes.
func printable(s string) string {
	clean := true
	for _, r := range s {
		if !unicode.IsPrint(r) && r != ' ' {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		switch {
		case unicode.IsPrint(r) || r == ' ':
			b.WriteRune(r)
		case r < 0x80:
			fmt.Fprintf(&b, `\x%02x`, r)
		default:
			fmt.Fprintf(&b, `\u%04x`, r)
		}
	}
	return b.String()
}
