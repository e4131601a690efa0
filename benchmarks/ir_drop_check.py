"""Check: the simulator's fast IR-drop model (nvmxbar.core.ir_drop, conjugate gradients, as the simulator runs it
through nvmxbar.core.tile_wires) against the exact nodal solve (nvmxbar.core.parasitics, itself checked against
ngspice), on the tiles of every deployed layer of a results folder, under each device preset. For each (row tile,
column tile, mux cycle) problem it compares the column outputs the circuit converts (a pair's difference, a
one-device column minus its cycle's reference) for two inputs, every row at the full drive and random DAC codes:
the error relative to the problem's largest exact output. Prints the largest and mean error per deployment, layer
and preset; exits 1 when the largest passes --bound.

With --figure PNG it also draws one tile's column currents (the first deployment's first layer, its first row
tile, column tile and mux cycle, under the first preset, for one input of random DAC codes): ideal wires, the fast
model, the exact solve and ngspice (when it is on PATH), side by side, and their differences from the exact solve.

Run: .venv/bin/python benchmarks/ir_drop_check.py RESULTS [--presets ...] [--scale 1] [--tiles 4] [--bound 1e-4]
     [--figure results/figures/tile_currents.png]
Tiny: RESULTS --tiles 1 --presets rram_wan2022
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
from nvmxbar.core import parasitics, spice, tile_wires  # noqa: E402
from nvmxbar.core.simulator import Simulator  # noqa: E402
from nvmxbar.devices import PRESETS  # noqa: E402
from nvmxbar.report.device_repricing import on_preset  # noqa: E402

#: The fast model's largest relative error the note accepts: CG stops at a relative residual of 1e-6 on an operator
#: whose eigenvalues are >= 1, the chips are stored in float32 (6e-8), and the circuit's subtraction of a pair or a
#: reference column magnifies an error relative to the larger of the two currents; measured up to 1.3e-6 on the full
#: HAR profile's deployments (docs/FINDINGS.md): 1e-5 leaves a margin of 7.
BOUND = 1e-5


def deployments(results: Path, all_seeds: bool) -> list[tuple[Path, dict, dict]]:
    """Every mapped deployment (the lowest seed of each unless ``all_seeds``): (mapping path, mapping, arrays)."""
    out, seen = [], set()
    for mp in sorted(results.glob("*/*/*/seed*/mapping.json")) + sorted(results.glob("*/*/seed*/mapping.json")):
        model = mp.parent.parent
        if (model in seen and not all_seeds) or not mp.with_name("crossbar.npz").exists():
            continue
        seen.add(model)
        with np.load(mp.with_name("crossbar.npz")) as z:
            out.append((mp, json.loads(mp.read_text()), {k: z[k] for k in z.files}))
    return out


def exact_outputs(sim: Simulator, i: int, p: tile_wires.Phase, g: np.ndarray, scale: float, V: np.ndarray):
    """The exact circuit outputs of one problem for the inputs ``V`` (rows e - a, m): (signals, m)."""
    w = sim.chip.wires
    wires = parasitics.Wires(w.row_ohm_per_cell * scale, w.col_ohm_per_cell * scale, w.driver_ohm * scale,
                             w.sense_ohm * scale)  # fmt: skip
    cols = list(p.cols.tolist()) + ([p.ref] if p.ref is not None else [])
    G = np.zeros((sim.chip.tile.rows, len(cols)))
    G[p.rows.numpy()] = g[p.a : p.e][:, cols] * sim.dg_us * 1e-6
    W = parasitics.transfer_matrix(G, p.positions.numpy(), wires)[p.rows.numpy()] / (sim.dg_us * 1e-6)
    return combine(sim, i, p, W.T @ V)


def combine(sim: Simulator, i: int, p: tile_wires.Phase, cur: np.ndarray) -> np.ndarray:
    """Column currents (active columns [+ the reference], m) -> what the ADCs convert: a pair's difference, a
    one-device column minus the reference (the column's sign aside)."""
    k = len(p.cols)
    if sim.layers[i]["pair"] == 2 and not sim.digital:
        return cur[0:k:2] - cur[1:k:2]
    return cur[:k] - cur[k:] if p.ref is not None else cur[:k]


def check(sim: Simulator, scale: float, tiles: int, rng: np.random.Generator) -> list[dict]:
    """Per layer: the largest and mean relative error over its first ``tiles`` problems."""
    rows = []
    for i, lev in enumerate(sim.levels):
        g = (lev.double() + sim.g_off)[None]
        g_np = g[0].numpy()
        fast, fast_ref = sim.wired(i, g, scale)
        errs, drops = [], []
        for p in sim._phases[i][:tiles]:
            n = p.e - p.a
            V = np.concatenate([np.ones((n, 1)), rng.integers(0, sim.dac_levels + 1, (n, 7)) / sim.dac_levels], 1)
            want = exact_outputs(sim, i, p, g_np, scale, V)
            Wf = fast[0, p.a : p.e][:, p.cols].numpy()
            cur = Wf.T @ V
            if fast_ref is not None:
                cur = np.concatenate([cur, (fast_ref[0, p.a : p.e][:, p.cols[:1]].numpy()).T @ V])
            got = combine(sim, i, p, cur)
            top = max(np.abs(want).max(), 1e-300)
            errs.append(np.abs(got - want) / top)
            cells = g_np[p.a : p.e][:, list(p.cols.tolist()) + ([p.ref] if p.ref is not None else [])]
            ideal = combine(sim, i, p, cells.T @ V)
            drops.append(np.abs(ideal - want) / top)
        e = np.concatenate([x.ravel() for x in errs])
        d = np.concatenate([x.ravel() for x in drops])
        rows.append({"layer": sim.layers[i]["name"], "problems": len(errs), "max": e.max(), "mean": e.mean(),
                     "drop": d.max()})  # fmt: skip
    return rows


def tile_currents(sim: Simulator, scale: float, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Layer 0's first problem, one input of random DAC codes (V_read x code / levels on each row): the physical
    column currents in uA (the cycle's columns, then its reference column) with ideal wires, the fast model, the
    exact solve and, when ngspice is on PATH, ngspice (key absent otherwise); ``labels`` their physical columns
    ('ref': the reference column)."""
    g = (sim.levels[0].double() + sim.g_off)[None]
    fast, fast_ref = sim.wired(0, g, scale)
    p = sim._phases[0][0]
    cols = list(p.cols.tolist()) + ([p.ref] if p.ref is not None else [])
    unit = sim.dg_us * 1e-6  # siemens per dG
    G = np.zeros((sim.chip.tile.rows, len(cols)))
    G[p.rows.numpy()] = g[0, p.a : p.e][:, cols].numpy() * unit
    V = np.zeros(sim.chip.tile.rows)
    V[p.rows.numpy()] = sim.chip.device.v_read_v * rng.integers(0, sim.dac_levels + 1, p.e - p.a) / sim.dac_levels
    w = sim.chip.wires
    wires = parasitics.Wires(*(scale * x for x in (w.row_ohm_per_cell, w.col_ohm_per_cell, w.driver_ohm, w.sense_ohm)))
    pos = p.positions.numpy()
    Wf = fast[0, p.a : p.e][:, p.cols].numpy()
    if fast_ref is not None:
        Wf = np.concatenate([Wf, fast_ref[0, p.a : p.e][:, p.cols[:1]].numpy()], 1)
    labels = np.array([str(int(q)) for q in pos[: len(p.cols)]] + ["ref"] * (p.ref is not None))
    out = {"labels": labels, "ideal": G.T @ V * 1e6, "fast": Wf.T @ V[p.rows.numpy()] * unit * 1e6}
    out["exact"] = parasitics.transfer_matrix(G, pos, wires).T @ V * 1e6
    if shutil.which("ngspice"):
        out["ngspice"] = spice.run_ngspice(spice.netlist(G, V, pos, wires)) * 1e6
    return out


def plot_tile(cur: dict[str, np.ndarray], title: str, path: Path) -> None:
    """The figure of :func:`tile_currents`: currents side by side (top), |difference from the exact solve| (below,
    log scale)."""
    import matplotlib as mpl

    from nvmxbar.report.figures import new_figure, save_figure, style

    kinds = [k for k in ("ideal", "fast", "exact", "ngspice") if k in cur]
    labels = {"ideal": "ideal wires (G^T V)", "fast": "fast model (simulator)", "exact": "exact nodal solve",
              "ngspice": "ngspice 39"}  # fmt: skip
    x, width = np.arange(len(cur["exact"])), 0.8 / len(kinds)
    with mpl.rc_context(style()):
        fig = new_figure(figsize=(12, 6.5), layout="constrained")
        top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[2, 1])
        for j, k in enumerate(kinds):
            top.bar(x + (j - (len(kinds) - 1) / 2) * width, cur[k], width, label=labels[k])
            if k != "exact":
                d = np.abs(cur[k] - cur["exact"]) / np.abs(cur["exact"]).max()
                bottom.semilogy(x, np.maximum(d, 1e-16), "o-", ms=4, label=f"{labels[k]} - exact")
        top.set_ylabel("column current (uA)")
        top.set_title(title, loc="left")
        top.legend(fontsize=8.5)
        bottom.set_ylabel("|difference| / largest exact")
        bottom.set_xticks(x, list(cur["labels"]))
        bottom.set_xlabel("physical column (the mux cycle's conducting columns, then the reference column)")
        bottom.legend(fontsize=8.5, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    save_figure(fig, path.stem, path.parent, 150)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("results", type=Path)
    ap.add_argument("--presets", nargs="+", default=list(PRESETS), choices=PRESETS)
    ap.add_argument("--scale", type=float, default=1.0, help="x the chip's wires (evaluate_noise.sweep.wire_scale)")
    ap.add_argument("--tiles", type=int, default=4, help="problems (row tile, column tile, cycle) checked per layer")
    ap.add_argument("--bound", type=float, default=BOUND)
    ap.add_argument("--all-seeds", action="store_true")
    ap.add_argument("--figure", type=Path, help="draw one tile's column currents into this PNG (and PDF)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    found = deployments(args.results, args.all_seeds)
    if not found:
        print(f"no mapped deployment (mapping.json + crossbar.npz) under {args.results}", file=sys.stderr)
        return 2
    rng = np.random.default_rng(0)
    worst = 0.0
    print(f"wires x {args.scale:g}; error: fast model against the exact solve; IR drop: exact against ideal wires")
    print("| deployment | preset | layer | problems | largest error | mean error | largest IR drop |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for mp, mapping, arrays in found:
        name = str(mp.parent.relative_to(args.results))
        for preset in args.presets:
            sim = Simulator(arrays, on_preset(mapping, preset))
            for r in check(sim, args.scale, args.tiles, rng):
                worst = max(worst, r["max"])
                print(
                    f"| {name} | {preset} | {r['layer']} | {r['problems']} | {r['max']:.2e} | {r['mean']:.2e} | "
                    f"{100 * r['drop']:.1f} % |"
                )
    print(f"largest relative error {worst:.2e} (bound {args.bound:g})")
    if args.figure:
        mp, mapping, arrays = found[0]
        sim = Simulator(arrays, on_preset(mapping, args.presets[0]))
        cur = tile_currents(sim, args.scale, rng)
        top = np.abs(cur["exact"]).max()
        for k in ("ideal", "fast", "ngspice"):
            if k in cur:
                print(
                    f"tile currents, {k} against exact: largest |difference| {np.abs(cur[k] - cur['exact']).max() / top:.2e} of the largest"
                )
        name = f"{mp.parent.relative_to(args.results)}, layer {sim.layers[0]['name']}, {args.presets[0]}"
        plot_tile(cur, f"One tile's column currents: {name}, wires x {args.scale:g}", args.figure)
        print(f"figure: {args.figure}" + ("" if "ngspice" in cur else " (ngspice not on PATH: left out)"))
    return 0 if worst <= args.bound else 1


if __name__ == "__main__":
    sys.exit(main())
