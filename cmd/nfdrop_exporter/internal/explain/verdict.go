package explain

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/nfdrop/nfdrop_exporter/collector/classify"
)

// verdict writes the plain-language paragraph: each class with packets, largest
// first, with what it means for an operator and the flags/ports that make it up.
func verdict(r *Report) string {
	var parts []string
	if r.Total == 0 {
		var failed []string
		for _, in := range r.Inputs {
			if in.Error != "" {
				failed = append(failed, in.Name+" ("+in.Error+")")
			}
		}
		if len(failed) == len(r.Inputs) && len(failed) > 0 {
			return "Nothing was read: " + strings.Join(failed, "; ") + "."
		}
		s := "No dropped packets were found in the input."
		for _, in := range r.Inputs {
			if in.NoEntries {
				s = "No entries: journalctl had no messages to show (\"-- No entries --\"). journalctl -k shows the kernel messages of the current boot only (journalctl -k -b -1: the boot before; journalctl --list-boots lists them), and only those the journal kept; rsyslog's /var/log/kern.log may hold more."
				break
			}
		}
		if r.Unparsed > 0 {
			s += " " + unreadable(r.Unparsed)
		}
		if r.Ignored > 0 {
			s += fmt.Sprintf(" %s other lines were ignored: kernel LOG lines contain \"IN=<interface> OUT=\"; is this the right file?", thousands(r.Ignored))
		}
		return s
	}
	type classShare struct {
		class classify.Class
		n     uint64
	}
	var cs []classShare
	for _, c := range classify.ReportOrder {
		if n := r.Classes[c.String()]; n > 0 {
			cs = append(cs, classShare{c, n})
		}
	}
	slices.SortStableFunc(cs, func(x, y classShare) int { return cmp.Compare(y.n, x.n) })
	for i, c := range cs {
		pct := share(c.n, r.Total)
		lead := pct + " are "
		if i == 0 {
			lead = fmt.Sprintf("%s of %s drops are ", pct, thousands(r.Total))
			if c.n == r.Total {
				lead = fmt.Sprintf("All %s drops are ", thousands(r.Total))
			}
		}
		parts = append(parts, lead+describe(r, c.class)+".")
	}
	parts = append(parts, whoSentence(r)...)
	for _, in := range r.Inputs {
		if in.Format != "pcap" && in.Format != "pcapng" && in.Format != "ulogd-json" && in.Format != "ulogd-logemu" && in.Packets > 0 {
			parts = append(parts, "These counts come from LOG lines: a LOG rule is usually rate-limited (e.g. limit 15/min), so they are a sample of the drops, not their number; nfdrop_exporter counts every packet through NFLOG.")
			break
		}
	}
	if r.Unparsed > 0 {
		parts = append(parts, unreadable(r.Unparsed))
	}
	return strings.Join(parts, " ")
}

func describe(r *Report, class classify.Class) string {
	switch class {
	case classify.ClassTeardown:
		return "late TCP teardown (" + flagsAndPorts(r, class) + ") — harmless: the last packets of connections conntrack had already ended, marked INVALID, so they miss the ESTABLISHED rule and reach the final DROP (an nmap ACK scan has the same shape; the exporter's --conntrack.correlate tells them apart)"
	case classify.ClassHandshake:
		return "connection attempts (" + flagsAndPorts(r, class) + ") — blocked by the ruleset; expected unless these ports should be open"
	case classify.ClassProbe:
		return "crafted probes (" + flagsAndPorts(r, class) + ": flag combinations no TCP stack sends) — someone is scanning"
	case classify.ClassOther:
		return "not TCP (" + protosAndPorts(r, class) + ")"
	case classify.ClassFragment:
		return "non-first IP fragments (no transport header, so no ports or flags)"
	case classify.ClassMalformed:
		return "malformed packets (headers that could not be decoded or were cut short)"
	}
	return class.String()
}

