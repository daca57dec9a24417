#!/usr/bin/env bash
# Builds a mochi-mqtt (github.com/mochi-mqtt/server/v2) reference broker for
# `make bench` and prints the path of the binary on stdout.
#
# The broker is built in a throwaway module under
# ${XDG_CACHE_HOME:-$HOME/.cache}/fleetmq/mochi/<version>/ so that nothing of
# mochi's lands in this repository and fresh clones reuse the build. The
# version is the latest v2.x on the Go module proxy unless MOCHI_VERSION is
# set; when the proxy cannot be reached, the newest cached build is used.
#
# The binary takes `-listen ADDR` (default 127.0.0.1:1883), allows every
# client (mochi's auth.AllowHook), logs warnings only, and stops on
# SIGTERM/SIGINT.
set -euo pipefail

cache_root="${XDG_CACHE_HOME:-$HOME/.cache}/fleetmq/mochi"
module="github.com/mochi-mqtt/server/v2"

log() { echo "build-mochi: $*" >&2; }

version="${MOCHI_VERSION:-}"
if [ -z "$version" ]; then
  # Resolve outside any module so that this repository's go.mod is not consulted.
  if version="$(cd / && GOWORK=off GOFLAGS=-mod=mod go list -m -f '{{.Version}}' "${module}@latest" 2>/dev/null)" && [ -n "$version" ]; then
    :
  else
    version="$(ls -1 "$cache_root" 2>/dev/null | grep '^v2\.' | sort -V | tail -n1 || true)"
    if [ -z "$version" ]; then
      log "cannot resolve ${module}@latest from the Go module proxy ($(go env GOPROXY)) and nothing is cached in $cache_root"
      log "check network access to the proxy, or set MOCHI_VERSION to a version that the proxy serves"
      exit 1
    fi
    log "module proxy unreachable; using cached $version"
  fi
fi

dir="$cache_root/$version"
bin="$dir/mochi-broker"
if [ -x "$bin" ]; then
  echo "$bin"
  exit 0
fi

log "building mochi-mqtt $version in $dir (first run only)"
src="$dir/src"
rm -rf "$src"
mkdir -p "$src"

cat >"$src/main.go" <<'EOF'
// Command mochi-broker runs mochi-mqtt on one TCP listener with allow-all
// auth, as the reference broker of FleetMQ's `make bench`.
package main

import (
	"flag"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:1883", "TCP address to listen on")
	flag.Parse()

	// Warnings only: mochi logs every connection at info level, which would
	// cost CPU during the benchmark.
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	server := mqtt.New(&mqtt.Options{Logger: logger})
	if err := server.AddHook(new(auth.AllowHook), nil); err != nil {
		logger.Error("Adding allow-all auth hook", "error", err)
		os.Exit(1)
	}
	if err := server.AddListener(listeners.NewTCP(listeners.Config{ID: "tcp", Address: *listen})); err != nil {
		logger.Error("Adding TCP listener", "address", *listen, "error", err)
		os.Exit(1)
	}

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		if err := server.Serve(); err != nil {
			logger.Error("Serving", "error", err)
			os.Exit(1)
		}
	}()
	<-sigs
	_ = server.Close()
}
EOF

(
  cd "$src"
  export GOWORK=off GOFLAGS=-mod=mod
  go mod init fleetmq.local/mochi-broker >/dev/null 2>&1
  go get "${module}@${version}" >&2
  go build -trimpath -o "$bin.tmp" .
)
mv "$bin.tmp" "$bin"
log "built $bin"
echo "$bin"
