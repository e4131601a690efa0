"""The figure accuracy_seeds_<dataset>: every seed's accuracy of every deployment as a dot, with the mean ± std over
the seeds, in three panels (the trained model, the ideal crossbar, the noisy crossbar at the reference programming
noise), and the paper's figure beside the deployment and quantity the report's verdict compares it with."""

from __future__ import annotations

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

from ..stats import summary
from .figures import bits_style, new_figure, style, variant_color
from .paper import DATASET_NAMES, paper_accuracy
from .seeds import seeds_text

PANELS = (
    ("test_accuracy", "Trained model"),
    ("ideal_crossbar_accuracy", "Ideal crossbar"),
    ("noisy_accuracy", "Noisy crossbar"),
)
PAPER_COLOR = "#B2182B"
#: The panel that carries a deployment's paper figure: the float figure is the float network's (the baseline's
#: trained model); the 2-bit only-positive one is compared with the deployed network on the ideal crossbar.
PAPER_PANEL = {"baseline": "test_accuracy"}


def _jitter(n: int, width: float = 0.22) -> np.ndarray:
    """Evenly spread horizontal offsets of n dots (deterministic: the same figure on every run)."""
    return np.zeros(1) if n == 1 else np.linspace(-width, width, n)


def draw(frames: dict[str, pd.DataFrame], dataset: str, cfg: dict):
    """The figure of ``dataset`` from the per-seed accuracy table (frame ``accuracy_per_seed``)."""
    return plot_accuracy_seeds(frames["accuracy_per_seed"], dataset)


def plot_accuracy_seeds(per_seed: pd.DataFrame, dataset: str):
    """One dot per seed and deployment (x: variant and device bits, grouped by bits), a black bar at the mean and
    whiskers of ± one std over the seeds, per panel of :data:`PANELS`; the paper's figure as a red star."""
    t = per_seed[per_seed.dataset == dataset] if len(per_seed) else per_seed
    with mpl.rc_context(style()):
        if t.empty:
            fig = new_figure(figsize=(9, 4), layout="constrained")
            fig.text(0.5, 0.5, "no deployment of this dataset in the report", ha="center", va="center")
            return fig
        variants = list(dict.fromkeys(t.variant))
        bits = sorted({int(b) for b in t.bits})
        deps = [(v, b) for b in bits for v in variants if ((t.variant == v) & (t.bits == b)).any()]
        xs = np.array([i + 0.6 * bits.index(b) for i, (_, b) in enumerate(deps)])
        seeds = sorted({int(s) for s in t.seed})
        fig = new_figure(figsize=(max(8.5, 1.0 * len(deps) + 3.0), 2.7 * len(PANELS) + 1.3), layout="constrained")
        axes = fig.subplots(len(PANELS), 1, sharex=True, squeeze=False)[:, 0]
        sigma, chips = float(t.ref_prog_sigma.iloc[0]), int(t.noisy_instances.min())
        for ax, (q, title) in zip(axes, PANELS):
            for x, (v, b) in zip(xs, deps):
                g = t[(t.variant == v) & (t.bits == b)].sort_values("seed")
                vals = 100 * g[q].to_numpy(float)
                col, (_, mk) = variant_color(v, variants), bits_style(b, bits)
                ax.scatter(x + _jitter(len(vals)), vals, s=34, color=col, marker=mk, alpha=0.85, lw=0.6, ec="white")
                mean, std, n = summary(g[q])
                if n:
                    ax.hlines(100 * mean, x - 0.3, x + 0.3, color="black", lw=2.2, zorder=3)
                if n > 1:
                    ax.errorbar(x, 100 * mean, yerr=100 * std, color="black", capsize=5, lw=1.3, zorder=3)
                paper, _ = paper_accuracy(dataset, v, b)
                if not np.isnan(paper) and PAPER_PANEL.get(v, "ideal_crossbar_accuracy") == q:
                    ax.scatter([x + 0.38], [paper], marker="*", s=190, color=PAPER_COLOR, ec="black", lw=0.6, zorder=4)
                    ax.annotate(
                        f"paper {paper:g} %",
                        (x + 0.38, paper),
                        xytext=(8, 0),
                        textcoords="offset points",
                        ha="left",
                        va="center",
                        fontsize=8,
                        color=PAPER_COLOR,
                    )
            ax.set_ylabel("Test accuracy (%)")
            ax.set_title(
                title
                if q != "noisy_accuracy"
                else f"{title}, programming noise {sigma:g} x the device's σ(G)\n(each dot: mean over {chips} chips)",
                loc="left",
                fontsize=10.5,
            )
            ax.grid(axis="x", visible=False)
            ax.margins(x=0.06, y=0.15)
        axes[-1].set_xticks(xs, [f"{v}\n{b}-bit" for v, b in deps], fontsize=9)
        for tick, (v, _) in zip(axes[-1].get_xticklabels(), deps):
            tick.set_color(variant_color(v, variants))
            tick.set_fontweight("bold")
        handles = [
            Line2D([], [], ls="", marker="o", color="#777777", ms=6, label="one seed"),
            Line2D([], [], color="black", lw=2.2, marker="_", ms=14, label="mean ± std over the seeds"),
            Line2D([], [], ls="", marker="*", ms=13, color=PAPER_COLOR, mec="black", label="the paper's figure"),
        ]
        fig.legend(handles=handles, loc="outside lower center", ncols=3, fontsize=9)
        fig.suptitle(
            f"{DATASET_NAMES.get(dataset, dataset)}: accuracy of every seed (n = {len(seeds)}: seeds "
            f"{seeds_text(seeds)})",
            fontsize=12,
            x=0.0,
            ha="left",
        )
    return fig
