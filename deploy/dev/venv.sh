#!/usr/bin/env bash
# Create (or refresh) the project's virtualenv in .venv with the test extra installed.
# Says what it does before each slow step (stderr), so a first install is never a silent minute;
# on a terminal the big install shows pip's own progress, elsewhere (CI, logs) pip stays quiet.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-python3}
say() { echo "venv.sh: $*" >&2; }
started=$SECONDS
if [ ! -x .venv/bin/python ]; then
  say "creating the virtualenv .venv with $("$PY" --version 2>&1)"
  "$PY" -m venv .venv
fi
stamp=.venv/.iotd-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  pip_progress=(-q)
  if [ -t 2 ]; then pip_progress=(--progress-bar on); fi
  say "updating pip"
  .venv/bin/python -m pip install -q --upgrade pip
  # `quickjs` (older engine, regexes ignore the time limit) and `quickjs-ng` both install the module
  # `quickjs`: remove the old one first; uninstalling it after quickjs-ng would delete the shared files.
  # If both were there, quickjs-ng's files are gone with them: remove it too, the install below restores it.
  if .venv/bin/python -m pip show -q quickjs >/dev/null 2>&1; then
    say "removing the old quickjs package (quickjs-ng replaces it)"
    .venv/bin/python -m pip uninstall -q -y quickjs quickjs-ng
  fi
  say "installing iotd and its dependencies into .venv (about a minute on a fresh clone, seconds after that)"
  .venv/bin/python -m pip install "${pip_progress[@]}" -e ".[test]" >&2
  touch "$stamp"
  say "ready in $((SECONDS - started)) s"
else
  say ".venv is up to date"
fi
