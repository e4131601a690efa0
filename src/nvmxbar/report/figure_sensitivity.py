"""The figure sensitivity_<dataset>: the savings over the baseline as one cost-model assumption moves at a time
(:mod:`.sensitivity`), one column of panels per assumption, area above and energy below, the paper's figures as
reference lines and the run's own setting shaded."""

from __future__ import annotations

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from .figures import bits_style, new_figure, style, variant_color
from .paper import DATASET_NAMES
from .sensitivity import AREA_TARGET, ENERGY_TARGET, GRID, LABELS

RUN_SHADE = "#FFE9A8"
TARGET_COLOR = "#B2182B"
QUANTITIES = (
    ("area_saving_pct", "Area saving (%)", AREA_TARGET),
    ("energy_saving_pct", "Energy saving (%)", ENERGY_TARGET),
)


def _panel(ax, g: pd.DataFrame, column: str, target: float, deps: list, variants: list, bits: list) -> None:
    """One assumption, one quantity: a line per variant x bits over the values tried."""
    labels = list(dict.fromkeys(g.value_label))
    x = np.arange(len(labels))
    for i in np.flatnonzero([g[g.value_label == lab].configured.any() for lab in labels]):
        ax.axvspan(i - 0.4, i + 0.4, color=RUN_SHADE, zorder=0)
    ax.axhline(0, color="#999999", lw=0.8, zorder=1)
    ax.axhline(target, color=TARGET_COLOR, ls="--", lw=1.3, zorder=1)
    for v, b in deps:
        d = g[(g.variant == v) & (g.bits == b)].set_index("value_label").reindex(labels)
        ls, mk = bits_style(b, bits)
        ax.plot(x, d[column].astype(float), ls=ls, marker=mk, color=variant_color(v, variants), lw=2, ms=6)
    ax.set_xticks(x, labels, rotation=30 if len(labels) > 3 else 0, ha="right" if len(labels) > 3 else "center")
    for tick, lab in zip(ax.get_xticklabels(), labels, strict=True):
        if g[g.value_label == lab].configured.any():
            tick.set_fontweight("bold")
    ax.set_xlim(-0.6, len(labels) - 0.4)
    ax.tick_params(labelsize=8)


def _legend(fig, deps: list, variants: list, bits: list) -> None:
    handles = [
        Line2D([], [], color=variant_color(v, variants), ls=bits_style(b, bits)[0], marker=bits_style(b, bits)[1])
        for v, b in deps
    ]
    labels = [f"{v}, {b}-bit devices" for v, b in deps]
    handles += [Line2D([], [], color=TARGET_COLOR, ls="--"), Patch(color=RUN_SHADE)]
    labels += [f"paper: up to {AREA_TARGET:g} % area / {ENERGY_TARGET:g} % energy", "the run's own setting"]
    fig.legend(handles, labels, loc="outside right upper", title="saving of")


def draw(frames: dict[str, pd.DataFrame], dataset: str, cfg: dict):
    """The figure of ``dataset`` from the sensitivity table (frame ``sensitivity``)."""
    return plot_sensitivity(frames["sensitivity"], dataset)


def plot_sensitivity(table: pd.DataFrame, dataset: str):
    """Savings (%) of every variant x bits over the baseline at the same bits, one column per assumption."""
    t = table[table.dataset == dataset] if len(table) else table
    params = [p for p in GRID if len(t) and (t.parameter == p).any()]
    with mpl.rc_context(style()):
        fig = new_figure(figsize=(2.3 * max(len(params), 3) + 2.5, 6.8), layout="constrained")
        if not params:
            fig.text(0.5, 0.5, "no variant with a baseline at the same device bits", ha="center", va="center")
            return fig
        variants = list(dict.fromkeys(t.variant))
        bits = sorted(set(int(b) for b in t.bits))
        deps = [(v, b) for v in variants for b in bits if ((t.variant == v) & (t.bits == b)).any()]
        axes = fig.subplots(2, len(params), sharey="row", squeeze=False)
        for row, (column, ylabel, target) in enumerate(QUANTITIES):
            for col, p in enumerate(params):
                ax = axes[row, col]
                _panel(ax, t[t.parameter == p], column, target, deps, variants, bits)
                if row == 0:
                    ax.set_title(LABELS[p], fontsize=10)
                if col == 0:
                    ax.set_ylabel(ylabel)
                    ax.annotate(
                        f"paper {target:g} %",
                        (0, target),
                        xycoords=("axes fraction", "data"),
                        xytext=(3, 3),
                        textcoords="offset points",
                        fontsize=8,
                        color=TARGET_COLOR,
                    )
        _legend(fig, deps, variants, bits)
        fig.suptitle(
            f"{DATASET_NAMES.get(dataset, dataset)}: savings over the baseline (same device bits), one cost-model "
            "assumption moved at a time",
            fontsize=12,
            x=0.0,
            ha="left",
        )
        fig.supxlabel(
            "ADC bits, device preset, ON/OFF ratio: cost only, accuracy not re-simulated; R_on scales every "
            "conductance (on/off ratio kept); the measured activity is repriced with the device",
            fontsize=8.5,
            color="#444444",
        )
    return fig
