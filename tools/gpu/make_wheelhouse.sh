#!/usr/bin/env bash
# Here (a machine that reaches PyPI), from anywhere: tools/gpu/make_wheelhouse.sh [DIR]
# Prepares what tools/gpu/run_cifar.sh needs on the GPU box (python3 3.12, x86-64, no internet), beside the tree:
#  - DIR (default .whl/ at the repo root): cp312 manylinux x86-64 wheels of what the workflow needs that the box's
#    python3 lacks (snakemake, mlflow-skinny, optuna, jsonschema, sqlalchemy, alembic and their needs, less
#    tools/gpu/box_packages.txt), one version per package, sdist-only ones built here (tools/gpu/wheelhouse.py);
#  - .gpu/data/cifar10/: the CIFAR-10 archive, from $NVMXBAR_DATA_DIR/cifar10/ (default /work/shared/data).
# Both folders are ignored through .git/info/exclude (lines appended once). Prints the sizes that travel.
# Env: PYVER (default 3.12; 3.11 for the CPU stand-in test), EXCLUDE (packages left out, default pulp),
#      NO_DATA=1 (wheels only).
# Then, with the device tool: run `bash tools/gpu/run_cifar.sh` with carry [".whl", ".gpu"].
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
DIR=${1:-$REPO/.whl}
PYVER=${PYVER:-3.12}
DATA_SRC=${NVMXBAR_DATA_DIR:-/work/shared/data}
cd "$REPO"

exclude=$(git rev-parse --git-path info/exclude)
mkdir -p "$(dirname "$exclude")"
touch "$exclude"
for line in /.whl/ /.gpu/; do
  grep -qxF "$line" "$exclude" || echo "$line" >>"$exclude"
done

python3 "$REPO/tools/gpu/wheelhouse.py" "$DIR" --python-version "$PYVER" ${EXCLUDE+--exclude "$EXCLUDE"} \
  2> >(grep -av '^WARNING: Location' >&2)

if [ "${NO_DATA:-0}" != 1 ]; then
  src=$(ls "$DATA_SRC"/cifar10/*.tar.gz "$DATA_SRC"/cifar10/*.tgz 2>/dev/null | head -1 || true)
  [ -n "$src" ] || {
    echo "make_wheelhouse: no CIFAR-10 archive in $DATA_SRC/cifar10/ (NVMXBAR_DATA_DIR)" >&2
    exit 1
  }
  mkdir -p .gpu/data/cifar10
  cp -u "$src" .gpu/data/cifar10/
fi

mib() { du -cb "$@" 2>/dev/null | tail -1 | awk '{printf "%.1f", $1 / 1048576}'; }
tree=$(git ls-files -co --exclude-standard -z | du -cb --files0-from=- 2>/dev/null | tail -1 | awk '{printf "%.1f", $1 / 1048576}')
echo "make_wheelhouse: wheels $(mib "$DIR") MiB ($(ls "$DIR"/*.whl | wc -l) in $DIR), data $(mib .gpu) MiB (.gpu/)," \
  "working tree ${tree} MiB: the device tool's limit is 64 MiB in all"
