#!/usr/bin/env bash
# Runs every Go fuzz target in the module for a fixed budget each.
# Usage: hack/fuzz.sh [DURATION]   (default 10s)
#
# Go 1.26's fuzzing coordinator can report a bare "context deadline exceeded"
# failure when -fuzztime runs out while a worker is still busy (go.dev/issue/75804,
# fixed in Go 1.27): nothing was found, no failing input is written. A run that
# fails that way, and only that way, is reported and counted as passed once the
# target's corpus replays cleanly. Any other failure, and any failure that wrote
# a failing input under testdata/fuzz, fails the script.
set -euo pipefail
budget="${1:-10s}"
cd "$(dirname "$0")/.."
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
# -fuzzminimizetime=1s: Go shrinks every input that finds new coverage for up
# to 60 s by default, and on long strings that ate the whole budget (0 execs
# a second from the third second on, for three of the targets). The corpus
# grown here is not kept, so a small input is not worth the fuzzing time; a
# failing input is still written, shrunk as far as 1 s allows.
# Each line: <package dir> <FuzzName>
grep -rl --include='*_test.go' '^func Fuzz' . | while read -r f; do
  dir=$(dirname "$f")
  grep -o '^func Fuzz[A-Za-z0-9_]*' "$f" | sed 's/^func //' | while read -r name; do
    echo "fuzz: $dir $name ($budget)"
    if go test -run='^$' -fuzz="^${name}\$" -fuzztime="$budget" -fuzzminimizetime=1s "$dir" 2>&1 | tee "$log"; then
      continue
    fi
    failures="$(grep -E '^\s{4}\S' "$log" | grep -v -E '^\s{4}context deadline exceeded$' || true)"
    if grep -q 'Failing input written to' "$log" || [ -n "$failures" ] || ! grep -q 'context deadline exceeded' "$log"; then
      echo "fuzz: $dir $name FAILED" >&2
      exit 1
    fi
    echo "fuzz: $dir $name: the run ended with Go's fuzztime deadline race (go.dev/issue/75804), not a finding; replaying its corpus"
    go test -count=1 -run="^${name}\$" "$dir"
  done
done
