#!/usr/bin/env bash
# Installs MQTT.js, an interop peer of the broker tests, from the npm registry into a cache
# outside the repository and prints its node_modules directory. The version is pinned by
# broker/testdata/interop/mqttjs/package-lock.json (npm ci), and the cache is keyed by that
# file's hash, so a version bump installs afresh. Idempotent; concurrent runs are safe.
#
#   FLEETMQ_NPM_CACHE   cache root (default ${XDG_CACHE_HOME:-$HOME/.cache}/fleetmq/npm);
#                       broker/interop_test.go looks in the same place.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
src="$root/broker/testdata/interop/mqttjs"
cache_root="${FLEETMQ_NPM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/fleetmq/npm}"
key="$(sha256sum "$src/package-lock.json" | cut -c1-16)"
dir="$cache_root/mqttjs-$key"

if [[ -f "$dir/.complete" ]]; then
  echo "$dir/node_modules"
  exit 0
fi
command -v npm >/dev/null 2>&1 || {
  echo "hack/mqttjs.sh: npm is not installed; hack/install-test-deps.sh installs it (as root)" >&2
  exit 1
}
mkdir -p "$cache_root"
tmp="$(mktemp -d "$cache_root/.mqttjs-XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
cp "$src/package.json" "$src/package-lock.json" "$tmp/"
echo "Installing MQTT.js into $dir" >&2
(cd "$tmp" && npm ci --omit=dev --no-audit --no-fund --loglevel=error >&2)
touch "$tmp/.complete"
# Another run may have finished first: its directory is as good as ours.
if mv -T "$tmp" "$dir" 2>/dev/null; then
  trap - EXIT
elif [[ ! -f "$dir/.complete" ]]; then
  echo "hack/mqttjs.sh: cannot move the installation to $dir" >&2
  exit 1
fi
echo "$dir/node_modules"
