#!/usr/bin/env bash
# On the GPU box, from the repo root: bash tools/gpu/run_cifar.sh   (device tool: carry [".whl", ".gpu"], made here
# by tools/gpu/make_wheelhouse.sh; timeout_s at least LIMIT_S + 30). Issue 19's two CIFAR-10 figures, in one go:
#  0. installs the wheels of .whl/ offline into /tmp/site (nothing else) and checks the imports;
#  a. the training throughput: benchmarks/train_throughput.py --device cuda --epoch-images 45000 --mc-chips 25
#     -> $OUT/throughput.txt;
#  b. the CIFAR-10 part of the DAG, timed: snakemake --profile workflow/profiles/gpu
#     --config profile=$PROFILE data_dir=.gpu/data 'datasets=[cifar10]' in $WORK (its results/ and .snakemake/),
#     stopped (SIGTERM, then SIGKILL) when the time runs out -> $OUT/dag_time.txt (rewritten as it goes: the partial
#     timing survives), $OUT/snakemake.log;
#  c. packs: $OUT/results.tar.gz (results/ without models and arrays: tables, report, figures, benchmarks, logs,
#     metrics.json, noise.csv, cost.json, the search's files, mlflow.db), $OUT/workflow_times.txt
#     (benchmarks/workflow_times.py), besides $OUT/run_cifar.log (progress, versions, GPU): 6 files in all.
# The whole run ends within LIMIT_S seconds of its start, whatever is unfinished.
# Env: OUT (required), LIMIT_S (540), PROFILE (full | smoke), DEVICE (cuda; cpu = the CPU stand-in test: no gpu
#      profile, --cores $CORES, a small benchmark), CORES (2, cpu only), WHL (.whl), SITE (/tmp/site),
#      DATA_DIR (.gpu/data), WORK (/tmp/nvmxbar-cifar), BENCH_S (240: the benchmark's share), PACK_S (40: kept for
#      packing), RUN_BENCH / RUN_DAG (1; 0 skips), EPOCH_IMAGES, MC_CHIPS, BENCH_ARGS (more benchmark flags),
#      EXTRA_CONFIG (more --config items, e.g. 'seeds=[0]').
set -uo pipefail

