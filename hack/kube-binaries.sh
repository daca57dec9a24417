#!/usr/bin/env bash
# Builds the Kubernetes test binaries (kube-apiserver, kube-controller-manager, kubectl and
# etcd) from the Go module proxy, caches them outside the repository keyed by version, and
# prints the directory that holds them: the KUBEBUILDER_ASSETS path for envtest.
#
#   export KUBEBUILDER_ASSETS="$(hack/kube-binaries.sh)"
#
# Why build: binary downloads (setup-envtest, release tarballs, images) are not reachable
# where FleetMQ is developed and tested, but the Go module proxy is, and every binary builds
# from it. The Kubernetes version follows the k8s.io/api version in go.mod (v0.Y.Z ->
# v1.Y.Z), so the apiserver always matches the client libraries.
#
# Progress goes to stderr, the directory alone to stdout. Binaries already built are
# skipped, so a warm run takes well under a second. A binary is built under a temporary name
# and renamed into place only when the build succeeded, so an interrupted build never leaves
# a file that a later run mistakes for a finished one.
#
# Environment:
#   FLEETMQ_KUBE_CACHE    cache root (default ${XDG_CACHE_HOME:-$HOME/.cache}/fleetmq/kube);
#                         binaries land in $FLEETMQ_KUBE_CACHE/<kubernetes-version>/bin
#   FLEETMQ_KUBE_VERSION  Kubernetes version to build (default: derived from go.mod)
#   FLEETMQ_ETCD_VERSION  etcd version to build (default v3.6.16)
#   GO                    go command (default go)
#
# Arguments: the binaries to build (default: all of kube-apiserver kube-controller-manager
# kubectl etcd).
set -euo pipefail

GO="${GO:-go}"
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
etcd_version="${FLEETMQ_ETCD_VERSION:-v3.6.16}"

log() { printf 'kube-binaries: %s\n' "$*" >&2; }
fail() { log "error: $*"; exit 1; }

kube_version="${FLEETMQ_KUBE_VERSION:-}"
if [[ -z "$kube_version" ]]; then
	# go.mod is the single source of truth for the client libraries; the apiserver follows it.
	# Read go.mod directly: no module loading, no network, and go.mod is never rewritten.
	api_version="$(awk '$1 == "k8s.io/api" { print $2; exit } $1 == "require" && $2 == "k8s.io/api" { print $3; exit }' "$repo_root/go.mod")"
	[[ -n "$api_version" ]] ||
		fail "k8s.io/api is not required in $repo_root/go.mod; set FLEETMQ_KUBE_VERSION (e.g. v1.37.2)"
	[[ "$api_version" =~ ^v0\.([0-9]+)\.([0-9]+)$ ]] ||
		fail "k8s.io/api is at $api_version in go.mod, not a v0.Y.Z release; set FLEETMQ_KUBE_VERSION"
	kube_version="v1.${BASH_REMATCH[1]}.${BASH_REMATCH[2]}"
fi
[[ "$kube_version" =~ ^v1\.([0-9]+)\.([0-9]+)$ ]] || fail "FLEETMQ_KUBE_VERSION=$kube_version is not a v1.Y.Z release"
kube_minor="${BASH_REMATCH[1]}"
# Every k8s.io staging module is published as v0.Y.Z alongside k8s.io/kubernetes v1.Y.Z.
staging_version="v0.${BASH_REMATCH[1]}.${BASH_REMATCH[2]}"

cache_root="${FLEETMQ_KUBE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/fleetmq/kube}"
version_dir="$cache_root/$kube_version"
bin_dir="$version_dir/bin"
src_dir="$version_dir/src"
mkdir -p "$bin_dir" "$src_dir"

wanted=("$@")
if [[ ${#wanted[@]} -eq 0 ]]; then
	wanted=(kube-apiserver kube-controller-manager kubectl etcd)
fi
for b in "${wanted[@]}"; do
	case "$b" in
	kube-apiserver | kube-controller-manager | kube-scheduler | kubectl | etcd) ;;
	*) fail "unknown binary $b (known: kube-apiserver kube-controller-manager kube-scheduler kubectl etcd)" ;;
	esac
done

# stamp names what a binary was built from; a binary counts as done only when its stamp
# matches, so changing FLEETMQ_ETCD_VERSION rebuilds etcd in the same directory.
stamp_for() {
	case "$1" in
	etcd) echo "go.etcd.io/etcd/server/v3@$etcd_version" ;;
	*) echo "k8s.io/kubernetes@$kube_version" ;;
	esac
}

is_built() {
	[[ -x "$bin_dir/$1" && -f "$bin_dir/.$1.stamp" && "$(cat "$bin_dir/.$1.stamp")" == "$(stamp_for "$1")" ]]
}

missing=()
for b in "${wanted[@]}"; do
	is_built "$b" || missing+=("$b")
