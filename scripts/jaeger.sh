#!/usr/bin/env bash
# Builds the Jaeger v2 binary used by the tracing end-to-end tests and prints its path.
#
# The build takes minutes, so the binary is cached outside the repository, keyed by
# version: a fresh worktree or `git clean` must not pay for it again, and bumping the
# version in tools/jaeger/go.mod (and JAEGER_VERSION below) gives a new cache entry
# instead of silently reusing the old binary. Only the path goes to stdout, so callers
# can do `bin=$(scripts/jaeger.sh)`; progress goes to stderr.
set -euo pipefail

# Must match the version required in tools/jaeger/go.mod and jaegertest.Version.
JAEGER_VERSION=v1.76.0
GO=${GO:-go}

repo=$(cd "$(dirname "$0")/.." && pwd)
# telemetry/jaegertest looks in the same place when MESHGUARD_JAEGER_BIN is unset.
dir=${XDG_CACHE_HOME:-$HOME/.cache}/meshguard/jaeger-$JAEGER_VERSION
out=$dir/jaeger

# `jaeger version` prints JSON with the version stamped in by -ldflags below. A cached
# binary is reused only if it runs and reports the expected version, so a truncated
# copy or one from another architecture or version gets rebuilt.
runs() {
	local v
	v=$("$1" version 2>/dev/null) && [[ $v == *"\"gitVersion\":\"$JAEGER_VERSION\""* ]]
}

if [ -x "$out" ] && runs "$out"; then
	echo "$out"
	exit 0
fi

tooldir=$repo/tools/jaeger
# The tool module is built on its own, whatever go.work a developer may have around it.
export GOWORK=off
want=$(cd "$tooldir" && "$GO" list -m -f '{{.Version}}' github.com/jaegertracing/jaeger)
if [ "$want" != "$JAEGER_VERSION" ]; then
	echo "jaeger.sh: tools/jaeger/go.mod requires $want but the script caches $JAEGER_VERSION; update JAEGER_VERSION" >&2
	exit 1
fi

mkdir -p "$dir"
echo "jaeger.sh: building jaeger $JAEGER_VERSION into $out (takes several minutes the first time)" >&2
start=$(date +%s)
# Build into a temporary name and rename, so an interrupted build never leaves a
# half-written binary at the cached path (and two concurrent runs don't clobber it).
tmp=$(mktemp -d "$dir/build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# Upstream stamps the version at link time; without it `jaeger version` is empty.
(cd "$tooldir" && "$GO" build -o "$tmp/jaeger" \
	-ldflags "-X github.com/jaegertracing/jaeger/internal/version.latestVersion=$JAEGER_VERSION" \
	github.com/jaegertracing/jaeger/cmd/jaeger)
if ! runs "$tmp/jaeger"; then
	echo "jaeger.sh: the freshly built $tmp/jaeger does not report version $JAEGER_VERSION" >&2
	exit 1
fi
mv -f "$tmp/jaeger" "$out"
echo "jaeger.sh: built in $(($(date +%s) - start))s" >&2
echo "$out"
