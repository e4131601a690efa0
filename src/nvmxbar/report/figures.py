"""The report's figures (matplotlib ``Figure`` objects on the Agg canvas, seaborn styles), one per dataset:
:func:`plot_accuracy_vs_noise`, :func:`plot_cost_breakdown`, :func:`plot_weights` (and, in :mod:`.figures_seeds`,
every seed's accuracy; in :mod:`.figures_nas`, the architecture search; in :mod:`.figures_sensitivity`, the
savings' sensitivity); :func:`save_figure` writes PNG and PDF atomically.
Colours per variant and line styles / markers per device bits are the same in every figure."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import matplotlib as mpl
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from ..files import atomic_path
from .collect import NAS_VARIANT, SETTING_KEYS
from .paper import DATASET_NAMES, PAPER_FIGURES
from .seeds import DEPLOYMENT, first_seed, mean_over_seeds
from .tables import improvement, prog_noise_curve

# consistent colours per variant (seaborn 'colorblind' palette) and line styles / markers per device bits
VARIANT_COLORS = {
    "baseline": "#555555",
    "perlayer": "#949494",
    "uniform": "#0173B2",
    "signed": "#56B4E9",
    "unipolar": "#DE8F05",
}
_EXTRA_COLORS = ["#029E73", "#CC78BC", "#CA9161", "#D55E00", "#56B4E9", "#ECE133"]
BITS_STYLES = ["-", "-.", ":", (0, (5, 1, 1, 1, 1, 1))]
BITS_MARKERS = ["o", "s", "^", "D"]


def variant_color(variant: str, variants: list[str]) -> str:
    if variant in VARIANT_COLORS:
        return VARIANT_COLORS[variant]
    others = [v for v in variants if v not in VARIANT_COLORS]
    return _EXTRA_COLORS[others.index(variant) % len(_EXTRA_COLORS)] if variant in others else "#000000"


def bits_style(b: int, bits: list[int]) -> tuple[Any, str]:
    i = sorted(bits).index(b) if b in bits else 0
    return BITS_STYLES[i % len(BITS_STYLES)], BITS_MARKERS[i % len(BITS_MARKERS)]


def style() -> dict:

    rc = {**sns.axes_style("whitegrid"), **sns.plotting_context("notebook", font_scale=0.9)}
    rc.update(
        {
            "axes.titleweight": "bold",
            "figure.titlesize": 14,
            "figure.titleweight": "bold",
            "legend.frameon": True,
            "savefig.bbox": "tight",
        }
    )
    return rc


def new_figure(**kw):

    return Figure(**kw)


def save_figure(fig, name: str, out_dir: str | Path, dpi: int) -> list[Path]:
    """<out_dir>/<name>.png (``dpi``) and .pdf, each written atomically."""
    paths = []
    for ext in ("png", "pdf"):
        p = Path(out_dir) / f"{name}.{ext}"
        with atomic_path(p) as tmp:
            fig.savefig(tmp, format=ext, dpi=dpi, bbox_inches="tight")
        paths.append(p)
    return paths


def nice(x: float) -> str:
    return f"{x:.3g}"


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
    """Accuracy vs programming-noise sigma, one line per variant x bits: the mean over the seeds of each seed's
    mean over chips, error bars the std across the seeds, the band each seed's 5th-95th percentile across chips
    (averaged over the seeds); the float network and the paper's float figure as references."""

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
                x = 100 * c.prog_sigma.to_numpy(float)
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
                100 * reference_prog_sigma,
                color="#777777",
                lw=1.2,
                ls=(0, (4, 3)),
                zorder=1.5,
                label=f"reference σ of the accuracy table ({100 * reference_prog_sigma:g} %)",
            )
        if dataset == "har":
            p = PAPER_FIGURES["har_float_accuracy"]["value"]
            ax.axhline(p, color="#999999", ls=(0, (1, 2)), lw=1.5, label=f"paper, float ({p:g} %)")
        ax.set_xlabel("Programming-noise σ (% of the conductance range G$_{max}$ − G$_{min}$)")
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


def _scale(values: np.ndarray, unit: str) -> tuple[float, str]:
    m = float(np.nanmax(values)) if len(values) else 0.0
    if unit == "um2":
        return (1e-6, "mm²") if m >= 1e5 else (1.0, "µm²")
    return (1e-6, "µJ") if m >= 1e7 else (1e-3, "nJ") if m >= 1e4 else (1.0, "pJ")


