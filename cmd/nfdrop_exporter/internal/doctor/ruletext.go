package doctor

import (
	"bufio"
	"context"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/nfdrop/nfdrop_exporter/collector/ruleset"
)

// RuleText gives a rule's text as the operator writes it, so that a fix can
// repeat the drop's own matches. Either answer may be missing ("", false):
// the fix is then written without them.
type RuleText interface {
	// Iptables is the iptables-save line of a rule of an iptables-nft
	// table: "-A CHAIN matches -j TARGET".
	Iptables(r *ruleset.Rule) (string, bool)
	// Nft is the rule as nft lists it, without its handle comment.
	Nft(r *ruleset.Rule) (string, bool)
}

// Commands reads rule texts from iptables-nft-save, ip6tables-nft-save and
// nft -a list ruleset, run in the caller's namespace, each once and only
// when a fix needs it. Missing programs leave the texts missing.
type Commands struct {
	Timeout time.Duration // per program; 0: 5s

	ipt  map[ruleset.Family]iptablesSave
	nft  nftList
	done map[string]bool
}

func (c *Commands) run(name string, args ...string) (string, bool) {
	t := c.Timeout
	if t <= 0 {
		t = 5 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), t)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).Output()
	return string(out), err == nil
}

// Iptables implements RuleText.
func (c *Commands) Iptables(r *ruleset.Rule) (string, bool) {
	fam := r.Chain.Table.Family
	if c.done == nil {
		c.done, c.ipt = map[string]bool{}, map[ruleset.Family]iptablesSave{}
	}
	key := "ipt-" + fam.String()
	if !c.done[key] {
		c.done[key] = true
		var progs []string
		switch fam {
		case ruleset.FamilyIP:
			progs = []string{"iptables-nft-save", "iptables-save"}
		case ruleset.FamilyIP6:
			progs = []string{"ip6tables-nft-save", "ip6tables-save"}
		}
		for _, p := range progs {
			out, ok := c.run(p)
			// iptables-save may be the legacy one, which shows other rules.
			if ok && strings.Contains(out, "(nf_tables)") {
				c.ipt[fam] = ParseIptablesSave(out)
				break
			}
		}
	}
	return c.ipt[fam].line(r)
}

// Nft implements RuleText.
func (c *Commands) Nft(r *ruleset.Rule) (string, bool) {
	if c.done == nil {
		c.done, c.ipt = map[string]bool{}, map[ruleset.Family]iptablesSave{}
	}
	if !c.done["nft"] {
		c.done["nft"] = true
		if out, ok := c.run("nft", "-a", "list", "ruleset"); ok {
			c.nft = ParseNftList(out)
		}
	}
	t := r.Chain.Table
	s, ok := c.nft[nftKey{t.Family.String(), t.Name, r.Chain.Name, r.Handle}]
	return s, ok
}

// iptablesSave holds iptables-save's rule lines per table and chain, in order.
type iptablesSave map[[2]string][]string

// ParseIptablesSave reads iptables-save output.
func ParseIptablesSave(out string) iptablesSave {
	s := iptablesSave{}
	table := ""
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "*"):
			table = line[1:]
		case strings.HasPrefix(line, "-A "):
			chain, _, _ := strings.Cut(line[3:], " ")
			k := [2]string{table, chain}
			s[k] = append(s[k], line)
		}
	}
	return s
}

// line is rule r's line, if the chain has as many lines as rules (else the
// ruleset changed between the two reads).
func (s iptablesSave) line(r *ruleset.Rule) (string, bool) {
	lines := s[[2]string{r.Chain.Table.Name, r.Chain.Name}]
	if len(lines) != len(r.Chain.Rules) || r.Index >= len(lines) {
		return "", false
	}
	return lines[r.Index], true
}

type nftKey struct {
	family, table, chain string
	handle               uint64
}

type nftList map[nftKey]string

// ParseNftList reads "nft -a list ruleset" output: the rules of each chain
// with their "# handle N" comments.
func ParseNftList(out string) nftList {
	l := nftList{}
	var family, table, chain string
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		fields := strings.Fields(line)
		switch {
		case len(fields) >= 3 && fields[0] == "table":
			family, table, chain = fields[1], unquote(fields[2]), ""
		case len(fields) >= 2 && fields[0] == "chain" && table != "":
			chain = unquote(fields[1])
		case line == "}" || line == "":
		case chain != "":
			text, h, ok := strings.Cut(line, " # handle ")
			if !ok {
				continue
			}
			n, err := strconv.ParseUint(strings.TrimSpace(h), 10, 64)
			if err != nil {
				continue
			}
			l[nftKey{family, table, chain, n}] = strings.TrimSpace(text)
		}
	}
	return l
}

func unquote(s string) string {
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		return s[1 : len(s)-1]
	}
	return s
}

// iptablesComment is a comment match as iptables-save writes it.
var iptablesComment = regexp.MustCompile(` -m comment --comment (?:"(?:[^"\\]|\\.)*"|[^" ]\S*)`)

// iptablesMatches is the match part of an iptables-save line: what lies
// between "-A CHAIN" and the target ("-j" or "-g"), without the rule's
// comment, which describes the drop rule and not a log rule in front.
func iptablesMatches(line string) string {
	line = iptablesComment.ReplaceAllString(line, "")
	f := strings.Fields(line)
	if len(f) < 2 || f[0] != "-A" {
		return ""
	}
	f = f[2:]
	for i := len(f) - 1; i >= 0; i-- {
		if f[i] == "-j" || f[i] == "-g" {
			f = f[:i]
			break
		}
	}
	return strings.Join(f, " ")
}

// nftStatements start the statement part of a rule as nft lists it.
var nftStatements = map[string]bool{
	"counter": true, "log": true, "limit": true, "drop": true, "reject": true, "accept": true,
	"queue": true, "jump": true, "goto": true, "return": true, "continue": true, "notrack": true,
	"meter": true, "quota": true,
}

// nftMatches is the match part of a rule as nft lists it: the words before
// its first statement.
func nftMatches(text string) string {
	words := strings.Fields(text)
	for i, w := range words {
		if nftStatements[w] {
			return strings.Join(words[:i], " ")
		}
	}
	return strings.Join(words, " ")
}
