# Shared by the install scripts of deploy/firewall (sourced, POSIX sh). The
# scripts set prog (their name, for messages) and read changed.
# shellcheck disable=SC2154,SC2034

# check_group N: exits with status 2 unless N is an NFLOG group 0..65535;
# prints it without leading zeros.
check_group() {
	case $1 in
	'' | *[!0-9]*) echo "$prog: --group must be a number 0..65535, not '$1'" >&2; exit 2 ;;
	esac
	if [ "${#1}" -gt 5 ] || [ "$1" -gt 65535 ]; then
		echo "$prog: --group must be a number 0..65535, not '$1'" >&2
		exit 2
	fi
	echo $(($1 + 0))
}

# rewrite FILE CMD [ARG...]: runs CMD ARG... (which prints the new content of
# FILE) and replaces FILE with its output, atomically and keeping FILE's mode
# and owner, unless the content is the same: then FILE is not touched. A
# missing final newline stays missing (awk ends every line with one). Sets
# changed=1 when FILE was replaced.
rewrite_tmp=
rewrite() {
	_f=$1
	shift
	rewrite_tmp=$(mktemp "$_f.nfdrop.XXXXXX")
	"$@" >"$rewrite_tmp"
	if [ -s "$_f" ] && [ -n "$(tail -c 1 "$_f")" ] && [ -s "$rewrite_tmp" ]; then
		truncate -s -1 "$rewrite_tmp"
	fi
	if cmp -s "$rewrite_tmp" "$_f"; then
		rm -f "$rewrite_tmp"
	else
		chmod --reference="$_f" "$rewrite_tmp"
		chown --reference="$_f" "$rewrite_tmp"
		mv -f "$rewrite_tmp" "$_f"
		changed=1
		echo "$prog: updated $_f"
	fi
	rewrite_tmp=
}

rewrite_cleanup() { [ -z "$rewrite_tmp" ] || rm -f "$rewrite_tmp"; }
trap rewrite_cleanup EXIT
trap 'exit 1' HUP INT TERM