def plot_cost_breakdown(data: dict[str, pd.DataFrame], dataset: str):
    """Two panels (area, energy per inference): stacked bars by component, one bar per variant x bits (means over
    the seeds)."""

    meta = data["meta"].iloc[0]
    variants, bits = list(meta.variants), list(meta.bits)
    comps = mean_over_seeds(data["cost_components"], [*DEPLOYMENT, "quantity", "component", "component_key"])
    comps = comps[comps.dataset == dataset]
    cost = mean_over_seeds(data["cost"], DEPLOYMENT)
    totals = cost[cost.dataset == dataset].set_index(["variant", "bits"])
    order = (
        comps.assign(share=comps.value / comps.groupby(["quantity", "variant", "bits"]).value.transform("sum"))
        .groupby("component")
        .share.sum()
        .sort_values(ascending=False)
        .index.tolist()
    )
    pal = sns.color_palette("Set2" if len(order) <= 8 else "tab20", len(order))  # apart from the variant colours
    colors = dict(zip(order, pal, strict=False))
    bars = [(v, b) for b in bits for v in variants if (v, b) in totals.index]
    xs = np.array([i + 0.6 * bits.index(b) for i, (v, b) in enumerate(bars)])
    family = ", ".join(sorted(set(data["cost"][data["cost"].dataset == dataset].family) - {""})) or "unnamed"
    with mpl.rc_context(style()):
        fig = new_figure(figsize=(max(10.0, 1.25 * len(bars) * 2 + 3), 5.6), layout="constrained")
        axes = fig.subplots(1, 2)
        for ax, (quantity, what) in zip(
            axes, (("area_um2", "Area"), ("energy_pj", "Energy per inference")), strict=False
        ):
            q = comps[comps.quantity == quantity]
            f, unit = _scale(totals[quantity].to_numpy(float), "um2" if quantity == "area_um2" else "pj")
            bottom = np.zeros(len(bars))
            for comp in order:
                vals = (
                    np.array([q[(q.variant == v) & (q.bits == b) & (q.component == comp)].value.sum() for v, b in bars])
                    * f
                )
                if not vals.any():
                    continue
                ax.bar(xs, vals, bottom=bottom, width=0.8, color=colors[comp], label=comp, edgecolor="white", lw=0.5)
                bottom += vals
            tot = np.array([totals.loc[(v, b), quantity] for v, b in bars]) * f
            for x, (v, b), t in zip(xs, bars, tot, strict=False):
                label = f"{t:,.0f}" if t >= 100 else f"{t:.3g}"
                if v != "baseline" and ("baseline", b) in totals.index:
                    impr = improvement(totals.loc[(v, b), quantity], totals.loc[("baseline", b), quantity])
                    label += f"\n−{impr:.1f} %"
                    label = label.replace("−-", "+")
                ax.text(x, t, label, ha="center", va="bottom", fontsize=8.5)
            ax.set_xticks(xs, [f"{v}\n{b}-bit" for v, b in bars])
            for tick, (v, _) in zip(ax.get_xticklabels(), bars, strict=False):
                tick.set_color(variant_color(v, variants))
                tick.set_fontweight("bold")
            ax.set_ylabel(f"{what} ({unit})")
            ax.set_title(what, loc="left")
            ax.set_ylim(0, max(tot.max() if len(tot) else 1, 1e-12) * 1.22)
            ax.grid(axis="x", visible=False)
        handles, labels = axes[0].get_legend_handles_labels()
        h2, l2 = axes[1].get_legend_handles_labels()
        for h, lab in zip(h2, l2, strict=False):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
        fig.legend(handles, labels, loc="outside right upper", title="component")
        fig.suptitle(
            f"{DATASET_NAMES.get(dataset, dataset)}: area and energy by component "
            f"(converter family: {family}; % = change vs baseline at the same device bits)",
            fontsize=12,
            x=0.0,
            ha="left",
        )
    return fig


def weight_grids(data: dict[str, pd.DataFrame], dataset: str, bits: int) -> dict[str, dict[str, Any]]:
    """Per variant at ``bits``: whether every layer uses the same weight step and full-scale (one grid), of the
    first seed's network."""
    lay = first_seed(data["layers"])
    out = {}
    for v, g in lay[(lay.dataset == dataset) & (lay.bits == bits)].groupby("variant", sort=False):
        steps, fss = g.weight_step.to_numpy(float), g.weight_fullscale.to_numpy(float)
        out[v] = {
            "shared": bool(np.allclose(steps, steps[0], rtol=1e-9) and np.allclose(fss, fss[0], rtol=1e-9)),
            "step_min": float(steps.min()),
            "step_max": float(steps.max()),
            "fullscale_min": float(fss.min()),
            "fullscale_max": float(fss.max()),
            "layers": len(g),
        }
    return out


