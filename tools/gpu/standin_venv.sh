#!/usr/bin/env bash
# A CPU stand-in of the GPU box's Python, to test the kit here: tools/gpu/standin_venv.sh [VENV]
# (default /tmp/gpubox-venv). A fresh venv from the system python3 holding what the box's python3 holds
# (tools/gpu/box_packages.txt; torch CPU instead of CUDA, at requirements.txt's pin) and NOTHING else:
# every package pip pulls in that the box lacks is uninstalled again, so a run that needs it fails here too.
# Then: PYVER=3.11 tools/gpu/make_wheelhouse.sh /tmp/whl311 and
#   PATH=$VENV/bin:$PATH OUT=/tmp/gpuout WHL=/tmp/whl311 DEVICE=cpu PROFILE=smoke bash tools/gpu/run_cifar.sh
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
VENV=${1:-/tmp/gpubox-venv}
pin() { grep -iE "^$1==" "$REPO/requirements.txt" || echo "$1"; }

[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip install --quiet --disable-pip-version-check)
# torch CPU at requirements.txt's pin, as `make setup` gets it: pip's find-links here (/opt/wheels) holds the
# 2.13.0+cpu wheel, which `torch==2.13.0` matches and prefers
flock /tmp/pip.lock "${PIP[@]}" "$(pin torch)"
# the rest of the box's list that the workflow or the benchmark could touch (the brief's list)
flock /tmp/pip.lock "${PIP[@]}" "$(pin lightning)" pytorch-lightning "$(pin pandas)" "$(pin seaborn)" \
  "$(pin numpy)" "$(pin scipy)" "matplotlib>=3.9,<3.13" pillow pyyaml jinja2 tqdm requests psutil packaging attrs \
  click cloudpickle protobuf pyarrow rich tabulate wrapt typer werkzeug filelock fsspec markdown pygments \
  python-dateutil six urllib3 idna certifi charset-normalizer typing-extensions sympy networkx msgpack anyio h11 \
  httpx httpcore uvloop pyparsing kiwisolver cycler fonttools contourpy joblib threadpoolctl scikit-learn \
  colorama pluggy pytest

# uninstall what the box does not have (pip, setuptools and wheel stay: the box has them)
extra=$(
  "$VENV/bin/python" - "$HERE/box_packages.txt" <<'EOF'
import re, sys
from importlib.metadata import distributions
box = {l.strip() for l in open(sys.argv[1]) if l.strip() and not l.startswith("#")}
norm = lambda n: re.sub(r"[-_.]+", "-", n).lower()
print(" ".join(sorted({norm(d.metadata["Name"]) for d in distributions()} - box)))
EOF
)
if [ -n "$extra" ]; then
  echo "standin_venv: not on the box, uninstalled: $extra"
  # shellcheck disable=SC2086
  "$VENV/bin/python" -m pip uninstall --quiet -y $extra
fi
"$VENV/bin/python" -c "import torch, lightning, pandas; print('standin_venv:', '$VENV', 'torch', torch.__version__)"