done
if [[ ${#missing[@]} -eq 0 ]]; then
	echo "$bin_dir"
	exit 0
fi

# Two test runs started together (two engineers, or make test and an editor) must not build
# the same thing twice or rename over each other: hold a lock, then re-check what is missing.
exec {lock_fd}>"$version_dir/.lock"
if command -v flock >/dev/null 2>&1; then
	if ! flock -n "$lock_fd"; then
		log "waiting for another build in $version_dir"
		flock "$lock_fd"
	fi
fi

tmp_files=()
cleanup() {
	local f
	for f in "${tmp_files[@]}"; do rm -f "$f"; done
}
trap cleanup EXIT

# The throwaway modules must never pick up a workspace or the repository's own go.mod, and
# -mod=mod lets `go build` fill in go.mod and go.sum from the proxy as it resolves packages.
export GOWORK=off
export GOFLAGS="-mod=mod ${GOFLAGS:-}"
export CGO_ENABLED=0

# fresh_module writes a new go.mod in $1 (module name $2). The recipe starts from a fresh
# go.mod every time: resolving against a stale one can pick incompatible versions.
fresh_module() {
	local dir="$1" name="$2"
	rm -rf "$dir"
	mkdir -p "$dir"
	(cd "$dir" && "$GO" mod init "$name" >/dev/null 2>&1) || fail "go mod init in $dir failed"
	# A package file keeps `go build` happy about the main module having no Go files.
	printf '// Package %s only anchors a throwaway module used to build binaries.\npackage %s\n' \
		"${name##*/}" "${name##*/}" >"$dir/doc.go"
}

kube_module_ready=""
prepare_kube_module() {
	[[ -n "$kube_module_ready" ]] && return 0
	local dir="$src_dir/kubernetes"
	log "resolving k8s.io/kubernetes@$kube_version (staging modules at $staging_version)"
	fresh_module "$dir" "fleetmq.local/kubebinaries"
	(cd "$dir" && "$GO" mod download k8s.io/kubernetes@"$kube_version") ||
		fail "go mod download k8s.io/kubernetes@$kube_version failed; is the Go module proxy reachable?"
	local kube_gomod
	kube_gomod="$(cd "$dir" && "$GO" mod download -json k8s.io/kubernetes@"$kube_version" |
		awk -F'"' '$2 == "GoMod" { print $4 }')"
	[[ -f "$kube_gomod" ]] || fail "cannot find the go.mod of k8s.io/kubernetes@$kube_version in the module cache"

	# k8s.io/kubernetes points every staging module at ./staging/src/...; those replaces do not
	# apply to a dependent module, so point each at its published release instead.
	local staging
	staging="$(awk '$2 == "=>" && $3 ~ /^\.\/staging\// { print $1 }' "$kube_gomod" | sort -u)"
	[[ -n "$staging" ]] || fail "no staging replaces found in $kube_gomod"
	local args=(-require="k8s.io/kubernetes@$kube_version")
	local m
	for m in $staging; do
		args+=(-replace="$m=$m@$staging_version")
	done
	(cd "$dir" && "$GO" mod edit "${args[@]}") || fail "go mod edit in $dir failed"
	log "replaced $(wc -w <<<"$staging") staging modules with $staging_version"
	kube_module_ready=1
}

etcd_module_ready=""
prepare_etcd_module() {
	[[ -n "$etcd_module_ready" ]] && return 0
	local dir="$src_dir/etcd-$etcd_version"
	log "resolving go.etcd.io/etcd/server/v3@$etcd_version"
	fresh_module "$dir" "fleetmq.local/etcdbinary"
	# etcd's server go.mod points its sibling modules at local directories; pin them to the
	# same release so the build sees one consistent etcd.
	(cd "$dir" && "$GO" mod edit \
		-require="go.etcd.io/etcd/server/v3@$etcd_version" \
		-replace="go.etcd.io/etcd/api/v3=go.etcd.io/etcd/api/v3@$etcd_version" \
		-replace="go.etcd.io/etcd/client/pkg/v3=go.etcd.io/etcd/client/pkg/v3@$etcd_version" \
		-replace="go.etcd.io/etcd/client/v3=go.etcd.io/etcd/client/v3@$etcd_version" \
		-replace="go.etcd.io/etcd/pkg/v3=go.etcd.io/etcd/pkg/v3@$etcd_version") ||
		fail "go mod edit in $dir failed"
	etcd_module_ready=1
}

build_one() {
	local name="$1" dir pkg ldflags="-s -w"
	case "$name" in
	etcd)
		prepare_etcd_module
		dir="$src_dir/etcd-$etcd_version"
		pkg="go.etcd.io/etcd/server/v3"
		;;
	*)
		prepare_kube_module
		dir="$src_dir/kubernetes"
		pkg="k8s.io/kubernetes/cmd/$name"
		# Without these the binaries report v0.0.0 and kubectl warns about version skew; the
		# servers read component-base's copy, kubectl's client side reads client-go's.
		local vpkg
		for vpkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
			ldflags+=" -X $vpkg.gitVersion=$kube_version -X $vpkg.gitMajor=1"
			ldflags+=" -X $vpkg.gitMinor=$kube_minor -X $vpkg.gitTreeState=clean"
		done
		;;
	esac
	local tmp="$bin_dir/.$name.tmp.$$"
	tmp_files+=("$tmp")
	local start=$SECONDS
	log "building $name from $pkg (this takes minutes on a cold cache)"
	if ! (cd "$dir" && "$GO" build -trimpath -ldflags="$ldflags" -o "$tmp" "$pkg") >&2; then
		fail "building $name failed; see the go output above"
	fi
	mv -f "$tmp" "$bin_dir/$name"
	stamp_for "$name" >"$bin_dir/.$name.stamp"
	log "built $name in $((SECONDS - start))s"
}

total_start=$SECONDS
for b in "${missing[@]}"; do
	is_built "$b" && continue # another run built it while we waited for the lock
	build_one "$b"
done
log "binaries ready in $bin_dir ($((SECONDS - total_start))s)"
echo "$bin_dir"