def plot_weights(data: dict[str, pd.DataFrame], dataset: str):
    """Per-layer histograms of the signed integer weight codes of each variant at the lowest device bits
    (annotated with each layer's weight step and full-scale), and the conductances of the used cells: the networks
    of the first seed (the others differ in their weights, not in what the figure shows)."""

    meta = data["meta"].iloc[0]
    variants, b = list(meta.variants), min(meta.bits)
    seed = min(meta.seeds) if "seeds" in meta else None
    pick = lambda d: first_seed(d[(d.dataset == dataset) & (d.bits == b)])  # noqa: E731
    lay, codes, conds = pick(data["layers"]), pick(data["weight_codes"]), pick(data["conductances"])
    rows = [v for v in variants if (lay.variant == v).any()]
    ncols = max(int(lay.groupby("variant").size().max()), 1)
    grids = weight_grids(data, dataset, b)
    with mpl.rc_context(style()):
        fig = new_figure(figsize=(max(2.4 * ncols + 1.2, 9.0), 2.35 * len(rows) + 3.4), layout="constrained")
        gs = fig.add_gridspec(len(rows) + 1, ncols, height_ratios=[1.0] * len(rows) + [1.15])
        for r, v in enumerate(rows):
            col = variant_color(v, variants)
            for spec in lay[lay.variant == v].sort_values("index").itertuples():
                ax = fig.add_subplot(gs[r, spec.index])
                h = codes[(codes.variant == v) & (codes["index"] == spec.index)]
                share = 100 * h["count"] / h["count"].sum()
                span = int(max(abs(h.code.min()), abs(h.code.max()), 1))
                if spec.weight_levels is not None and not pd.isna(spec.weight_levels):
                    span = max(span, int(spec.weight_levels))  # the whole grid of the layer
                ax.bar(h.code, share, width=1.0 if span > 20 else 0.8, color=col, lw=0)
                ax.set_xlim(-span - 0.7, span + 0.7)
                ax.set_title(f"{spec.name} ({spec.kind}, {spec.rows}×{spec.outputs})", fontsize=9, fontweight="normal")
                ax.text(
                    0.03,
                    0.96,
                    f"step {nice(spec.weight_step)}\nFS {nice(spec.weight_fullscale)}",
                    transform=ax.transAxes,
                    va="top",
                    fontsize=8,
                    bbox={"boxstyle": "round,pad=0.25", "fc": "white", "ec": col, "alpha": 0.9},
                )
                ax.tick_params(labelsize=8)
                if spec.index == 0:
                    ax.set_ylabel(f"{v}\nweights (%)", color=col, fontweight="bold")
                if r == len(rows) - 1 or spec.index >= lay[lay.variant == rows[r + 1]]["index"].max() + 1:
                    ax.set_xlabel("signed weight code", fontsize=9)
        ax = fig.add_subplot(gs[-1, :])
        levels = np.sort(conds.g_us.unique())
        w = 0.8 / max(len(rows), 1)
        for k, v in enumerate(rows):
            g = conds[conds.variant == v].groupby("g_us")["count"].sum()
            share = 100 * g.reindex(levels, fill_value=0) / max(g.sum(), 1)
            ax.bar(
                np.arange(len(levels)) + (k - (len(rows) - 1) / 2) * w,
                share,
                width=w,
                color=variant_color(v, variants),
                label=v,
            )
        ax.set_yscale("log")
        ax.set_xticks(np.arange(len(levels)), [f"{g:.4g}" for g in levels])
        ax.set_xlabel("programmed conductance G (µS) — one bar per device level")
        ax.set_ylabel("used cells (%, log)")
        ax.set_title(
            f"Conductances of the used cells, all layers ({b}-bit devices, {len(levels)} levels)",
            loc="left",
            fontsize=10,
        )
        ax.legend(title="variant", loc="upper right")
        lines = []
        for v in rows:
            gi = grids[v]
            if gi["shared"]:
                line = (
                    f"{v}: ONE grid for all {gi['layers']} layers (step {nice(gi['step_min'])}, "
                    f"full-scale {nice(gi['fullscale_min'])})"
                )
            else:
                line = (
                    f"{v}: per-layer scales (step {nice(gi['step_min'])}–{nice(gi['step_max'])}, "
                    f"full-scale {nice(gi['fullscale_min'])}–{nice(gi['fullscale_max'])})"
                )
            lv = lay[lay.variant == v]
            if "pair" in lv and (pd.to_numeric(lv.pair, errors="coerce") == 1).all():
                flips = int(pd.to_numeric(lv.sign_flips, errors="coerce").fillna(0).sum())
                line += ", one device per weight, " + (
                    "only positive weights" if flips == 0 else f"{flips} negative sign group(s)"
                )
            lines.append(line)
        fig.suptitle(
            f"{DATASET_NAMES.get(dataset, dataset)}: mapped weight codes per layer, {b}-bit devices"
            + ("" if seed is None else f", seed {seed}")
            + "\n"
            + "\n".join(lines),
            fontsize=11,
            x=0.0,
            ha="left",
        )
    return fig


def figure_names(datasets: Iterable[str], variants: Iterable[str] | None = None) -> list[str]:
    """The figures the report draws; nas_pareto_<dataset> only when the unipolar variant is among ``variants``."""
    kinds = ["accuracy_vs_prog_noise", "accuracy_seeds", "cost_breakdown", "weights", "sensitivity"]
    if variants is not None and NAS_VARIANT in list(variants):
        kinds.append("nas_pareto")
    return [f"{kind}_{ds}" for ds in datasets for kind in kinds]
