"""Benchmark: how much the position of a one-device tile's reference column (``chip.wires.reference_column``: after
the tile's columns, before them, or in the middle) moves what the wires cost the one-device (unipolar) deployments of
a results folder. A sensitivity of the model, not a choice: it reads the test split, as the report does.

The rows are driven at the first column's end, so a reference column at the far end (``last``, the shipped layout)
sees the most row-wire drop of its tile, one at the start (``first``) the least. Every column's current has its
reference's subtracted, so the position sets how much of the drop the subtraction cancels. For every deployment and
seed: the test accuracy on the ideal chip and with the chip's wires at ``--scale`` (devices at their targets, ideal
converters: one chip, nothing drawn) at each position; per deployment the mean +- std over the seeds and the paired
difference of each position to ``last`` with its 95 % t interval. The mapped networks are the workflow's
(mapping.json, crossbar.npz); only the reference column moves.

Run: .venv/bin/python benchmarks/reference_column.py RESULTS [--scale 1.0] [--samples N] [--threads 1]
Tiny: --samples 64
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from nvmxbar import files  # noqa: E402
from nvmxbar.core import noise  # noqa: E402
from nvmxbar.core.simulator import Simulator  # noqa: E402
from nvmxbar.data.arrays import network_inputs  # noqa: E402
from nvmxbar.devices import Wires  # noqa: E402
from nvmxbar.noise_settings import MonteCarlo, one_setting  # noqa: E402
from nvmxbar.stats import LEVEL, paired, summary  # noqa: E402


def accuracies(folder: Path, x: torch.Tensor, y: torch.Tensor, scale: float) -> dict[str, float]:
    """One deployment's test accuracy on the ideal chip and, per reference position, on the chip's wires x scale."""
    with np.load(folder / "crossbar.npz", allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    mapping = files.read_json(folder / "mapping.json")
    mc = MonteCarlo(1, None, 256, 1, (one_setting({"wire_scale": scale}, None, "extra"),))
    out = {}
    for where in Wires.REFERENCE_COLUMNS:
        m = copy.deepcopy(mapping)
        m["chip"]["wires"]["reference_column"] = where  # (also where a mapping.json is older than the field)
        sim = Simulator(arrays, m)
        if not out:  # the ideal chip: no wires, the position moot
            out["ideal"] = noise.ideal_accuracy(sim, x, y)
        out[where] = noise.evaluate(sim, x, y, mc, seed=0)[0]["accuracy_mean"]
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("results", type=Path)
    p.add_argument("--scale", type=float, default=1.0, help="x the chip's wires (evaluate_noise's wire_scale)")
    p.add_argument("--samples", type=int, default=None, help="test samples (default: the whole split)")
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    if not a.scale > 0:
        p.error(f"--scale {a.scale}: the wires must be on (> 0)")
    torch.set_num_threads(a.threads)
    folders = sorted(f.parent for f in a.results.glob("*/unipolar/b*/seed*/mapping.json"))
    if not folders:
        p.error(f"{a.results}: no one-device deployment (<dataset>/unipolar/b<bits>/seed<k>/mapping.json)")
    cols = ["ideal", *Wires.REFERENCE_COLUMNS]
    print(f"test accuracy (%) of the one-device deployments of {a.results}: the ideal chip, and the wires at "
          f"{a.scale:g} x with the reference column last (after the tile's columns), first or middle")  # fmt: skip
    print(f"{'deployment':<18} {'seed':>4}" + "".join(f"{c:>9}" for c in cols))
    rows: dict[str, list[dict]] = {}
    for f in folders:
        ds, bits, seed = f.parts[-4], f.parts[-2], f.parts[-1]
        x, y = network_inputs(a.results / "data" / f"{ds}.npz", "test", a.samples)
        r = accuracies(f, x, y, a.scale)
        rows.setdefault(f"{ds}/unipolar/{bits}", []).append(r)
        print(
            f"{ds + '/unipolar/' + bits:<18} {seed[4:]:>4}" + "".join(f"{100 * r[c]:>9.2f}" for c in cols), flush=True
        )
    print(
        f"\nper deployment: mean +- std over the seeds (n); position - last, paired over the seeds, {LEVEL:.0%} t interval"
    )
    for dep, rs in rows.items():
        stats = "   ".join(
            f"{c} {100 * m:.2f} +- {100 * s:.2f}" for c in cols for m, s, _ in [summary(r[c] for r in rs)]
        )
        print(f"  {dep}: {stats}   n={len(rs)}")
        for where in Wires.REFERENCE_COLUMNS[1:]:
            d = paired([r["last"] for r in rs], [r[where] for r in rs])
            ci = "no interval (one seed)" if d["beyond"] is None else (
                f"[{100 * d['low']:+.2f}, {100 * d['high']:+.2f}]" + (" beyond the seed spread" if d["beyond"] else ""))  # fmt: skip
            print(f"    {where} - last: {100 * d['diff']:+.2f} points {ci}")


if __name__ == "__main__":
    main()
