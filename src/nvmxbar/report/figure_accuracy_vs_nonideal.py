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
    each point the mean over the seeds of each seed's mean over chips, error bars the std across the seeds."""
    with mpl.rc_context(style()):
        fig = new_figure(figsize=(13, 5.2), layout="constrained")
        axes = fig.subplots(1, 3, sharey=True, width_ratios=[1, 1, 0.8])
        if t.empty:
            axes[0].text(
                0.5, 0.5, "no wire or converter setting in noise.csv", ha="center", transform=axes[0].transAxes
            )
            return fig
        deployments = [(v, b) for b in bits for v in variants if ((t.variant == v) & (t.bits == b)).any()]

        def line(ax, k: int, g: pd.DataFrame, v: str, b: int) -> None:
            """One deployment's points at g.x, dodged by its rank k, error bars the std over the seeds."""
            ls, mk = bits_style(b, bits)
            shift = (k - (len(deployments) - 1) / 2) * 0.03
            ax.errorbar(g.x + shift, 100 * g["mean"], yerr=100 * g["std"].fillna(0), ls=ls, marker=mk, lw=2, ms=6,
                        capsize=3.5, color=variant_color(v, variants), label=f"{v}, {b}-bit devices")  # fmt: skip

        for ax, (axis, label) in zip(axes, PANELS, strict=False):
            scales = sorted({0.0, *t[t.axis == axis].scale.astype(float)})
            pos = {s: i for i, s in enumerate(scales)}
            for k, (v, b) in enumerate(deployments):
                g = t[(t.variant == v) & (t.bits == b) & ((t.axis == axis) | (t.condition == IDEAL))]
                line(ax, k, g.assign(x=g.scale.astype(float).map(pos)).sort_values("x"), v, b)
            ax.set_xticks(range(len(scales)), [f"{s:g}" for s in scales])
            ax.set_xlabel(label)
            ax.set_title(f"{axis}, alone", loc="left")
        ax = axes[2]
        for k, (v, b) in enumerate(deployments):
            g = t[(t.variant == v) & (t.bits == b) & t.condition.isin([IDEAL, REALISTIC])]
            line(ax, k, g.assign(x=np.where(g.condition == IDEAL, 0, 1)).sort_values("x"), v, b)
        ax.set_xticks([0, 1], ["ideal chip", "realistic chip"])
        ax.set_xlim(-0.5, 1.5)
        ax.set_title("all together", loc="left")
        axes[0].set_ylabel("Test accuracy (%)")
        n = "/".join(str(int(x)) for x in sorted(set(t.n_seeds)))
        chips = "/".join(str(int(x)) for x in sorted(set(t.instances)))
        fig.suptitle(f"{DATASET_NAMES.get(dataset, dataset)}: accuracy under IR drop and converter error")
        fig.text(
            0.0,
            -0.02,
            f"points: mean over n = {n} seeds of each seed's mean over {chips} simulated chips; "
            "error bars: std across the seeds; realistic chip: the preset's programming and read noise, drift at "
            "one day, wires and converters together",
            fontsize=8.5,
            color="#444444",
            va="top",
        )
        axes[1].legend(loc="lower left", title="deployment", fontsize=8.5)
    return fig
