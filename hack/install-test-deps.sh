#!/usr/bin/env bash
# Installs what the interop tests and benchmarks talk to: the Debian packages
# mosquitto (reference broker, mosquitto_passwd), mosquitto-clients
# (mosquitto_pub/mosquitto_sub), python3-paho-mqtt, haproxy (a load balancer
# sending PROXY protocol headers), and nodejs with npm, then
# MQTT.js from the npm registry (hack/mqttjs.sh, into a cache). Idempotent: does
# nothing when everything is already present, so `make test` stays fast on a
# warm machine.
set -euo pipefail

need=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need+=(mosquitto)
command -v mosquitto_pub >/dev/null 2>&1 || need+=(mosquitto-clients)
/usr/bin/python3 -c 'import paho.mqtt' >/dev/null 2>&1 || need+=(python3-paho-mqtt)
command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || need+=(haproxy)
command -v node >/dev/null 2>&1 || need+=(nodejs)
command -v npm >/dev/null 2>&1 || need+=(npm)

if [ ${#need[@]} -eq 0 ]; then
  "$(dirname "${BASH_SOURCE[0]}")/mqttjs.sh" >/dev/null
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
# The Debian packages start a system mosquitto on :1883 and a system haproxy;
# tests run their own.
if command -v systemctl >/dev/null 2>&1; then systemctl stop mosquitto haproxy >/dev/null 2>&1 || true; fi
pkill -x mosquitto >/dev/null 2>&1 || true
if [[ " ${need[*]} " == *" haproxy "* ]]; then pkill -x haproxy >/dev/null 2>&1 || true; fi
"$(dirname "${BASH_SOURCE[0]}")/mqttjs.sh" >/dev/null