main() {
  START=$(date +%s)
  REPO=$(cd "$(dirname "$0")/../.." && pwd)
  OUT=${OUT:?OUT must name the folder whose files come back}
  LIMIT_S=${LIMIT_S:-540}
  PROFILE=${PROFILE:-full}
  DEVICE=${DEVICE:-cuda}
  CORES=${CORES:-2}
  WHL=${WHL:-$REPO/.whl}
  SITE=${SITE:-/tmp/site}
  DATA_DIR=${DATA_DIR:-$REPO/.gpu/data}
  WORK=${WORK:-/tmp/nvmxbar-cifar}
  BENCH_S=${BENCH_S:-240}
  PACK_S=${PACK_S:-40}
  DEADLINE=$((START + LIMIT_S))
  mkdir -p "$OUT"
  LOG=$OUT/run_cifar.log
  : >"$LOG"
  cd "$REPO" || exit 1

  say() { printf '[run_cifar %4ds] %s\n' $(($(date +%s) - START)) "$*" | tee -a "$LOG"; }
  left() { echo $((DEADLINE - $(date +%s))); }
  min() { if [ "$1" -lt "$2" ]; then echo "$1"; else echo "$2"; fi; }
  say "start $(date -Is): LIMIT_S=$LIMIT_S PROFILE=$PROFILE DEVICE=$DEVICE WORK=$WORK OUT=$OUT"

  # ------------------------------------------------------------------ 0. the wheels, offline, and the imports
  shopt -s nullglob
  wheels=("$WHL"/*.whl)
  [ ${#wheels[@]} -gt 0 ] || {
    say "FAILED: no wheels in $WHL (run tools/gpu/make_wheelhouse.sh here first)"
    exit 1
  }
  say "installing ${#wheels[@]} wheels from $WHL into $SITE (no index, no deps)"
  if ! python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" \
    "${wheels[@]}" >>"$LOG" 2>&1; then
    say "FAILED: pip install (above)"
    exit 1
  fi
  export PYTHONPATH=$SITE:$REPO/src${PYTHONPATH:+:$PYTHONPATH}
  export MLFLOW_DISABLE_TELEMETRY=true PYTHONUNBUFFERED=1 OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE} MPLBACKEND=Agg
  {
    echo "== $(command -v python3): $(python3 -VV)"
    command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
    nproc
  } >>"$LOG" 2>&1
  if ! python3 - >>"$LOG" 2>&1 <<'EOF'
import importlib, torch
names = ["torch", "lightning", "numpy", "pandas", "snakemake", "mlflow", "optuna", "jsonschema", "sqlalchemy",
         "alembic", "matplotlib", "seaborn", "scipy"]
print("versions:", ", ".join(f"{n} {getattr(importlib.import_module(n), '__version__', '?')}" for n in names))
print("cuda:", torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
from nvmxbar import tracking, config, workplan  # noqa: F401  (the workflow's own imports)
from nvmxbar.search import storage  # noqa: F401
import mlflow.store.tracking.sqlalchemy_store  # noqa: F401  (the sqlite tracking store)
EOF
  then
    tail -20 "$LOG"
    say "FAILED: an import (above): a package is missing from the wheelhouse"
    exit 1
  fi
  say "$(grep -a '^versions:' "$LOG")"
  say "$(grep -a '^cuda:' "$LOG")"
  if [ "$DEVICE" = cuda ] && ! grep -aq '^cuda: True' "$LOG"; then
    say "FAILED: DEVICE=cuda but torch sees no CUDA device (DEVICE=cpu for the CPU test)"
    exit 1
  fi
  # the carried distributions, as a pattern (pip check writes - where the folder names have _)
  carried=$(ls "$SITE" | sed -n 's/-[^-]*\.dist-info$//p' | sed 's/[-_.]/[-_.]/g' | paste -sd '|')
  conflicts=$(python3 -m pip check 2>&1 | grep -aiE "^($carried) ")
  if [ -n "$conflicts" ]; then
    say "pip check, the carried packages' complaints (the run goes on):"
    echo "$conflicts" | head -20 | tee -a "$LOG"
  fi

  # ------------------------------------------------------------------ a. the throughput benchmark
  if [ "${RUN_BENCH:-1}" = 1 ] && [ $(($(left) - PACK_S - 60)) -lt 30 ]; then
    say "benchmark skipped: too little time left (LIMIT_S=$LIMIT_S)"
  elif [ "${RUN_BENCH:-1}" = 1 ]; then
    if [ "$DEVICE" = cuda ]; then
      bench=(--device cuda --epoch-images "${EPOCH_IMAGES:-45000}" --mc-chips "${MC_CHIPS:-25}")
    else
      bench=(--device cpu --threads "$CORES" --nets cifar --steps 2 --epoch-images "${EPOCH_IMAGES:-256}" --mc-chips "${MC_CHIPS:-2}")
    fi
    # shellcheck disable=SC2206
    bench+=(${BENCH_ARGS:-})
    limit=$(min "$BENCH_S" $(($(left) - PACK_S - 60)))
    say "benchmark (at most ${limit}s): python3 benchmarks/train_throughput.py ${bench[*]}"
    { echo "# python3 benchmarks/train_throughput.py ${bench[*]}   ($(date -Is))"; } >"$OUT/throughput.txt"
    t=$(date +%s)
    timeout -k 10 "$limit" python3 benchmarks/train_throughput.py "${bench[@]}" >>"$OUT/throughput.txt" 2>>"$LOG"
    rc=$?
    note=$([ $rc = 124 ] || [ $rc = 137 ] && echo ", stopped at its ${limit}s limit")
    echo "# exit $rc after $(($(date +%s) - t))s$note" >>"$OUT/throughput.txt"
    say "benchmark done (exit $rc$note):"
    tee -a "$LOG" <"$OUT/throughput.txt"
  fi

  # ------------------------------------------------------------------ b. the CIFAR-10 DAG, timed
  pid=""
  cleanup() { [ -n "$pid" ] && kill -KILL -- "-$pid" 2>/dev/null; }
  trap cleanup EXIT
  if [ "${RUN_DAG:-1}" = 1 ] && [ $(($(left) - PACK_S - 20)) -lt 30 ]; then
    say "DAG skipped: too little time left (LIMIT_S=$LIMIT_S)"
  elif [ "${RUN_DAG:-1}" = 1 ]; then
    mkdir -p "$WORK"
    ln -sfn "$REPO/config.yaml" "$WORK/config.yaml" # the Snakefile's configfile, read in the working directory
    export MLFLOW_TRACKING_URI="sqlite:///$WORK/results/mlflow.db"
    rm -rf "$WORK/.snakemake/locks" # a run killed earlier in this folder left its lock
    [ -d "$WORK/results" ] && say "note: $WORK/results exists: snakemake goes on from it (not a whole-DAG time)"
    smk=(python3 -m snakemake -s "$REPO/Snakefile" -d "$WORK" --scheduler greedy --rerun-incomplete)
    if [ "$DEVICE" = cuda ]; then
      smk+=(--profile "$REPO/workflow/profiles/gpu")
    else
      smk+=(--cores "$CORES")
    fi
    # shellcheck disable=SC2206
    smk+=(--config "profile=$PROFILE" "data_dir=$DATA_DIR" "datasets=[cifar10]" ${EXTRA_CONFIG:-})
    SMKLOG=$WORK/snakemake.log
    limit=$(($(left) - PACK_S - 20))
    say "DAG (at most ${limit}s): ${smk[*]}"
    t0=$(date +%s)
    dag_time() { # $1: status
      {
        echo "command: ${smk[*]}"
        echo "profile: $PROFILE  device: $DEVICE  results: $WORK/results  MLFLOW_TRACKING_URI=$MLFLOW_TRACKING_URI"
        echo "start: $(date -d "@$t0" -Is)"
        echo "status: $1"
        echo "wall_s: $(($(date +%s) - t0))"
        echo "progress: $(grep -a 'steps (' "$SMKLOG" | tail -1)"
        echo "jobs started by rule:"
        grep -aE '^(local)?rule [a-z_0-9]+:' "$SMKLOG" | sed -E 's/^(local)?rule //; s/:$//' | sort | uniq -c
        echo "jobs finished by rule:"
        grep -aoE 'Finished jobid: [0-9]+ \(Rule: [a-z_0-9]+\)' "$SMKLOG" | sed -E 's/.*Rule: //; s/\)//' | sort |
          uniq -c
      } >"$OUT/dag_time.txt" 2>/dev/null
      tail -c 15000000 "$SMKLOG" >"$OUT/snakemake.log" 2>/dev/null
    }
    setsid "${smk[@]}" >"$SMKLOG" 2>&1 </dev/null &
    pid=$!
    status=running
    last=""
    while kill -0 "$pid" 2>/dev/null; do
      sleep 5
      if [ $(($(date +%s) - t0)) -ge "$limit" ]; then
        say "time is up (${limit}s): stopping snakemake and its jobs (SIGTERM, then SIGKILL after 20 s)"
        kill -TERM -- "-$pid" 2>/dev/null
        for _ in $(seq 20); do
          kill -0 "$pid" 2>/dev/null || break
          sleep 1
        done
        kill -KILL -- "-$pid" 2>/dev/null
        status="stopped at the time limit (${limit}s): unfinished"
        break
      fi
      p=$(grep -a 'steps (' "$SMKLOG" | tail -1)
      if [ "$p" != "$last" ]; then
        say "DAG: $p"
        last=$p
        dag_time running
      fi
    done
    wait "$pid"
    rc=$?
    kill -KILL -- "-$pid" 2>/dev/null # whatever job is left
    pid=""
    [ "$status" = running ] && status=$([ $rc = 0 ] && echo "finished" || echo "failed (exit $rc)")
    dag_time "$status"
    say "DAG $status after $(($(date +%s) - t0))s; $(grep -a '^progress' "$OUT/dag_time.txt")"
    [[ $status == failed* ]] && grep -aE 'Error|error|Exception|Traceback' "$SMKLOG" | tail -15 | tee -a "$LOG"
  fi

  # ------------------------------------------------------------------ c. pack what comes back
  if [ -d "$WORK/results" ]; then
    say "packing $WORK/results"
    ex=(--exclude='*.pt' --exclude='*.npz' --exclude='*.ckpt' --exclude=mlartifacts --exclude=checkpoints)
    tar -czf "$OUT/results.tar.gz" -C "$WORK" "${ex[@]}" results 2>>"$LOG"
    if [ "$(stat -c %s "$OUT/results.tar.gz")" -gt $((15 * 1048576)) ]; then
      say "results.tar.gz over 15 MiB: again without PDFs and mlflow.db"
      tar -czf "$OUT/results.tar.gz" -C "$WORK" "${ex[@]}" --exclude='*.pdf' --exclude=mlflow.db results 2>>"$LOG"
    fi
    timeout 30 python3 benchmarks/workflow_times.py "$WORK/results" >"$OUT/workflow_times.txt" 2>&1
  fi
  say "done in $(($(date +%s) - START))s; in $OUT:"
  ls -l "$OUT" | tee -a "$LOG"
  [ -f "$OUT/dag_time.txt" ] && cat "$OUT/dag_time.txt"
  exit 0
}

main "$@"
