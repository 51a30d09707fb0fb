#!/usr/bin/env bash
# Create (or refresh) the project's virtualenv in .venv with the test extra installed.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.iotd-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  # `quickjs` (older engine, regexes ignore the time limit) and `quickjs-ng` both install the module
  # `quickjs`: remove the old one first; uninstalling it after quickjs-ng would delete the shared files.
  # If both were there, quickjs-ng's files are gone with them: remove it too, the install below restores it.
  if .venv/bin/python -m pip show -q quickjs >/dev/null 2>&1; then
    .venv/bin/python -m pip uninstall -q -y quickjs quickjs-ng
  fi
  .venv/bin/python -m pip install -q -e ".[test]"
  touch "$stamp"
fi
