"""Benchmark: the noise sweep (rule evaluate_noise) per mapped model of a results folder.

Prints, for every results/<dataset>/<variant>/b<bits>/ with a crossbar.npz:
  * the wall time evaluate_noise recorded in noise_summary.json (the sweep as configured for that run), and
  * a fresh timing of ONE noisy setting (prog_sigma 0.02) with 5 chips on up to 512 test samples, 2 threads,
    and the cost per chip-sample, extrapolated to the full-profile sweep (noisy settings x chips x the whole
    test split: 2,947 HAR windows, 10,000 CIFAR-10 images), whatever the folder's profile.
Not a test. Run: .venv/bin/python benchmarks/noise_sweep.py [results_dir] [dataset]
"""

import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from nvmxbar import config  # noqa: E402
from nvmxbar.core import noise  # noqa: E402
from nvmxbar.core.simulator import Simulator  # noqa: E402
from nvmxbar.data.arrays import network_inputs  # noqa: E402
from nvmxbar.settings import MonteCarlo, NoiseModel  # noqa: E402

results = Path(sys.argv[1] if len(sys.argv) > 1 else "results")
dataset = sys.argv[2] if len(sys.argv) > 2 else "har"
torch.set_num_threads(2)
FULL_TEST = {"har": 2947, "cifar10": 10000}
cfg = config.validate(yaml.safe_load((Path(__file__).resolve().parents[1] / "config.yaml").read_text()))[
    "evaluate_noise"
]
mc = MonteCarlo.from_config(cfg)
n_settings = len(mc.models)
data = results / "data" / f"{dataset}.npz"
x, y = network_inputs(data, "test", None)
print(
    f"{dataset}: timed on {min(512, len(x))} test samples; full-profile sweep = {n_settings} settings x "
    f"{cfg['instances']} chips x {FULL_TEST[dataset]} samples; 2 threads"
)
print(
    f"{'model':<14}{'tiles':>6}{'devices':>10}{'recorded sweep':>16}{'1 setting, 5 chips, 512':>26}{'us/chip-sample':>16}{'sweep (extrap.)':>17}"
)
total_rec = total_ext = 0.0
for npz in sorted(results.glob(f"{dataset}/*/b*/crossbar.npz")):
    d = npz.parent
    mapping = json.loads((d / "mapping.json").read_text())
    with np.load(npz) as z:
        sim = Simulator({k: z[k] for k in z.files}, mapping)
    summ = d / "noise_summary.json"
    rec = json.loads(summ.read_text())["wall_time_s"] if summ.exists() else float("nan")
    model = NoiseModel.programming(0.02, mc.models[0].drift)
    t = time.perf_counter()
    chips = sim.chips(noise.Perturbation(model, 5, sim, torch.Generator().manual_seed(0)))  # drawn once
    n = min(512, len(x))
    for a in range(0, n, cfg["batch_size"]):
        sim.forward(x[a : min(a + cfg["batch_size"], n)], perturb=chips)
    dt = time.perf_counter() - t
    per = dt / (5 * n)
    noisy = sum(1 for m in mc.models if not m.ideal)
    ext = per * noisy * cfg["instances"] * FULL_TEST[dataset]
    total_rec += 0 if math.isnan(rec) else rec
    total_ext += ext
    name = f"{d.parent.name}/{d.name}"
    print(
        f"{name:<14}{mapping['total']['tiles']:>6}{mapping['total']['devices']:>10}{rec:>15.0f}s{dt:>25.2f}s{per * 1e6:>16.0f}{ext:>16.0f}s"
    )
print(f"{'all':<14}{'':>6}{'':>10}{total_rec:>15.0f}s{'':>26}{'':>16}{total_ext:>16.0f}s")
