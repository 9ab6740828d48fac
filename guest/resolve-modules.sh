#!/bin/sh
# Print, in load order, the module files (relative to lib/modules/KVER) needed for the
# modules named in LIST: each module's dependencies from modules.dep first, no duplicates.
#   guest/resolve-modules.sh KROOT KVER LIST
set -eu
kroot=${1:?usage: resolve-modules.sh KROOT KVER LIST}
kver=${2:?}
list=${3:?}
mdir="$kroot/lib/modules/$kver"
[ -f "$mdir/modules.dep" ] || { echo "resolve-modules.sh: $mdir/modules.dep missing (run depmod -b)" >&2; exit 1; }
[ -f "$mdir/modules.builtin" ] || : >"$mdir/modules.builtin"

# awk: read modules.dep into path->deps, names->path, then DFS each wanted name.
sed -e 's/#.*//' "$list" | awk -v mdir="$mdir" '
function norm(n) { gsub(/-/, "_", n); return n }
function base(p,   b) { b = p; sub(/.*\//, "", b); sub(/\.ko(\.[a-z]+)?$/, "", b); return norm(b) }
function visit(p,   n, i, d) {
	if (p in done) return
	if (p in visiting) { print "resolve-modules.sh: dependency loop at " p > "/dev/stderr"; exit 1 }
	visiting[p] = 1
	# modules.dep lists a module'"'"'s whole closure, deepest last: load from the end.
	n = split(deps[p], d, " ")
	for (i = n; i >= 1; i--) visit(d[i])
	done[p] = 1
	print p
}
BEGIN {
	while ((getline line < (mdir "/modules.dep")) > 0) {
		split(line, kv, ":")
		p = kv[1]; d = substr(line, length(p) + 2); sub(/^ +/, "", d)
		deps[p] = d; path[base(p)] = p
	}
	while ((getline line < (mdir "/modules.builtin")) > 0) builtin[base(line)] = 1
}
{
	for (i = 1; i <= NF; i++) {
		m = norm($i)
		if (m in builtin) { print "resolve-modules.sh: " m " is built in, skipped" > "/dev/stderr"; continue }
		if (!(m in path)) { print "resolve-modules.sh: no module " m " in " mdir > "/dev/stderr"; bad = 1; continue }
		visit(path[m])
	}
}
END { if (bad) exit 1 }
'
