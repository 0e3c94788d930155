#!/usr/bin/env bash
# Mutation testing (docs/mutation.md): runs gremlins on each package named (by default the
# five the decisions go through) and prints each package's score — mutants killed out of
# those the tests cover — then the survivors, so a weak test shows up as a line of code.
#
# It is slow (a build and a test run per mutant) and not part of `make test`.
#   MUTATE_WORKERS      parallel mutants (default 1: the machine is shared)
#   MUTATE_TIMEOUT      gremlins' --timeout-coefficient (default 50): a mutant's test run
#                       may take that many times the coverage run before it counts as timed
#                       out. The coverage run of a small package takes half a second, a
#                       mutant's run must also compile and link: with 10 on a loaded machine,
#                       389 of policy's 538 mutants "timed out" and were never judged.
#   MUTATE_OUT          where the JSON reports go (default bin/mutate)
set -euo pipefail

GREMLINS_VERSION=v0.6.0
GO=${GO:-go}

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
pkgs=("$@")
[ ${#pkgs[@]} -gt 0 ] || pkgs=(policy identity engine extauthz gateway)
workers=${MUTATE_WORKERS:-1}
coef=${MUTATE_TIMEOUT:-50}
out=${MUTATE_OUT:-$repo/bin/mutate}
mkdir -p "$out"

# Installed once per version outside the repository (gremlins copies the module into a
# work directory per worker, so nothing large may live in it); reused only if the binary
# says it was built from the expected version.
dir=${XDG_CACHE_HOME:-$HOME/.cache}/meshguard/gremlins-$GREMLINS_VERSION
gremlins=$dir/gremlins
if ! "$GO" version -m "$gremlins" 2>/dev/null | grep -q "github.com/go-gremlins/gremlins[[:space:]]*$GREMLINS_VERSION"; then
	echo "mutate.sh: installing gremlins $GREMLINS_VERSION into $dir" >&2
	GOBIN=$dir GOFLAGS= "$GO" install "github.com/go-gremlins/gremlins/cmd/gremlins@$GREMLINS_VERSION"
fi

# -count=1: gremlins sets each mutant's timeout from how long the coverage run took, and a
# cached test result makes that a fraction of a second, so every mutant would "time out".
export GOFLAGS="${GOFLAGS:+$GOFLAGS }-count=1"

summary=()
for p in "${pkgs[@]}"; do
	p=${p#./}
	echo "== $p" >&2
	start=$(date +%s)
	# Test-support subpackages (enginetest, storetest, …) have no tests of their own.
	"$gremlins" unleash --workers "$workers" --timeout-coefficient "$coef" \
		--exclude-files '(^|/)[a-z]+test/[^/]+\.go$' \
		--output-statuses l -o "$out/$p.json" "./$p" >&2
	secs=$(($(date +%s) - start))
	summary+=("$(jq -r --arg p "$p" --arg s "$secs" '
		[.files[].mutations[].status] as $st
		| ($st | map(select(. == "KILLED")) | length) as $k
		| ($st | map(select(. == "LIVED")) | length) as $l
		| ($st | map(select(. == "TIMED OUT")) | length) as $t
		| ($st | map(select(. == "NOT VIABLE")) | length) as $v
		| .mutants_not_covered as $n
		| [$p, $k, $l, $t, $v, $n,
		   (if $k + $l > 0 then (1000 * $k / ($k + $l) | floor) / 10 | tostring + "%" else "-" end),
		   $s + "s"] | @tsv' "$out/$p.json")")
done

echo
{
	printf 'package\tkilled\tlived\ttimed out\tnot viable\tnot covered\tscore\ttime\n'
	printf '%s\n' "${summary[@]}"
} | column -t -s $'\t'
echo
echo "score = killed / (killed + lived), of the mutants some test covers; reports in $out"
