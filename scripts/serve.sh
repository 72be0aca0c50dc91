#!/usr/bin/env bash
# Builds sdbx and runs the server on its embedded defaults (:3000, state in
# /var/lib/sdbx). Extra arguments go to `sdbx serve` (see `sdbx serve -h`).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
mkdir -p bin
CGO_ENABLED=0 go build -o bin/sdbx ./cmd/sdbx
exec bin/sdbx serve "$@"
