"""The figure accuracy_vs_nonideal_<dataset>: accuracy against the scale of the chip's wires (IR drop) and of its
converters' errors, one at a time, and on the realistic chip; one line per variant x bits, error bars over the seeds
(rule report_figure, kind accuracy_vs_nonideal; the numbers: tables/nonideal.csv)."""

from __future__ import annotations

import matplotlib as mpl
import numpy as np
import pandas as pd

from .figures import bits_style, new_figure, style, variant_color
from .nonideal import IDEAL, REALISTIC, nonideal_table, per_seed
from .paper import DATASET_NAMES

PANELS = (("wires", "IR drop: wire resistance (x chip.wires)"), ("converters", "converter error (x the cited sigmas)"))


def draw(frames: dict[str, pd.DataFrame], dataset: str, cfg: dict):
    """The figure of ``dataset`` from the collected frames (noise.csv of every deployment and seed)."""
    table = nonideal_table(per_seed(frames["noise"]))
    meta = frames["meta"].iloc[0]
    return plot(table[table.dataset == dataset], dataset, list(meta.variants), list(meta.bits))


def plot(t: pd.DataFrame, dataset: str, variants: list[str], bits: list[int]):
    """Three panels: accuracy against the wire scale and against the converter-error scale (0 = the ideal chip;
    the x axis places the scales evenly, labelled with their values), and the ideal against the realistic chip;
    each point the mean over the seeds of each seed's mean over chips, error bars the std across the seeds. A second
    row zooms on the deployments trained at device precision (the float baseline left out): its collapse would
    otherwise squeeze their differences into a line."""
    with mpl.rc_context(style()):
        fig = new_figure(figsize=(13, 9.6), layout="constrained")
        grid = fig.subplots(2, 3, sharey="row", width_ratios=[1, 1, 0.8])
        if t.empty:
            grid[0, 0].text(
                0.5, 0.5, "no wire or converter setting in noise.csv", ha="center", transform=grid[0, 0].transAxes
            )
            return fig
        deployments = [(v, b) for b in bits for v in variants if ((t.variant == v) & (t.bits == b)).any()]
        trained = [(v, b) for v, b in deployments if v != "baseline"]
        _row(grid[0], t, deployments, deployments, bits, variants)
        if trained:
            _row(grid[1], t, trained, deployments, bits, variants)
            # the zoom holds the chip as cited (scales up to 1) and the realistic one; a stress point beyond
            # (4 x) below it is read in the top row
            near = t[(t.variant != "baseline") & (t.condition.isin([IDEAL, REALISTIC]) | (t.scale.astype(float) <= 1))]
            low = float((near["mean"] - near["std"].fillna(0)).min())
            high = float((near["mean"] + near["std"].fillna(0)).max())
            grid[1, 0].set_ylim(max(0.0, 100 * low - 1.5), min(100.0, 100 * high + 1))
            grid[1, 0].set_ylabel("Test accuracy (%), trained deployments")
            for ax in grid[1]:
                ax.set_title(ax.get_title(loc="left") + " (zoom, no baseline)", loc="left")
            grid[1, 0].set_title("wires, alone (zoom, no baseline; below it: top row)", loc="left")
        else:
            for ax in grid[1]:
                ax.set_visible(False)
        grid[0, 0].set_ylabel("Test accuracy (%)")
        n = "/".join(str(int(x)) for x in sorted(set(t.n_seeds)))
        chips = "/".join(str(int(x)) for x in sorted(set(t.instances)))
        fig.suptitle(f"{DATASET_NAMES.get(dataset, dataset)}: accuracy under IR drop and converter error")
        fig.text(
            0.0,
            -0.01,
            f"points: mean over n = {n} seeds of each seed's mean over {chips} simulated chips; "
            "error bars: std across the seeds; realistic chip: the preset's programming and read noise, drift at "
            "one day, wires and converters together",
            fontsize=8.5,
            color="#444444",
            va="top",
        )
        grid[0, 1].legend(loc="lower left", title="deployment", fontsize=8.5)
    return fig


def _row(axes, t: pd.DataFrame, shown: list[tuple], deployments: list[tuple], bits: list[int], variants: list[str]):
    """One row of the three panels with the deployments ``shown`` (each keeps its colour, style and dodge among all
    ``deployments``)."""

    def line(ax, v: str, b: int, g: pd.DataFrame) -> None:
        """One deployment's points at g.x, dodged by its rank, error bars the std over the seeds."""
        ls, mk = bits_style(b, bits)
        shift = (deployments.index((v, b)) - (len(deployments) - 1) / 2) * 0.03
        ax.errorbar(g.x + shift, 100 * g["mean"], yerr=100 * g["std"].fillna(0), ls=ls, marker=mk, lw=2, ms=6,
                    capsize=3.5, color=variant_color(v, variants), label=f"{v}, {b}-bit devices")  # fmt: skip

    for ax, (axis, label) in zip(axes, PANELS, strict=False):
        scales = sorted({0.0, *t[t.axis == axis].scale.astype(float)})
        pos = {s: i for i, s in enumerate(scales)}
        for v, b in shown:
            g = t[(t.variant == v) & (t.bits == b) & ((t.axis == axis) | (t.condition == IDEAL))]
            line(ax, v, b, g.assign(x=g.scale.astype(float).map(pos)).sort_values("x"))
        ax.set_xticks(range(len(scales)), [f"{s:g}" for s in scales])
        ax.set_xlabel(label)
        ax.set_title(f"{axis}, alone", loc="left")
    ax = axes[2]
    for v, b in shown:
        g = t[(t.variant == v) & (t.bits == b) & t.condition.isin([IDEAL, REALISTIC])]
        line(ax, v, b, g.assign(x=np.where(g.condition == IDEAL, 0, 1)).sort_values("x"))
    ax.set_xticks([0, 1], ["ideal chip", "realistic chip"])
    ax.set_xlim(-0.5, 1.5)
    ax.set_title("all together", loc="left")
