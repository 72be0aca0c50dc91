#!/usr/bin/env bash
# Runs the TypeScript SDK's tests (unit + end to end against a real sdbx
# server built from this repository; see scripts/run-tests.mjs). Installs
# the npm dependencies first (npm ci) when node_modules is missing or older
# than package-lock.json. Extra arguments are test files to run instead of
# all of them. Needs Node.js >= 18, npm and Go; root for real sandboxes.
set -euo pipefail
cd "$(dirname "$0")/.."

for tool in node npm go; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "sdk/typescript: $tool not found (needed by the SDK's tests)" >&2
    exit 1
  fi
done
major=$(node -p 'process.versions.node.split(".")[0]')
if ((major < 18)); then
  echo "sdk/typescript: Node.js >= 18 needed, found $(node --version)" >&2
  exit 1
fi

if [[ ! -f node_modules/.package-lock.json || package-lock.json -nt node_modules/.package-lock.json ]]; then
  npm ci --no-audit --no-fund
fi
exec npm test -- "$@"
