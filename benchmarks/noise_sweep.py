"""Benchmark: the noise sweep (rule evaluate_noise) per mapped model of a results folder.

Prints ONE ROW PER DEPLOYMENT AND SEED, for every RESULTS/<dataset>/<variant>/b<bits>/seed<s>/ with a
crossbar.npz (no mean over seeds: the seeds' models are different networks, their times are shown side by side),
then a row "all" with the sums:
  * the wall time evaluate_noise recorded in noise_summary.json (the sweep as configured for that run; "nan"
    where the sweep has not run), and
  * a fresh timing of ONE noisy setting (prog_sigma 1.0: the device's sigma(G)) with --chips chips (5) on up to --samples test samples
    (512), --threads threads (2), and the cost per chip-sample, extrapolated to the full-profile sweep (noisy
    settings x chips x the whole test split: 2,947 HAR windows, 10,000 CIFAR-10 images), whatever the folder's
    profile.
Not a test. It needs RESULTS/data/<dataset>.npz and at least one mapped model (rule map_crossbar).

Run: .venv/bin/python benchmarks/noise_sweep.py [RESULTS] [DATASET] [--chips 5] [--samples 512] [--threads 2]
Tiny: .venv/bin/python benchmarks/noise_sweep.py results har --chips 2 --samples 32 --threads 1
"""

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
from nvmxbar import config  # noqa: E402
from nvmxbar.core import noise  # noqa: E402
from nvmxbar.core.simulator import Simulator  # noqa: E402
from nvmxbar.data.arrays import network_inputs  # noqa: E402
from nvmxbar.settings import MonteCarlo, NoiseModel  # noqa: E402

FULL_TEST = {"har": 2947, "cifar10": 10000}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("results", nargs="?", default="results", type=Path, help="the workflow's results folder")
    ap.add_argument("dataset", nargs="?", default="har", choices=list(FULL_TEST))
    ap.add_argument("--chips", type=int, default=5, help="chips of the fresh timing (default 5)")
    ap.add_argument("--samples", type=int, default=512, help="test samples of the fresh timing, at most (default 512)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    if args.chips < 1 or args.samples < 1 or args.threads < 1:
        ap.error("--chips, --samples and --threads: at least 1")
    results, dataset = args.results, args.dataset
    data = results / "data" / f"{dataset}.npz"
    mapped = sorted(results.glob(f"{dataset}/*/b*/seed*/crossbar.npz"))
    if not data.is_file() or not mapped:
        missing = data if not data.is_file() else f"{results}/{dataset}/<variant>/b<bits>/seed<s>/crossbar.npz"
        print(
            f"noise_sweep: {missing} not found: run the workflow (rules prepare_data, map_crossbar) first",
            file=sys.stderr,
        )
        return 2
    torch.set_num_threads(args.threads)
    # the full profile's sweep, whatever the folder's profile: what the extrapolation is for
    cfg = config.load(ROOT / "config.yaml", {"profile": "full"})["evaluate_noise"]
    mc = MonteCarlo.from_config(cfg)
    noisy = sum(1 for m in mc.models if not m.ideal)
    x, _ = network_inputs(data, "test", None)
    n = min(args.samples, len(x))
    print(
        f"{dataset}: timed on {n} test samples, {args.chips} chips; full-profile sweep = {len(mc.models)} settings "
        f"({noisy} noisy) x {cfg['instances']} chips x {FULL_TEST[dataset]} samples; {torch.get_num_threads()} threads"
    )
    timed = f"1 setting, {args.chips} chips, {n}"
    print(
        f"{'model':<22}{'tiles':>6}{'devices':>10}{'recorded sweep':>16}{timed:>26}{'us/chip-sample':>16}{'sweep (extrap.)':>17}"
    )
    total_rec = total_ext = 0.0
    for npz in mapped:
        d = npz.parent
        mapping = json.loads((d / "mapping.json").read_text())
        with np.load(npz) as z:
            sim = Simulator({k: z[k] for k in z.files}, mapping)
        summ = d / "noise_summary.json"
        rec = json.loads(summ.read_text())["wall_time_s"] if summ.exists() else float("nan")
        model = NoiseModel.programming(1.0, mc.models[0].drift)
        t = time.perf_counter()
        chips = sim.chips(noise.Perturbation(model, args.chips, sim, torch.Generator().manual_seed(0)))  # drawn once
        for a in range(0, n, cfg["batch_size"]):
            sim.forward(x[a : min(a + cfg["batch_size"], n)], perturb=chips)
        dt = time.perf_counter() - t
        per = dt / (args.chips * n)
        ext = per * noisy * cfg["instances"] * FULL_TEST[dataset]
        total_rec += 0 if math.isnan(rec) else rec
        total_ext += ext
        name = str(d.relative_to(results / dataset))  # <variant>/b<bits>/seed<s>
        print(
            f"{name:<22}{mapping['total']['tiles']:>6}{mapping['total']['devices']:>10}{rec:>15.1f}s{dt:>25.3f}s{per * 1e6:>16.1f}{ext:>16.1f}s"
        )
    print(f"{'all':<22}{'':>6}{'':>10}{total_rec:>15.1f}s{'':>26}{'':>16}{total_ext:>16.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
