"""Rule ``report_tables``: the accuracy tables over the seeds, the differences between deployments, the cost,
attribution and architecture-search tables (CSV, Markdown, LaTeX) from the collected frames, and the same tables
as one frames file for the figures and the render."""

from __future__ import annotations

import logging
from pathlib import Path

from ..report import nonideal
from ..report.accuracy import (
    accuracy_table,
    comparisons_table,
    display_accuracy,
    display_comparisons,
    display_per_seed,
    per_seed_table,
)
from ..report.collect import load_frames, save_frames
from ..report.formatting import write_table
from ..report.tables import attribution_table, cost_table, display_attribution, display_cost
from ..report.tables_nas import display_nas, nas_table

log = logging.getLogger(__name__)
#: Every table: name -> its Markdown/LaTeX view; nas only with the searched unipolar variant.
DISPLAY = {
    "accuracy": display_accuracy,
    "accuracy_per_seed": display_per_seed,
    "comparisons": display_comparisons,
    "cost": display_cost,
    "attribution": display_attribution,
    "nas": display_nas,
    "nonideal": nonideal.display_table,
    "nonideal_comparisons": nonideal.display_comparisons,
}


def tables(data: dict, reference_prog_sigma: float) -> dict:
    """Every table of the report from the collected frames (``nas`` only when the search was collected)."""
    per_seed = per_seed_table(data, reference_prog_sigma)
    acc = accuracy_table(data, reference_prog_sigma, per_seed)
    cost = cost_table(data)
    conditions = nonideal.per_seed(data["noise"])
    out = {
        "accuracy": acc,
        "accuracy_per_seed": per_seed,
        "comparisons": comparisons_table(per_seed),
        "cost": cost,
        "attribution": attribution_table(cost, acc, per_seed),
        "nonideal": nonideal.nonideal_table(conditions),
        "nonideal_comparisons": nonideal.comparisons(conditions),
    }
    if "nas_arch" in data:
        out["nas"] = nas_table(data)
    return out


def run(collected: str | Path, reference_prog_sigma: float, csv: dict[str, str | Path], frames: str | Path) -> list:
    """Write every table next to its declared CSV path ``csv[name]`` (.csv, .md, .tex) and all of them to
    ``frames``. A table without a declared path, or a declared path without a table, is an error."""
    built = tables(load_frames(collected), float(reference_prog_sigma))
    if set(built) != set(csv):
        raise RuntimeError(f"rule report_tables declares tables {sorted(csv)} but builds {sorted(built)}")
    written = []
    for name, table in built.items():
        path = Path(csv[name])
        written += write_table(table, name, path.parent, DISPLAY[name])
    save_frames(built, frames)
    log.info("%d tables (%d files) from %s", len(built), len(written), collected)
    return written
