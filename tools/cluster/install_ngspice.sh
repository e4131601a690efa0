#!/usr/bin/env bash
# ngspice from Debian (the circuit simulator that tests/integration/test_ngspice.py runs on each tile's netlist, the
# independent check of the exact IR-drop solver nvmxbar.core.parasitics; the tests fail, not skip, without it).
# Idempotent: fast when `ngspice` is already on PATH.
set -euo pipefail

version() { ngspice --version 2>/dev/null | grep -m1 -o 'ngspice-[0-9.]*' || echo '?'; }

if command -v ngspice >/dev/null 2>&1; then
    echo "ngspice: already installed ($(version))"
    exit 0
fi

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
LOCK=()
command -v flock >/dev/null 2>&1 && LOCK=(flock /tmp/apt.lock)
export DEBIAN_FRONTEND=noninteractive
$SUDO "${LOCK[@]}" apt-get update -qq
$SUDO "${LOCK[@]}" apt-get install -y -qq --no-install-recommends ngspice >/dev/null

command -v ngspice >/dev/null 2>&1 || { echo "ngspice: installed, but not on PATH" >&2; exit 1; }
echo "ngspice: installed ($(version))"
