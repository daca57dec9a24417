#!/usr/bin/env bash
# Runs every Go fuzz target in the module for a fixed budget each.
# Usage: hack/fuzz.sh [DURATION]   (default 10s)
set -euo pipefail
budget="${1:-10s}"
cd "$(dirname "$0")/.."
# Each line: <package dir> <FuzzName>
grep -rl --include='*_test.go' '^func Fuzz' . | while read -r f; do
  dir=$(dirname "$f")
  grep -o '^func Fuzz[A-Za-z0-9_]*' "$f" | sed 's/^func //' | while read -r name; do
    echo "fuzz: $dir $name ($budget)"
    go test -run='^$' -fuzz="^${name}\$" -fuzztime="$budget" "$dir"
  done
done
