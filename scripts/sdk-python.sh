#!/usr/bin/env bash
# The Python SDK's checks (sdk/python, docs/sdk.md): Pyright in strict mode at the
# package's Python 3.9 floor ([tool.pyright] in sdk/python/pyproject.toml), from
# the checker's own npm project sdk/python/typecheck (npm ci from its committed
# package-lock.json, skipped when node_modules already holds that lock's; never
# a dependency of the meshguard package), then python3 -m unittest: the unit
# tests and the conformance table against a real `meshguard serve`
# (MESHGUARD_BIN, default bin/meshguard: `make build` first).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$major" -lt 18 ]; then
  echo "sdk-python: Node.js 18 or later is needed for Pyright, the type checker (found: $(node --version 2>/dev/null || echo none))" >&2
  exit 1
fi
export MESHGUARD_BIN=${MESHGUARD_BIN:-$root/bin/meshguard}
if [ ! -x "$MESHGUARD_BIN" ]; then
  echo "sdk-python: no meshguard binary at $MESHGUARD_BIN (run make build, or set MESHGUARD_BIN)" >&2
  exit 1
fi

cd "$root/sdk/python/typecheck"
stamp=node_modules/.meshguard-lock.sha256
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  npm ci --no-audit --no-fund
  echo "$want" >"$stamp"
fi

cd "$root"
sdk/python/typecheck/node_modules/.bin/pyright -p sdk/python/pyproject.toml
python3 -m unittest discover -s sdk/python/tests
