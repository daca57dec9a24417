#!/usr/bin/env bash
# Builds the helm CLI from the Go module proxy at a pinned version, caches it outside the
# repository keyed by version, and prints the path of the binary.
#
#   helm="$(hack/helm.sh)"; "$helm" template charts/fleetmq-operator
#
# Why build: release tarballs and get-helm scripts are not reachable where FleetMQ is
# developed and tested, but the Go module proxy is, and helm builds from it like any Go
# program. The version is pinned so that `helm lint` and `helm template` give the same
# answer on every machine and in CI.
#
# Progress goes to stderr, the path alone to stdout. A cached binary whose stamp matches the
# requested version is reused, so a warm run takes well under a second. The binary is built
# under a temporary name and renamed into place only when the build succeeded, so an
# interrupted build never leaves a file that a later run mistakes for a finished one.
#
# Environment:
#   FLEETMQ_HELM_VERSION  helm release to build (default v4.3.1; a v3.x.y release works too)
#   FLEETMQ_HELM_CACHE    cache root (default ${XDG_CACHE_HOME:-$HOME/.cache}/fleetmq/helm);
#                         the binary lands in $FLEETMQ_HELM_CACHE/<version>/helm
#   GO                    go command (default go)
set -euo pipefail

GO="${GO:-go}"
# v4.3.1 is the newest helm release that resolves and builds with Go 1.26 from the proxy.
helm_version="${FLEETMQ_HELM_VERSION:-v4.3.1}"

log() { printf 'helm: %s\n' "$*" >&2; }
fail() { log "error: $*"; exit 1; }

[[ "$helm_version" =~ ^v([34])\.[0-9]+\.[0-9]+$ ]] ||
	fail "FLEETMQ_HELM_VERSION=$helm_version is not a helm v3.x.y or v4.x.y release"
helm_major="${BASH_REMATCH[1]}"
helm_module="helm.sh/helm/v$helm_major"

cache_root="${FLEETMQ_HELM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/fleetmq/helm}"
version_dir="$cache_root/$helm_version"
bin="$version_dir/helm"
stamp_file="$version_dir/.helm.stamp"
stamp="$helm_module@$helm_version"
mkdir -p "$version_dir"

is_built() {
	[[ -x "$bin" && -f "$stamp_file" && "$(cat "$stamp_file")" == "$stamp" ]]
}

if is_built; then
	echo "$bin"
	exit 0
fi

# Two test runs started together must not build twice or rename over each other: hold a
# lock, then re-check.
exec {lock_fd}>"$version_dir/.lock"
if command -v flock >/dev/null 2>&1; then
	if ! flock -n "$lock_fd"; then
		log "waiting for another build in $version_dir"
		flock "$lock_fd"
	fi
fi
if is_built; then
	echo "$bin"
	exit 0
fi

tmp="$version_dir/.helm.tmp.$$"
trap 'rm -f "$tmp"' EXIT

# The throwaway module must never pick up a workspace or the repository's go.mod, and
# -mod=mod lets `go build` fill in go.sum from the proxy as it resolves packages. Helm's own
# go.mod has no replace directives, so requiring helm alone selects exactly the dependency
# versions helm was released with.
export GOWORK=off
export GOFLAGS="-mod=mod ${GOFLAGS:-}"
export CGO_ENABLED=0

src_dir="$version_dir/src"
rm -rf "$src_dir"
mkdir -p "$src_dir"
(cd "$src_dir" && "$GO" mod init fleetmq.local/helmbinary >/dev/null 2>&1) || fail "go mod init in $src_dir failed"
printf '// Package helmbinary only anchors a throwaway module used to build helm.\npackage helmbinary\n' >"$src_dir/doc.go"
(cd "$src_dir" && "$GO" mod edit -require="$helm_module@$helm_version") || fail "go mod edit in $src_dir failed"

# Without the version ldflag `helm version` reports a bare "v4.3" and the chart's
# apiVersion/kubeVersion checks see no patch level; gitTreeState mirrors helm's own Makefile.
ldflags="-s -w -X $helm_module/internal/version.version=$helm_version -X $helm_module/internal/version.gitTreeState=clean"

start=$SECONDS
log "building $helm_module/cmd/helm@$helm_version (about two minutes on a cold cache)"
if ! (cd "$src_dir" && "$GO" build -trimpath -ldflags="$ldflags" -o "$tmp" "$helm_module/cmd/helm") >&2; then
	fail "building helm $helm_version failed; see the go output above (is the Go module proxy reachable?)"
fi
mv -f "$tmp" "$bin"
echo "$stamp" >"$stamp_file"
log "built helm $helm_version in $((SECONDS - start))s"
echo "$bin"
