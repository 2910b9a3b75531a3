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

# System tools the bridge tests run for real: a mosquitto broker and its clients,
# openssl (a throwaway CA for the TLS test) and socat (linked pty pairs).
need=()
{ command -v mosquitto || [ -x /usr/sbin/mosquitto ]; } >/dev/null || need+=(mosquitto)
command -v mosquitto_sub >/dev/null || need+=(mosquitto-clients)
command -v openssl >/dev/null || need+=(openssl)
command -v socat >/dev/null || need+=(socat)
if [ ${#need[@]} -gt 0 ]; then
    echo "[test.sh] installing ${need[*]} with apt-get"
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" \
        || { echo "[test.sh] could not install ${need[*]}: the bridge tests need them" >&2; exit 1; }
fi

echo "[test.sh] running the test suite"
# pytest exits 5 when it collected no tests: that is a failure here, as any non-zero code.
# No exec: the reference suite runs after it, and every run's exit code must count.
status=0
.venv/bin/python -m pytest "$@" || status=$?

# The reference suite (tests/hil) ran above on the simulated rig; a full run (no arguments) runs it
# again on the emulated rigs, against real processes (a socat pty pair; a private mosquitto).
if [ $# -eq 0 ]; then
    for rig in emulated-serial emulated-mqtt; do
        echo "[test.sh] running the reference suite on --rig $rig"
        .venv/bin/python -m pytest tests/hil --rig "$rig" || status=$?
    done
else
    echo "[test.sh] arguments given: the reference suite on the emulated rigs was not run (run without arguments for it)"
fi
exit "$status"
