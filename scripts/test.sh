#!/usr/bin/env bash
# Runs the whole sdbx test suite: vet, unit, integration, isolation and
# end-to-end tests (Go SDK, CLI, HTTP, socket.io-client). Needs root for the
# sandbox tests (they skip, saying so, when not root).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh --test
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [[ -n "$unformatted" ]]; then
  echo "gofmt needed on: $unformatted" >&2
  exit 1
fi
go vet ./...
go test -count=1 -timeout 20m ./... 2>&1
