# nflog-nft.awk: makes every drop of an nftables ruleset file (nft -f syntax)
# log to NFLOG for nfdrop_exporter first, or (uninstall=1) takes that out
# again. Used by nftables/install.
#
# Variables (awk -v):
#   mode       "conf": print the edited file; "include": print the rules for
#              the policy drops (the include file)
#   group      NFLOG group
#   uninstall  1: only remove what this program added
#   include    path of the include file ("conf" mode adds an include line
#              for it at the end when there are policy drops)
#   file       the file's name, for messages
#
# A rule whose last statement is "drop" or "reject [with ...]" (optionally
# followed by a comment) gets
#   log group N prefix "nft-CHAIN" snaplen 256 counter
# right before that verdict, so it logs exactly the packets the rule drops,
# whatever stateful statements (limit, quota) come first. A base chain with
# "policy drop" gets a rule at its end, in the include file, which the
# include line (the file's last line) appends after everything else. Only
# tables of the families ip, ip6 and inet are edited.

function trim(s) {
	sub(/^[ \t]+/, "", s)
	sub(/[ \t]+$/, "", s)
	return s
}

# strip(s): s without what this program inserted (in its own spelling and in
# the one `nft list ruleset` prints).
function strip(s,    out, re, m, v) {
	re = "log (group [0-9]+ prefix \"nft-[^\"]*\"|prefix \"nft-[^\"]*\" group [0-9]+) snaplen 256 counter( packets [0-9]+ bytes [0-9]+)? (drop|reject)"
	out = ""
	while (match(s, re)) {
		m = substr(s, RSTART, RLENGTH)
		v = (m ~ /drop$/) ? 4 : 6
		out = out substr(s, 1, RSTART - 1) substr(m, RLENGTH - v + 1)
		s = substr(s, RSTART + RLENGTH)
	}
	return out s
}

function isfamily(w) {
	return w == "ip" || w == "ip6" || w == "inet" || w == "arp" || w == "bridge" || w == "netdev"
}

function warn(msg) {
	printf "warning: %s: %s\n", file, msg > "/dev/stderr"
}

