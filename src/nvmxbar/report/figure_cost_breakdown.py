"""The figure cost_breakdown_<dataset>: area and energy per inference by component, one bar per variant x bits
(rule report_figure, kind cost_breakdown)."""

from __future__ import annotations

import matplotlib as mpl
import numpy as np
import pandas as pd
import seaborn as sns

from .figures import new_figure, style, variant_color
from .paper import DATASET_NAMES
from .seeds import DEPLOYMENT, mean_over_seeds
from .tables import improvement


def draw(frames: dict[str, pd.DataFrame], dataset: str, cfg: dict):
    """The figure of ``dataset`` from the collected frames."""
    return plot_cost_breakdown(frames, dataset)


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
