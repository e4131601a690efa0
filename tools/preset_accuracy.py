"""The noisy-crossbar accuracy of a results folder's deployments under each device preset: the same trained networks
and device levels (crossbar.npz), the chip's device swapped for each preset's (its G range and its measured noise),
simulated with programming noise at ``--scale`` x the preset's sigma(G) (the workflow's evaluate_noise model,
nvmxbar.core.noise) on the TEST split, which is only reported here. Mean +- std over the seeds (n), each seed the
mean over ``--chips`` chips. The networks are not re-searched or retrained for a preset: a preset run of the
workflow (`--config 'chip={device: {preset: ...}}'`) re-searches the unipolar and signed ones.

    .venv/bin/python tools/preset_accuracy.py results --dataset har --chips 10
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from operating_point import deployments, on_preset  # noqa: E402

from nvmxbar.core import noise  # noqa: E402
from nvmxbar.core.simulator import Simulator  # noqa: E402
from nvmxbar.data.arrays import network_inputs  # noqa: E402
from nvmxbar.devices import PRESETS  # noqa: E402
from nvmxbar.settings import MonteCarlo, NoiseModel  # noqa: E402


def accuracy(
    arrays: dict, mapping: dict, x: torch.Tensor, y: torch.Tensor, scale: float, chips: int, seed: int
) -> float:
    """Mean accuracy over ``chips`` chips with programming noise at ``scale`` x the device's sigma(G)."""
    mc = MonteCarlo(chips, None, 256, min(chips, 5), (NoiseModel.programming(scale),))
    (row,) = noise.evaluate(Simulator(arrays, mapping), x, y, mc, seed)
    return row["accuracy_mean"]


def table(
    results: Path, dataset: str, presets: list[str], scale: float, chips: int, samples: int | None
) -> pd.DataFrame:
    x, y = network_inputs(results / "data" / f"{dataset}.npz", "test", samples)
    rows = []
    for mp, mapping, arrays in deployments(results):
        if mapping["dataset"] != dataset:
            continue
        seed = int(mp.parent.name.removeprefix("seed"))
        for preset in presets:
            acc = accuracy(arrays, on_preset(mapping, preset), x, y, scale, chips, seed)
            rows.append(
                {"variant": mapping["variant"], "bits": mapping["bits"], "preset": preset, "seed": seed, "acc": acc}
            )
            print(f"{mapping['variant']}/b{mapping['bits']} seed {seed} {preset}: {acc:.4f}", file=sys.stderr)
    if not rows:
        raise SystemExit(f"{results / dataset}: no mapping.json with its crossbar.npz")
    df = pd.DataFrame(rows)
    out = df.groupby(["variant", "bits", "preset"], sort=False)["acc"].agg(["mean", "std", "size"]).reset_index()
    return out.rename(columns={"mean": "accuracy_mean", "std": "accuracy_std", "size": "n_seeds"})


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", type=Path)
    ap.add_argument("--dataset", default="har")
    ap.add_argument("--presets", nargs="+", default=list(PRESETS), choices=PRESETS)
    ap.add_argument("--scale", type=float, default=1.0, help="programming noise, x the preset's sigma(G)")
    ap.add_argument("--chips", type=int, default=10)
    ap.add_argument("--samples", type=int, default=None, help="test samples (default: all)")
    ap.add_argument("--csv", type=Path)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    t = table(args.results, args.dataset, args.presets, args.scale, args.chips, args.samples)
    if args.csv:
        t.to_csv(args.csv, index=False)
    print(t.to_markdown(index=False, floatfmt=".4f"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
