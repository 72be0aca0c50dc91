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

# A short fuzz run of each target (corpora in testdata/fuzz are replayed by
# the plain test run above too).
# A failure prints the fuzzer's whole output (the failing input and why).
for target in ./internal/api:FuzzDecodeBodies ./internal/api:FuzzDecodeFastPaths ./internal/agent/fs:FuzzCleanPath ./internal/sandbox:FuzzValidateEnv; do
  if ! out=$(go test -run '^$' -fuzz "^${target#*:}\$" -fuzztime 10s "${target%%:*}" 2>&1); then
    echo "$out" >&2
    exit 1
  fi
  echo "$out" | tail -n 3
done

# The TypeScript SDK against a real server (node:test).
sdk/typescript/scripts/test.sh
