"""The search's figure: trials (search score) vs crossbar area, the Pareto front, the finalists' full-recipe
scores and the chosen architecture."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from ..files import atomic_path


def pareto_figure(
    rows: list[dict],
    front: list[dict],
    pick: dict,
    title: str,
    out_png: Path,
    dpi: int = 150,
    ylabel: str = "validation accuracy (quantized, unipolar)",
    final: list[dict] | None = None,
    final_pick: dict | None = None,
) -> None:
    """Trials (search score) vs area, the Pareto front, and, with finalists, each finalist's full-recipe mean
    score (diamond, +- sd over seeds) joined to its search score; the star marks the chosen architecture at the
    score it was chosen on."""
    with sns.axes_style("whitegrid"), sns.plotting_context("notebook"):  # styles for this figure only
        fig = Figure(figsize=(6.4, 4.4))  # no pyplot: nothing global, no GUI backend
        _draw(fig.subplots(), rows, front, pick, title, ylabel, final, final_pick)
        fig.tight_layout()
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
    with atomic_path(out_png.with_suffix(".pdf")) as tmp:
        fig.savefig(tmp, format="pdf")


def _draw(
    ax,
    rows: list[dict],
    front: list[dict],
    pick: dict,
    title: str,
    ylabel: str,
    final: list[dict] | None,
    final_pick: dict | None,
) -> None:
    df = pd.DataFrame(rows)
    df["area_mm2"] = df["area_um2"] / 1e6
    sns.scatterplot(
        data=df,
        x="area_mm2",
        y="val_accuracy",
        hue="state",
        style="state",
        hue_order=["COMPLETE", "PRUNED"],
        style_order=["COMPLETE", "PRUNED"],
        s=55,
        ax=ax,
        alpha=0.8,
    )
    if front:
        fx = [r["area_um2"] / 1e6 for r in front]
        fy = [r["val_accuracy"] for r in front]
        ax.step(fx, fy, where="post", color="0.3", lw=1.2, label="Pareto front")
    for i, r in enumerate(final or []):
        x = r["area_um2"] / 1e6
        ax.plot([x, x], [r["search_val_accuracy"], r["val_accuracy"]], color="0.55", lw=0.9, ls=":", zorder=2)
        ax.errorbar(
            [x],
            [r["val_accuracy"]],
            yerr=[r["final_val_std"]],
            fmt="D",
            ms=7,
            color="darkorange",
            mec="black",
            mew=0.6,
            capsize=3,
            zorder=4,
            label=f"finalists: full recipe, mean of {r['final_seeds']} seed(s)" if i == 0 else None,
        )
    star = final_pick or pick
    ax.scatter(
        [star["area_um2"] / 1e6],
        [star["val_accuracy"]],
        marker="*",
        s=320,
        color="crimson",
        edgecolor="black",
        zorder=5,
        label=f"chosen (trial {pick['trial']})",
    )
    ax.set_xlabel("crossbar area (mm$^2$, cost model)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize=8, frameon=True)