# A statement at chain level ended: stext is its text (without comments),
# and the part of it on the current line starts at column scol.
function endstmt(    w, n, col, pre, t, name) {
	t = trim(stext)
	stext = ""
	if (t == "" || depth != cdepth) return
	n = split(t, w, /[ \t]+/)
	if (w[1] == "type" || w[1] == "hook" || w[1] == "devices" || w[1] == "comment" || w[1] == "flags") {
		if (t ~ /(^|[ \t;])policy[ \t]+drop([ \t;]|$)/) policy[cfam SUBSEP ctable SUBSEP cname] = 1
		return
	}
	if (w[1] == "policy") {
		if (w[2] == "drop") policy[cfam SUBSEP ctable SUBSEP cname] = 1
		return
	}
	# The verdict: the last "drop" or "reject" word on this line, followed
	# only by a reject type and a comment.
	pre = substr(cur, scol, ecol - scol)
	if (!match(pre, /(^|[ \t}])(drop|reject)([ \t]+with[ \t]+[a-z0-9]+([ \t]+type)?([ \t]+[a-z0-9-]+)?)?([ \t]+comment[ \t]+"[^"]*")?[ \t]*$/)) return
	col = RSTART
	if (substr(pre, col, 1) !~ /[dr]/) col++
	if (!(cfam == "ip" || cfam == "ip6" || cfam == "inet")) {
		warn("a drop in table " cfam " " ctable " is left alone (NFLOG from " cfam " tables is not supported): " t)
		return
	}
	name = (t ~ /ct state invalid/) ? "nft-invalid" : "nft-" cname
	ins[++nins] = scol + col - 1
	insname[nins] = name
}

# header(h): a block opens; h is the text before "{".
function openblock(h,    w, n, k) {
	h = trim(h)
	n = split(h, w, /[ \t]+/)
	depth++
	kind[depth] = "other"
	if (depth == 1 && w[1] == "table") {
		kind[depth] = "table"
		if (n >= 3) { tfam = w[2]; tname = w[3] } else { tfam = "ip"; tname = w[2] }
		return
	}
	if (depth == 2 && kind[1] == "table" && w[1] == "chain") {
		kind[depth] = "chain"
		cfam = tfam; ctable = tname; cname = w[2]; cdepth = depth
		return
	}
	if (depth == 1 && (w[1] == "add" || w[1] == "create") && w[2] == "chain") {
		kind[depth] = "chain"
		k = 3
		if (isfamily(w[k])) { cfam = w[k]; k++ } else cfam = "ip"
		ctable = w[k]; cname = w[k + 1]; cdepth = depth
		return
	}
	if (depth == 1 && (w[1] == "add" || w[1] == "insert") && w[2] == "rule") kind[depth] = "expr"
	if (depth > 1 && (kind[depth - 1] == "chain" || kind[depth - 1] == "expr")) kind[depth] = "expr"
}

function closeblock() {
	if (kind[depth] == "chain") { stext = ""; cdepth = -1 }
	depth--
}

# A top-level "add rule"/"insert rule" command: treated like a rule of the
# chain it names.
function toplevel(t,    w, n, k) {
	n = split(trim(t), w, /[ \t]+/)
	if (!((w[1] == "add" || w[1] == "insert") && w[2] == "rule")) return 0
	k = 3
	if (isfamily(w[k])) { cfam = w[k]; k++ } else cfam = "ip"
	ctable = w[k]; cname = w[k + 1]
	return 1
}

BEGIN { depth = 0; cdepth = -1; instr = 0; nincl = 0 }

{
	if ($0 ~ /^include "[^"]*" # nfdrop_exporter$/) next
	# a policy rule of the include file, as `nft list ruleset` prints it
	if ($0 ~ /^[ \t]*log (group [0-9]+ prefix "nft-policy-[^"]*"|prefix "nft-policy-[^"]*" group [0-9]+) snaplen 256 counter( packets [0-9]+ bytes [0-9]+)? comment "nfdrop_exporter"[ \t]*$/) next
	cur = strip($0)
	nins = 0
	scol = 1
	L = length(cur)
	for (i = 1; i <= L; i++) {
		c = substr(cur, i, 1)
		if (instr) {
			stext = stext c
			if (c == "\\") { i++; stext = stext substr(cur, i, 1); continue }
			if (c == "\"") instr = 0
			continue
		}
		if (c == "\"") { instr = 1; stext = stext c; continue }
		if (c == "#") break
		if (c == "{") {
			openblock(stext)
			if (kind[depth] == "expr") stext = stext c
			else { stext = ""; scol = i + 1 }
			continue
		}
		if (c == "}") {
			if (kind[depth] == "expr") { closeblock(); stext = stext c; continue }
			ecol = i
			if (depth == cdepth) endstmt()
			closeblock(); stext = ""; scol = i + 1
			continue
		}
		if (c == ";") {
			ecol = i
			if (depth == cdepth) endstmt()
			else if (depth == 0 && toplevel(stext)) { cdepth = 0; endstmt(); cdepth = -1 }
			stext = ""; scol = i + 1
			continue
		}
		stext = stext c
	}
	ecol = i
	if (!instr) {
		if (depth == cdepth) endstmt()
		else if (depth == 0) {
			if (toplevel(stext)) { cdepth = 0; endstmt(); cdepth = -1 }
			else if (trim(stext) ~ /^include[ \t]/) nincl++
			stext = ""
		}
	}
	if (!uninstall) {
		# insert from right to left so that earlier columns stay valid
		for (k = nins; k >= 1; k--)
			cur = substr(cur, 1, ins[k] - 1) "log group " group " prefix \"" insname[k] "\" snaplen 256 counter " substr(cur, ins[k])
	}
	if (mode == "conf") print cur
}

END {
	n = 0
	for (key in policy) {
		split(key, p, SUBSEP)
		if (!(p[1] == "ip" || p[1] == "ip6" || p[1] == "inet")) {
			warn("policy drop of chain " p[1] " " p[2] " " p[3] " is left alone (NFLOG from " p[1] " tables is not supported)")
			continue
		}
		line[++n] = "add rule " p[1] " " p[2] " " p[3] " log group " group " prefix \"nft-policy-" p[3] "\" snaplen 256 counter comment \"nfdrop_exporter\""
	}
	# a stable order: sort the lines
	for (a = 2; a <= n; a++) for (b = a; b > 1 && line[b - 1] > line[b]; b--) { t = line[b]; line[b] = line[b - 1]; line[b - 1] = t }
	if (nincl > 0 && mode == "conf" && !uninstall)
		warn("drops in included files are not edited: run this on them too")
	if (uninstall || n == 0) exit 0
	if (mode == "conf") print "include \"" include "\" # nfdrop_exporter"
	else {
		print "# Written by nfdrop_exporter's deploy/firewall/nftables/install: NFLOG for the"
		print "# policy drops of " file " (included at its end; --uninstall removes both)."
		for (a = 1; a <= n; a++) print line[a]
	}
}
