"""The figure accuracy_vs_prog_noise_<dataset>: accuracy against the programming noise, one line per variant x
bits (rule report_figure, kind accuracy_vs_prog_noise)."""

from __future__ import annotations

import matplotlib as mpl
import numpy as np
import pandas as pd

from .collect import SETTING_KEYS
from .figures import bits_style, new_figure, nice, style, variant_color
from .paper import DATASET_NAMES, PAPER_FIGURES
from .tables import prog_noise_curve


def draw(frames: dict[str, pd.DataFrame], dataset: str, cfg: dict):
    """The figure of ``dataset`` from the collected frames; ``cfg``: the report section (reference_prog_sigma)."""
    return plot_accuracy_vs_noise(frames, dataset, float(cfg["reference_prog_sigma"]))


def seed_curve(noise: pd.DataFrame, dataset: str, variant: str, bits: int) -> pd.DataFrame:
    """The programming-noise sweep of one deployment over its seeds, one row per sigma: ``mean`` (over the seeds of
    each seed's mean over chips), ``std`` (across the seeds, ddof=1; NaN with one seed), ``n`` (seeds), ``p5`` and
    ``p95`` (each seed's percentiles across chips, averaged over the seeds), ``chip_std`` (the chips' std averaged
    over the seeds) and ``instances`` (chips per seed, the fewest)."""
    c = prog_noise_curve(noise, dataset, variant, bits)
    if c.empty:
        return pd.DataFrame(columns=["prog_sigma", "mean", "std", "n", "p5", "p95", "chip_std", "instances"])
    return (
        c.groupby("prog_sigma", sort=True)
        .agg(
            mean=("accuracy_mean", "mean"),
            std=("accuracy_mean", lambda x: x.std(ddof=1) if len(x) > 1 else np.nan),
            n=("accuracy_mean", "size"),
            p5=("accuracy_p5", "mean"),
            p95=("accuracy_p95", "mean"),
            chip_std=("accuracy_std", "mean"),
            instances=("instances", "min"),
        )
        .reset_index()
    )


def plot_accuracy_vs_noise(data: dict[str, pd.DataFrame], dataset: str, reference_prog_sigma: float | None = None):
    """Accuracy vs programming noise (a scale of the device preset's sigma(G)), one line per variant x bits: the
    mean over the seeds of each seed's mean over chips, error bars the std across the seeds, the band each seed's
    5th-95th percentile across chips (averaged over the seeds); the float network and the paper's float figure as
    references."""

    meta = data["meta"].iloc[0]
    variants, bits = list(meta.variants), list(meta.bits)
    with mpl.rc_context(style()):
        fig = new_figure(figsize=(9.5, 5.4), layout="constrained")
        ax = fig.add_subplot()
        insts, seeds, others = set(), set(), None
        for v in variants:
            for b in bits:
                c = seed_curve(data["noise"], dataset, v, b)
                if c.empty:
                    continue
                ls, mk = bits_style(b, bits)
                col = variant_color(v, variants)
                x = c.prog_sigma.to_numpy(float)
                ax.fill_between(x, 100 * c.p5, 100 * c.p95, color=col, alpha=0.13, lw=0)
                ax.errorbar(
                    x,
                    100 * c["mean"],
                    yerr=None if c["std"].isna().all() else 100 * c["std"].fillna(0).to_numpy(float),
                    ls=ls,
                    marker=mk,
                    color=col,
                    lw=2,
                    ms=6,
                    capsize=3.5,
                    elinewidth=1.3,
                    label=f"{v}, {b}-bit devices",
                )
                insts |= set(c.instances.astype(int))
                seeds |= set(c.n.astype(int))
                others = prog_noise_curve(data["noise"], dataset, v, b).iloc[0]
        tr = data["training"]
        base = tr[(tr.dataset == dataset) & (tr.model == "baseline")]
        if len(base):
            acc = 100 * float(base.test_accuracy.mean())
            ax.axhline(
                acc,
                color="black",
                ls="--",
                lw=1.3,
                label=f"float baseline model ({acc:.1f} %, mean of {len(base)} seed(s))",
            )
        if reference_prog_sigma is not None:
            ax.axvline(
                reference_prog_sigma,
                color="#777777",
                lw=1.2,
                ls=(0, (4, 3)),
                zorder=1.5,
                label=f"reference noise of the accuracy table ({reference_prog_sigma:g} x σ(G))",
            )
        if dataset == "har":
            p = PAPER_FIGURES["har_float_accuracy"]["value"]
            ax.axhline(p, color="#999999", ls=(0, (1, 2)), lw=1.5, label=f"paper, float ({p:g} %)")
        ax.set_xlabel("Programming noise (x the device preset's σ(G); 1 = the measured device)")
        ax.set_ylabel("Test accuracy (%)")
        ax.set_title(f"{DATASET_NAMES.get(dataset, dataset)}: crossbar accuracy under programming noise", loc="left")
        n = "/".join(str(i) for i in sorted(seeds)) or "0"
        sub = (
            f"line: mean over n = {n} seeds of each seed's mean over "
            + "/".join(str(i) for i in sorted(insts))
            + " simulated chips; error bars: std across the seeds"
            + ("" if max(seeds, default=1) > 1 else " (none: one seed)")
            + "\nband: 5th–95th percentile across the chips of a seed, averaged over the seeds"
        )
        if others is not None:
            fixed = ", ".join(
                f"{k}={'device' if pd.isna(others[k]) else nice(float(others[k]))}" for k in SETTING_KEYS[1:]
            )
            sub += f"\nother non-idealities: {fixed}"
        ax.text(0.0, -0.14, sub, transform=ax.transAxes, fontsize=8.5, color="#444444", va="top")
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), title="deployment", fontsize=9)
        ax.set_xlim(left=min(ax.get_xlim()[0], -0.3))
    return fig
