#!/usr/bin/env bash
# PostgreSQL server + client from Debian (tests/cluster: the shared MLflow tracking server and the Optuna study of
# distributed search workers run on a real PostgreSQL). Idempotent: fast when the binaries are already there.
# The tests start their own server in a temporary folder as the `postgres` system user (created by the package),
# so the package's default cluster is not needed and is not started here.
set -euo pipefail

have_postgres() {
    command -v psql >/dev/null 2>&1 && compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null \
        && compgen -G "/usr/lib/postgresql/*/bin/pg_ctl" >/dev/null && id -u postgres >/dev/null 2>&1
}

if have_postgres; then
    echo "postgresql: already installed ($(ls -d /usr/lib/postgresql/*/bin | tr '\n' ' '))"
    exit 0
fi

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
LOCK=()
command -v flock >/dev/null 2>&1 && LOCK=(flock /tmp/apt.lock)
export DEBIAN_FRONTEND=noninteractive
$SUDO "${LOCK[@]}" apt-get update -qq
$SUDO "${LOCK[@]}" apt-get install -y -qq --no-install-recommends postgresql postgresql-client >/dev/null

have_postgres || { echo "postgresql: installed, but initdb/pg_ctl/psql or the postgres user is missing" >&2; exit 1; }
echo "postgresql: installed ($(ls -d /usr/lib/postgresql/*/bin | tr '\n' ' '))"
