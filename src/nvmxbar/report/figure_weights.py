"""The figure weights_<dataset>: the programmed weight codes per layer and variant and the conductances of the used
cells (rule report_figure, kind weights)."""

from __future__ import annotations

from typing import Any

import matplotlib as mpl
import numpy as np
import pandas as pd

from .figures import new_figure, nice, style, variant_color
from .paper import DATASET_NAMES
from .seeds import first_seed


def draw(frames: dict[str, pd.DataFrame], dataset: str, cfg: dict):
    """The figure of ``dataset`` from the collected frames."""
    return plot_weights(frames, dataset)


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
            offset = "encoding" in lv and (lv.encoding == "offset").all()
            if offset:  # the baseline's offset encoding: pair 1 too, but one device per SLICE of a biased code
                line += ", offset-encoded: one device per slice (code + 2^(wb-1), the offset subtracted digitally)"
            elif "pair" in lv and (pd.to_numeric(lv.pair, errors="coerce") == 1).all():
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
