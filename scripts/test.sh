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
# A finding always writes its input to testdata/fuzz (and fails the run
# with the fuzzer's whole output). Go's fuzzing engine can also exit
# non-zero at the -fuzztime boundary without finding anything ("context
# deadline exceeded", golang/go#51484): that is reported, not failed.
for target in ./internal/api:FuzzDecodeBodies ./internal/api:FuzzDecodeFastPaths ./internal/agent/fs:FuzzCleanPath ./internal/sandbox:FuzzValidateEnv; do
  if ! out=$(go test -run '^$' -fuzz "^${target#*:}\$" -fuzztime 10s "${target%%:*}" 2>&1); then
    echo "$out" >&2
    if grep -q "Failing input written to" <<<"$out" ||
      ! grep -qE "context deadline exceeded|fuzzing process hung or terminated unexpectedly" <<<"$out"; then
      exit 1
    fi
    echo "fuzz ${target#*:}: the fuzzing engine stopped without a failing input (see above); not a finding" >&2
    continue
  fi
  echo "$out" | tail -n 3
done

# The TypeScript SDK against a real server (node:test).
sdk/typescript/scripts/test.sh
