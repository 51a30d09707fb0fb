#!/usr/bin/env bash
# Make sure PostgreSQL and Mosquitto are installed and running on this machine (Debian/Ubuntu).
# Used by the test and demo commands; safe to run again. Needs root (or sudo) only to install.
set -euo pipefail

SUDO=""
if [ "$(id -u)" != "0" ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi

apt_install() {
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "services.sh: $* missing and no apt-get here; install it yourself" >&2
    return 1
  fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null
}

# Mosquitto: tests start their own broker processes from this binary.
if ! command -v mosquitto >/dev/null 2>&1; then
  echo "services.sh: installing mosquitto" >&2
  apt_install mosquitto mosquitto-clients
fi

# curl and jq: the README's command blocks use them, and a test runs those blocks as written.
missing=""
for tool in curl jq; do command -v "$tool" >/dev/null 2>&1 || missing="$missing $tool"; done
if [ -n "$missing" ]; then
  echo "services.sh: installing$missing" >&2
  # shellcheck disable=SC2086
  apt_install $missing
fi

# Chromium: tests/e2e/test_docs_browser.py drives Debian's chromium (Playwright, no browser download).
if ! command -v chromium >/dev/null 2>&1; then
  echo "services.sh: installing chromium" >&2
  apt_install chromium
fi

# PostgreSQL: tests use a server on 127.0.0.1:5432 (override with IOTD_TEST_DATABASE_URL).
pg_ready() { (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null; }
if [ -z "${IOTD_TEST_DATABASE_URL:-}" ] && ! pg_ready; then
  if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
    echo "services.sh: installing postgresql" >&2
    apt_install postgresql
  fi
  ver=$(ls /etc/postgresql | sort -V | tail -n 1)
  conf=/etc/postgresql/$ver/main
  # trust local TCP connections for the test user (a throwaway CI/dev server)
  if ! grep -q "iotd-dev" "$conf/pg_hba.conf"; then
    $SUDO sed -i '1i host all all 127.0.0.1/32 trust # iotd-dev\nhost all all ::1/128 trust # iotd-dev' "$conf/pg_hba.conf"
  fi
  $SUDO pg_ctlcluster --skip-systemctl-redirect "$ver" main start 2>/dev/null || $SUDO pg_ctlcluster "$ver" main start
  for _ in $(seq 1 30); do pg_ready && break; sleep 1; done
fi
pg_ready || [ -n "${IOTD_TEST_DATABASE_URL:-}" ] || { echo "services.sh: PostgreSQL did not come up" >&2; exit 1; }
