#!/usr/bin/env bash
# SLURM (Debian's slurm-wlm: slurmctld, slurmd, the client commands sbatch/squeue/sinfo/scontrol/sacct) and MUNGE
# (its authentication), for tests/cluster/test_slurm.py, which starts its own single-node cluster from a temporary
# folder (tests/cluster/_slurm.py: its own munge key, slurm.conf, spool, state and log dirs): nothing is configured
# or started here.
# No slurmdbd/MariaDB: snakemake-executor-plugin-slurm polls job states with `squeue` when told to
# (--slurm-status-command squeue; `sacct` needs the accounting database) and submits without an account; SLURM's
# record of each finished job is then its job completion log (jobcomp/filetxt), which the test reads.
# Idempotent: fast when the binaries are already there.
set -euo pipefail

have_slurm() {
    for cmd in slurmctld slurmd sbatch srun squeue sinfo scontrol munged; do
        command -v "$cmd" >/dev/null 2>&1 || [ -x "/usr/sbin/$cmd" ] || return 1
    done
    compgen -G "/usr/lib/*/slurm-wlm/jobcomp_filetxt.so" >/dev/null   # the plugins (slurm-wlm-basic-plugins)
}

if have_slurm; then
    echo "slurm: already installed ($(/usr/sbin/slurmctld -V 2>/dev/null || echo '?'); munge $(munged -V 2>&1 | head -1))"
    exit 0
fi

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
LOCK=()
command -v flock >/dev/null 2>&1 && LOCK=(flock /tmp/apt.lock)
export DEBIAN_FRONTEND=noninteractive

# The packages' maintainer scripts would start munged/slurmctld/slurmd as system services (a Docker image usually
# forbids that already with /usr/sbin/policy-rc.d): forbid it for this install, restore what was there.
POLICY=/usr/sbin/policy-rc.d
if [ ! -e "$POLICY" ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$POLICY" >/dev/null
    $SUDO chmod +x "$POLICY"
    trap '$SUDO rm -f "$POLICY"' EXIT
fi

$SUDO "${LOCK[@]}" apt-get update -qq
$SUDO "${LOCK[@]}" apt-get install -y -qq --no-install-recommends slurm-wlm slurm-client munge >/dev/null

have_slurm || { echo "slurm: installed, but slurmctld/slurmd/sbatch/squeue/sinfo/scontrol/munged is missing" >&2; exit 1; }
echo "slurm: installed ($(/usr/sbin/slurmctld -V); munge $(munged -V 2>&1 | head -1))"
