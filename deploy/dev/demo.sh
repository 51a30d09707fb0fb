#!/usr/bin/env bash
# The main job on a fresh machine: install what is missing, then `iotd demo`.
# Each slow step is announced first (stderr), so nothing looks stuck.
set -euo pipefail
cd "$(dirname "$0")/../.."
say() { echo "demo.sh: $*" >&2; }
if ! command -v mosquitto >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" != "0" ] && SUDO="sudo"
  say "installing the Mosquitto MQTT broker with apt-get (once)"
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq mosquitto >/dev/null
fi
bash deploy/dev/venv.sh
say "starting iotd demo (the embedded PostgreSQL takes a few seconds on the first start)"
exec .venv/bin/iotd demo "$@"
