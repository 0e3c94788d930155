#!/usr/bin/env bash
# Runs every fuzz target of the repository, each for FUZZTIME.
#
#   scripts/fuzz.sh              fuzz every target, one after the other
#   scripts/fuzz.sh --list       print the targets ("<module dir> <package> <Target>")
#   scripts/fuzz.sh REGEXP       fuzz only the targets whose "<package> <Target>" matches
#
# The targets are found, not listed by hand: every package of every module
# here (the server's, the wasm filter's, …) with a `func Fuzz…` in a test
# file is asked for its targets with `go test -list '^Fuzz'`, so a new
# target is fuzzed without anyone remembering to add it. Seeds are each
# package's testdata/fuzz/<Target>/ files; a failure leaves its input there
# (as Go does) and the script goes on with the other targets, then exits 1
# naming every target that failed.
#
# Environment: GO (go), FUZZTIME (20s; a duration or Nx), FUZZMINIMIZETIME (5s).
set -euo pipefail

cd "$(dirname "$0")/.."
GO=${GO:-go}
FUZZTIME=${FUZZTIME:-20s}
FUZZMINIMIZETIME=${FUZZMINIMIZETIME:-5s}

die() { echo "fuzz.sh: $*" >&2; exit 2; }

# targets prints "<module dir> <package> <Target>" for every fuzz target.
targets() {
	local dir mod rel pkg out name
	# Packages with a fuzz function in a test file (committed or not): a
	# cheap first cut, so that only those packages are compiled to be listed.
	for dir in $(git ls-files -z --cached --others --exclude-standard -- '*_test.go' |
		xargs -0 grep -l '^func Fuzz' | xargs -r -n1 dirname | sort -u); do
		mod=$dir
		while [ ! -f "$mod/go.mod" ]; do
			[ "$mod" != . ] || die "$dir: no go.mod above it"
			mod=$(dirname "$mod")
		done
		rel=${dir#"$mod"}
		pkg=./${rel#/}
		# go test -list is authoritative (build tags, a name that only looks
		# like a target); a package that does not compile stops the run.
		out=$("$GO" -C "$mod" test -list '^Fuzz' "$pkg" 2>&1) || die "listing the targets of $dir: $out"
		for name in $(grep '^Fuzz' <<<"$out" || true); do
			echo "$mod $pkg $name"
		done
	done
}

case "${1:-}" in
--list)
	targets
	exit 0
	;;
-*) die "unknown option $1 (expected --list or a regular expression)" ;;
esac
filter=${1:-}

list=$(targets)
[ -n "$list" ] || die "no fuzz targets found"
failed=()
summary=()
while read -r mod pkg name; do
	if [ -n "$filter" ] && ! grep -qE -- "$filter" <<<"$pkg $name"; then
		continue
	fi
	echo "== $pkg $name (module $mod, $FUZZTIME)"
	log=$(mktemp)
	if "$GO" -C "$mod" test -run '^$' -fuzz "^$name\$" -fuzztime "$FUZZTIME" -fuzzminimizetime "$FUZZMINIMIZETIME" "$pkg" 2>&1 | tee "$log"; then
		# The fuzzer's last progress line: "fuzz: elapsed: 20s, execs: 123 (…/sec), new interesting: …".
		summary+=("ok   $pkg $name: $(grep -o 'execs: [0-9]*' "$log" | tail -n1)")
	else
		failed+=("$pkg $name")
		summary+=("FAIL $pkg $name")
	fi
	rm -f "$log"
done <<<"$list"

echo
echo "== fuzz summary ($FUZZTIME each)"
printf '%s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
	echo "fuzz.sh: ${#failed[@]} target(s) failed; their inputs are under the packages' testdata/fuzz/" >&2
	exit 1
fi
