#!/usr/bin/env bash
# `make dev`: builds cmd/fleetmq-localcluster and runs it, which builds fleetmq-broker and
# fleetmq-operator, starts the local Kubernetes cluster (test/cluster), installs the CRDs,
# runs the operator under its own ServiceAccount and RBAC, applies config/samples, waits for
# the 3-pod fleet to be Ready and prints where to reach it. Ctrl-C stops every process.
#
# The local cluster needs root (a network namespace per pod, bind mounts); when not root this
# script re-runs the driver with sudo, keeping PATH so the same Go
# toolchain is used.
#
# Environment:
#   GO          go command (default go)
#   BIN         where binaries go (default bin); the admin kubeconfig is written to
#               $BIN/dev.kubeconfig so the `export KUBECONFIG=...` line stays the same
#               from run to run
# Arguments are passed to fleetmq-localcluster (see its --help).
set -euo pipefail

GO="${GO:-go}"
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"
BIN="${BIN:-bin}"
mkdir -p "$BIN"
bin_abs="$(cd "$BIN" && pwd)"

"$GO" build -o "$bin_abs/fleetmq-localcluster" ./cmd/fleetmq-localcluster
args=(--out-dir "$bin_abs" --kubeconfig "$bin_abs/dev.kubeconfig" "$@")
if [[ "$(id -u)" -eq 0 ]]; then
	exec "$bin_abs/fleetmq-localcluster" "${args[@]}"
fi
# Build (or find, cached) the Kubernetes binaries as the calling user, so root does not
# rebuild them into its own cache; fleetmq-broker and fleetmq-operator are then built by
# the driver as root, with root's Go build cache.
assets="${KUBEBUILDER_ASSETS:-$(hack/kube-binaries.sh)}"
echo "The local cluster needs root; running it with sudo." >&2
exec sudo env PATH="$PATH" GO="$(command -v "$GO")" KUBEBUILDER_ASSETS="$assets" \
	"$bin_abs/fleetmq-localcluster" "${args[@]}"
