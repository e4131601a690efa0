"""The figure of the unipolar architecture search (:func:`plot_nas_pareto`): every trial, the Pareto front of
each device resolution, the finalists and the chosen architecture."""

from __future__ import annotations

import math
import textwrap
from typing import Any

import matplotlib as mpl
import pandas as pd
import seaborn as sns
from matplotlib.lines import Line2D

from .figures import new_figure, style
from .paper import DATASET_NAMES

#: one colour per device resolution in the NAS figure (seaborn 'dark' palette, apart from the variant colours)
NAS_BITS_COLORS = ["#001C7F", "#B1400D", "#12711C", "#8C0800", "#591E71"]
NAS_STATES = ["COMPLETE", "PRUNED"]
NAS_Y_RANGE_POINTS = 25.0  # the NAS figure shows this many points of validation accuracy below its best trial
NAS_STATE_MARKERS = {"COMPLETE": "o", "PRUNED": "X"}


def draw(frames: dict[str, pd.DataFrame], dataset: str, cfg: dict):
    """The figure of ``dataset`` from the collected frames (the search's trials, front and choice)."""
    return plot_nas_pareto(frames, dataset)


def plot_nas_pareto(data: dict[str, pd.DataFrame], dataset: str):
    """The unipolar search of one dataset: every trial of every device resolution (x = crossbar area in mm² from
    the cost model, y = validation accuracy; colour = bits, marker = COMPLETE / PRUNED), the Pareto front of each
    resolution as a step line and the chosen trial as a large star."""

    meta = data["meta"].iloc[0]
    bits = list(meta.bits)
    trials = data.get("nas_trials", pd.DataFrame(columns=["dataset"]))
    trials = trials[trials.dataset == dataset].copy()
    front = data.get("nas_pareto", pd.DataFrame(columns=["dataset"]))
    front = front[front.dataset == dataset]
    arch = data.get("nas_arch", pd.DataFrame(columns=["dataset"]))
    arch = arch[arch.dataset == dataset]
    color = {b: NAS_BITS_COLORS[i % len(NAS_BITS_COLORS)] for i, b in enumerate(sorted(bits))}
    label = lambda b: f"{int(b)}-bit devices"  # noqa: E731
    with mpl.rc_context(style()):
        fig = new_figure(figsize=(9.5, 5.6), layout="constrained")
        ax = fig.add_subplot()
        handles: list[Any] = []
        if len(trials):
            trials["area_mm2"] = trials.area_um2.astype(float) / 1e6
            trials["val_pct"] = 100 * trials.val_accuracy.astype(float)
            trials["device bits"] = trials.bits.map(label)
            states = [st for st in NAS_STATES if (trials.state == st).any()] + sorted(
                set(trials.state.astype(str)) - set(NAS_STATES)
            )
            sns.scatterplot(
                data=trials,
                x="area_mm2",
                y="val_pct",
                hue="device bits",
                style="state",
                hue_order=[label(b) for b in sorted(bits)],
                style_order=states,
                palette={label(b): color[b] for b in bits},
                markers={st: NAS_STATE_MARKERS.get(st, "P") for st in states},
                s=60,
                alpha=0.75,
                edgecolor="white",
                linewidth=0.5,
                legend=False,
                ax=ax,
            )
            for b in sorted(bits):
                handles.append(Line2D([], [], ls="", marker="o", ms=8, color=color[b], label=label(b)))
            for st in states:
                handles.append(
                    Line2D(
                        [],
                        [],
                        ls="",
                        marker=NAS_STATE_MARKERS.get(st, "P"),
                        ms=8,
                        color="#666666",
                        label=f"{st.lower()} trials ({int((trials.state == st).sum())})",
                    )
                )
        fin = trials[trials.final_val_accuracy.notna()] if "final_val_accuracy" in trials else trials.iloc[:0]
        for b in sorted(bits):
            for r in fin[fin.bits == b].itertuples():  # finalists: search score -> full-recipe mean (+- sd over seeds)
                x, y = r.area_um2 / 1e6, 100 * float(r.final_val_accuracy)
                ax.plot([x, x], [r.val_pct, y], color=color[b], lw=0.9, ls=":", zorder=2)
                ax.errorbar(
                    [x],
                    [y],
                    yerr=[100 * float(r.final_val_std)],
                    fmt="D",
                    ms=7,
                    color=color[b],
                    mec="black",
                    mew=0.6,
                    ecolor=color[b],
                    capsize=3,
                    zorder=4,
                )
            f = front[front.bits == b]
            if len(f):
                f = f.sort_values("area_um2")
                ax.step(
                    f.area_um2.astype(float) / 1e6,
                    100 * f.val_accuracy.astype(float),
                    where="post",
                    color=color[b],
                    lw=1.8,
                    alpha=0.9,
                    zorder=3,
                )
            a = arch[(arch.bits == b) & arch.search]
            if len(a) and not math.isnan(a.iloc[0].area_um2):
                r = a.iloc[0]
                ax.scatter(
                    [r.area_um2 / 1e6],
                    [100 * r.val_accuracy],
                    marker="*",
                    s=520,
                    color=color[b],
                    edgecolor="black",
                    linewidth=1.0,
                    zorder=6,
                )
                ax.annotate(
                    f"trial {int(r.trial)}",
                    (r.area_um2 / 1e6, 100 * r.val_accuracy),
                    xytext=(9, 7),
                    textcoords="offset points",
                    fontsize=8.5,
                    color=color[b],
                    fontweight="bold",
                )
        if len(fin):
            handles.append(
                Line2D(
                    [],
                    [],
                    ls=":",
                    marker="D",
                    ms=7,
                    color="#666666",
                    markeredgecolor="black",
                    label="finalists: full recipe, mean\nof seeds (dotted: from search score)",
                )
            )
        if len(front):
            handles.append(Line2D([], [], color="#444444", lw=1.8, label="Pareto front (per bits)"))
        if len(arch) and arch.search.any():
            handles.append(
                Line2D(
                    [],
                    [],
                    ls="",
                    marker="*",
                    ms=17,
                    color="#BBBBBB",
                    markeredgecolor="black",
                    label="chosen architecture (per bits)",
                )
            )
        tr = data["training"]
        base = tr[(tr.dataset == dataset) & (tr.model == "baseline")]
        if len(base) and not math.isnan(float(base.val_accuracy.mean())) and len(trials):
            v = 100 * float(base.val_accuracy.mean())  # over the seeds
            ax.axhline(v, color="black", ls="--", lw=1.2)
            seeds = f", mean of {len(base)} seeds" if len(base) > 1 else ""
            text = f"float baseline, validation ({v:.1f} %{seeds})"
            handles.append(Line2D([], [], color="black", ls="--", lw=1.2, label=text))
        if not len(trials):
            ax.text(
                0.5,
                0.5,
                "no architecture search in this report\n(nas_unipolar.search is false: the configured "
                "architecture was used)",
                transform=ax.transAxes,
                ha="center",
                va="center",
                fontsize=11,
                color="#444444",
            )
        if len(trials):  # the choice happens near the top: trials far below it would squeeze that range flat
            top = float(trials.val_pct.max())
            floor = top - NAS_Y_RANGE_POINTS
            below = int((trials.val_pct < floor).sum())
            if below:
                ax.set_ylim(bottom=floor, top=max(ax.get_ylim()[1], top + 1))
                ax.text(
                    0.01,
                    0.02,
                    f"{below} trial(s) below {floor:.0f} % not shown (trials.csv has them)",
                    transform=ax.transAxes,
                    fontsize=8.5,
                    color="#444444",
                    va="bottom",
                )
        ax.set_xlabel("Crossbar area (mm², cost model)")
        ax.set_ylabel("Validation accuracy (%, quantized, sign-constrained)")
        n = ", ".join(
            f"{label(r.bits)}: {r.trials_complete} complete / {r.trials_pruned} pruned"
            for r in arch.sort_values("bits").itertuples()
            if r.search
        )
        ax.set_title(
            f"{DATASET_NAMES.get(dataset, dataset)}: unipolar architecture search" + (f"\n{n}" if n else ""), loc="left"
        )
        if handles:
            ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9, title="trials")
        if len(arch) and arch.search.any():
            rules = "\n".join(
                textwrap.fill(f"selection, {label(r.bits)}: {r.rule}", 150, subsequent_indent="    ")
                for r in arch[arch.search].sort_values("bits").itertuples()
            )
            ax.text(0.0, -0.13, rules, transform=ax.transAxes, fontsize=8, color="#444444", va="top")
    return fig
