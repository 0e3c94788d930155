#!/usr/bin/env bash
# The TypeScript SDK's checks (sdk/typescript, docs/sdk.md): its dev dependencies
# from the committed package-lock.json (npm ci, skipped when node_modules already
# holds that lock's), tsc on the type declarations, then node --test: the unit
# tests and the conformance table against a real `meshguard serve`
# (MESHGUARD_BIN, default bin/meshguard: `make build` first).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root/sdk/typescript"

major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$major" -lt 18 ]; then
  echo "sdk-typescript: Node.js 18 or later is needed (found: $(node --version 2>/dev/null || echo none))" >&2
  exit 1
fi
export MESHGUARD_BIN=${MESHGUARD_BIN:-$root/bin/meshguard}
if [ ! -x "$MESHGUARD_BIN" ]; then
  echo "sdk-typescript: no meshguard binary at $MESHGUARD_BIN (run make build, or set MESHGUARD_BIN)" >&2
  exit 1
fi

stamp=node_modules/.meshguard-lock.sha256
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  npm ci --no-audit --no-fund
  echo "$want" >"$stamp"
fi

node_modules/.bin/tsc -p tsconfig.json
node --test test/*.test.js
