#!/usr/bin/env bash
# The main job on a fresh machine: install what is missing, then `iotd demo`.
set -euo pipefail
cd "$(dirname "$0")/../.."
if ! command -v mosquitto >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" != "0" ] && SUDO="sudo"
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq mosquitto >/dev/null
fi
bash deploy/dev/venv.sh
exec .venv/bin/iotd demo "$@"
