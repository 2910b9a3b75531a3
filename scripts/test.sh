#!/usr/bin/env bash
# Install everything the test suite needs into ./.venv and run the whole suite.
# Usage: bash scripts/test.sh [pytest arguments...]
# Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    echo "[test.sh] creating .venv with $($PYTHON --version)"
    "$PYTHON" -m venv .venv
fi
echo "[test.sh] installing the project and its test extras"
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test]'

echo "[test.sh] running the test suite"
# pytest exits 5 when it collected no tests: that is a failure here, as any non-zero code.
exec .venv/bin/python -m pytest "$@"
