"""What the report's figures share (matplotlib ``Figure`` objects on the Agg canvas, seaborn styles): colours,
styles, :func:`save_figure` (PNG and PDF, atomically) and the figure kinds (:data:`KINDS`). Each kind is drawn by its
own module ``figure_<kind>`` (its function ``draw(frames, dataset, cfg)``; the kinds: :mod:`.kinds`), which rule
report_figure declares as an input: a change to one kind's module reruns that kind's job alone (and the render).
Colours per variant and line styles / markers per device bits are the same in every figure."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import seaborn as sns
from matplotlib.figure import Figure

from ..files import atomic_path

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