// top returns the values of key over the series of class by packet count, at most n.
func top(r *Report, class classify.Class, n int, key func(Series) string) []string {
	counts := map[string]uint64{}
	for _, s := range r.Series {
		if s.Class == class.String() {
			counts[key(s)] += s.Count
		}
	}
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(x, y string) int {
		if c := cmp.Compare(counts[y], counts[x]); c != 0 {
			return c
		}
		return cmp.Compare(x, y)
	})
	if len(keys) > n {
		keys = keys[:n]
	}
	return keys
}

func flagsAndPorts(r *Report, class classify.Class) string {
	flags := top(r, class, 4, func(s Series) string { return s.Flags })
	return strings.Join(flags, " / ") + " " + portPhrase(r, class)
}

func protosAndPorts(r *Report, class classify.Class) string {
	protos := top(r, class, 3, func(s Series) string { return s.Proto })
	var out []string
	for _, p := range protos {
		ports := top(r, class, 3, func(s Series) string {
			if s.Proto != p || s.Port == "" {
				return ""
			}
			return s.Side + "\x00" + s.Port
		})
		ph := phrase(ports)
		if ph == "" {
			out = append(out, p)
		} else {
			out = append(out, p+" "+ph)
		}
	}
	return strings.Join(out, ", ")
}

// portPhrase says where the packets went: "to 443 and 80 from clients, from
// remote 443 (server side)".
func portPhrase(r *Report, class classify.Class) string {
	return phrase(top(r, class, 4, func(s Series) string { return s.Side + "\x00" + s.Port }))
}

func phrase(sidePorts []string) string {
	var client, server []string
	for _, sp := range sidePorts {
		side, port, _ := strings.Cut(sp, "\x00")
		switch {
		case port == "":
		case side == classify.SideClient.String():
			client = append(client, portWords(port))
		case side == classify.SideServer.String():
			server = append(server, portWords(port))
		}
	}
	var out []string
	if len(client) > 0 {
		out = append(out, "to "+and(client)+" from clients")
	}
	if len(server) > 0 {
		out = append(out, "from remote servers' "+and(server))
	}
	return strings.Join(out, ", and ")
}

// portWords turns a port label into words: a listed number stays, a range
// bucket becomes "user-range ports" and the like.
func portWords(p string) string {
	switch p {
	case classify.PortSystem, classify.PortUser, classify.PortDynamic:
		return p + "-range ports"
	}
	return p
}

func and(s []string) string {
	if len(s) == 1 {
		return s[0]
	}
	return strings.Join(s[:len(s)-1], ", ") + " and " + s[len(s)-1]
}

func unreadable(n uint64) string {
	if n == 1 {
		return "1 line looks like a firewall log line but could not be read (see above)."
	}
	return thousands(n) + " lines look like firewall log lines but could not be read (see above)."
}

// whoSentence names the heaviest sources of the drops that are not
// teardown: the ones worth a look.
func whoSentence(r *Report) []string {
	if r.NonTeardown.Packets == 0 || len(r.TopSources) == 0 {
		return nil
	}
	var names []string
	for i, s := range r.TopSources {
		if i == 3 {
			break
		}
		names = append(names, fmt.Sprintf("%s (%s)", s.Source, share(s.Packets, r.NonTeardown.Packets)))
	}
	out := []string{fmt.Sprintf("The %s drops that are not teardown came mostly from %s", thousands(r.NonTeardown.Packets), and(names))}
	if len(r.TopNetworks) > 0 && len(r.TopNetworks) < len(r.TopSources) || len(r.TopNetworks) > 0 && r.TopNetworks[0].Packets > r.TopSources[0].Packets {
		n := r.TopNetworks[0]
		out[0] += fmt.Sprintf("; the busiest network is %s (%s)", n.Source, share(n.Packets, r.NonTeardown.Packets))
	}
	if !r.NonTeardown.Sources.Exact {
		out[0] += " (approximate counts)"
	}
	out[0] += "."
	return out
}
