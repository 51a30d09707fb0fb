#!/usr/bin/env bash
# The test command: installs what is missing, then lint, types and the whole suite.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash deploy/dev/services.sh
bash deploy/dev/venv.sh
. .venv/bin/activate
ruff check .
mypy
python -m pytest -q -p no:cacheprovider "$@"
