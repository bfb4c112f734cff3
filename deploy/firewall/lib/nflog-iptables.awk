# nflog-iptables.awk: puts an NFLOG rule for nfdrop_exporter in front of every
# drop of an iptables-restore file, or (uninstall=1) takes them out again.
# Used by ufw/install and netfilter-persistent/install.
#
# Variables (awk -v):
#   flavor     "ufw" (ufw's before/after rules files) or "plain" (a whole
#              saved ruleset, /etc/iptables/rules.v4 or rules.v6)
#   group      NFLOG group
#   uninstall  1: only remove the lines this program added
#   file       the file's name, for messages
# ufw only:
#   after      1 for after.rules/after6.rules (they get the policy rules)
#   fam        "ufw" or "ufw6": the chain prefix of the file
#   pin, pfwd, pout  "drop" or "accept": ufw's default policy per direction
#
# Every added line is an -A rule carrying "-m comment --comment
# nfdrop_exporter -j NFLOG"; any such line (in this program's spelling or
# in iptables-save's) is removed before the new ones are added, so a second
# run changes nothing and uninstall gives back the file as it was.

# tokens(s): splits s at blanks outside double quotes into tok[1..n], with
# the start offset of each token in pos[]; returns n.
function tokens(s,    i, c, q, n, intok) {
	n = 0; q = 0; intok = 0
	for (i = 1; i <= length(s); i++) {
		c = substr(s, i, 1)
		if (!q && (c == " " || c == "\t")) {
			intok = 0
			continue
		}
		if (!intok) {
			n++; tok[n] = ""; pos[n] = i; intok = 1
		}
		if (c == "\"") q = !q
		tok[n] = tok[n] c
	}
	for (i = n + 1; i <= n + 3; i++) tok[i] = ""
	return n
}

function suffix(prefix) {
	return " -m comment --comment nfdrop_exporter -j NFLOG --nflog-group " group \
		" --nflog-prefix " prefix " --nflog-size 256"
}

# ours(s): s is a line this program added (or iptables-save's rendering of
# one: it drops "--nflog-group 0" and may reorder nothing else).
function ours(s) {
	return s ~ /^(\[[0-9]+:[0-9]+\][ \t]+)?-A[ \t]+[^ \t]+[ \t].*-m comment --comment "?nfdrop_exporter"? -j NFLOG /
}

function dirpolicy(d) {
	return d == "input" ? pin : d == "forward" ? pfwd : d == "output" ? pout : ""
}

function warn(s, why) {
	printf "warning: %s: not preceded by an NFLOG rule (%s): %s\n", file, why, s > "/dev/stderr"
}

# prefixname(chain, invalid, rh0): the NFLOG prefix of a drop in chain.
function prefixname(chain, invalid, rh0,    name) {
	if (flavor == "ufw") {
		if (invalid) return "ufw-invalid"
		if (rh0) return "ufw-rh0"
		if (chain ~ /^ufw6?-not-local$/) return "ufw-not-local"
		name = chain
		sub(/^ufw6?-/, "", name)
		return (table == "filter" ? "ufw-" : "ufw-" table "-") name
	}
	if (invalid) return (table == "filter" ? "ipt-invalid" : "ipt-" table "-invalid")
	name = tolower(chain)
	return (table == "filter" ? "ipt-" : "ipt-" table "-") name
}

# nflog(s): the NFLOG line to put in front of line s, or "" if s is not a
# drop (or is one this program cannot precede; it then warns).
function nflog(s,    n, i, j, f, chain, target, d, invalid, rh0, x) {
	n = tokens(s)
	f = 1
	if (tok[1] ~ /^\[[0-9]+:[0-9]+\]$/) f = 2
	if (n < f + 3 || (tok[f] != "-A" && tok[f] != "--append")) return ""
	chain = tok[f + 1]
	j = 0
	for (i = f + 2; i < n; i++) if (tok[i] == "-j" || tok[i] == "--jump") { j = i; break }
	if (!j) return ""
	target = tok[j + 1]
	if (flavor == "ufw" && target ~ /^ufw6?-skip-to-policy-(input|forward|output)$/) {
		d = target
		sub(/^ufw6?-skip-to-policy-/, "", d)
		if (dirpolicy(d) != "drop") return ""
	} else if (target != "DROP" && target != "REJECT") {
		return ""
	}
	# Target options: REJECT takes --reject-with; anything else after the
	# target is not understood here.
	i = j + 2
	if (target == "REJECT" && tok[i] == "--reject-with") i += 2
	if (i <= n) {
		warn(s, "options after the target")
		return ""
	}
	invalid = 0; rh0 = 0
	for (i = f + 2; i < j; i++) {
		if ((tok[i] == "-m" || tok[i] == "--match") && tok[i + 1] ~ /^(limit|hashlimit|recent|statistic|quota|nth|connbytes)$/) {
			warn(s, "match \"" tok[i + 1] "\" keeps state; a copy of it in the NFLOG rule would change what both rules match")
			return ""
		}
		if ((tok[i] == "--ctstate" || tok[i] == "--state") && tok[i + 1] ~ /INVALID/) invalid = 1
		if (tok[i] == "--rt-type" && tok[i + 1] == "0") rh0 = 1
	}
	x = substr(s, pos[f], pos[j] - pos[f])
	sub(/[ \t]+$/, "", x)
	if (flavor == "ufw" && target ~ /skip-to-policy/) return x suffix("ufw-noise")
	return x suffix(prefixname(chain, invalid, rh0))
}

{ line[NR] = $0 }

END {
	# Where policy rules go: before the COMMIT of a table section, for the
	# base chains that section declares with policy DROP (plain), or before
	# the COMMIT of the last *filter section of an after file (ufw).
	table = ""; lastfilter = 0
	for (k = 1; k <= NR; k++) {
		if (line[k] ~ /^\*/) { table = substr(line[k], 2); sub(/[ \t]+$/, "", table) }
		if (line[k] ~ /^COMMIT[ \t]*$/ && table == "filter") lastfilter = k
	}
	table = ""; npol = 0
	for (k = 1; k <= NR; k++) {
		s = line[k]
		if (ours(s)) continue
		if (s ~ /^\*/) { table = substr(s, 2); sub(/[ \t]+$/, "", table); npol = 0 }
		if (!uninstall && flavor == "plain" && table != "nat" && s ~ /^:[A-Z]+ DROP( |$)/) {
			npol++
			pol[npol] = substr(s, 2, index(s, " ") - 2)
		}
		if (!uninstall && s ~ /^COMMIT[ \t]*$/) {
			if (flavor == "plain")
				for (p = 1; p <= npol; p++)
					print "-A " pol[p] suffix((table == "filter" ? "ipt-" : "ipt-" table "-") "policy-" tolower(pol[p]))
			if (flavor == "ufw" && after && k == lastfilter) {
				if (pin == "drop") print "-A " fam "-after-input" suffix("ufw-policy-input")
				if (pfwd == "drop") print "-A " fam "-after-forward" suffix("ufw-policy-forward")
				if (pout == "drop") print "-A " fam "-after-output" suffix("ufw-policy-output")
			}
		}
		if (!uninstall && table != "nat" && table != "") {
			x = nflog(s)
			if (x != "") print x
		}
		print s
	}
	if (flavor == "ufw" && after && !uninstall && !lastfilter) {
		printf "%s: no COMMIT line of a *filter section: cannot add the policy rules\n", file > "/dev/stderr"
		exit 1
	}
}
