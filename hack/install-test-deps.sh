#!/usr/bin/env bash
# Installs the Debian packages that the interop tests and benchmarks talk to:
# mosquitto (reference broker, mosquitto_passwd), mosquitto-clients
# (mosquitto_pub/mosquitto_sub) and python3-paho-mqtt. Idempotent: does nothing
# when everything is already present, so `make test` stays fast on a warm machine.
set -euo pipefail

need=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need+=(mosquitto)
command -v mosquitto_pub >/dev/null 2>&1 || need+=(mosquitto-clients)
/usr/bin/python3 -c 'import paho.mqtt' >/dev/null 2>&1 || need+=(python3-paho-mqtt)

if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "hack/install-test-deps.sh: missing ${need[*]}; run as root or install them with apt-get" >&2
  exit 1
fi

echo "Installing test dependencies: ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# The Debian package starts a system mosquitto on :1883; tests run their own.
if command -v systemctl >/dev/null 2>&1; then systemctl stop mosquitto >/dev/null 2>&1 || true; fi
pkill -x mosquitto >/dev/null 2>&1 || true
