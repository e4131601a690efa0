"""Rule ``report_figure``: one figure kind for every dataset (PNG and PDF), drawn by
``nvmxbar.report.figure_<kind>`` (the job's declared code input) from the collected frames, with the tables'
frames (accuracy_seeds) or the sensitivity table (sensitivity) where the kind needs them."""

from __future__ import annotations

import importlib
import logging
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from ..report.collect import load_frames
from ..report.figures import save_figure

log = logging.getLogger(__name__)


def run(
    kind: str,
    collected: str | Path,
    png: Iterable[str | Path],
    *,
    datasets: Iterable[str],
    cfg: dict,
    tables: str | Path | None = None,
    sensitivity: str | Path | None = None,
) -> list[Path]:
    """Draw ``kind`` for each of ``datasets`` into the declared ``png`` paths (in the same order; the PDF beside
    each). ``cfg``: the report section (dpi, reference_prog_sigma)."""
    module = importlib.import_module(f"nvmxbar.report.figure_{kind}")
    frames = load_frames(collected)
    if tables:
        frames.update(load_frames(tables))
    if sensitivity:
        frames["sensitivity"] = pd.read_csv(sensitivity)
    written = []
    for ds, path in zip(list(datasets), list(png), strict=True):
        path = Path(path)
        fig = module.draw(frames, ds, cfg)
        written += save_figure(fig, path.stem, path.parent, int(cfg["dpi"]))
    log.info("%s: %d figure files", kind, len(written))
    return written
