"""The sensitivity table as people read it: tables/sensitivity.csv and .md (:func:`write_sensitivity`) and
REPORT.md's "Sensitivity of the savings" (:func:`report_section`); the numbers: :mod:`.sensitivity`."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from ..files import write_text
from .formatting import markdown
from .paper import DATASET_NAMES
from .sensitivity import AREA_TARGET, ENERGY_TARGET, LABELS


def _mark(v: float | None, target: float) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    return f"{v:.1f} ✓" if v >= target else f"{v:.1f}"


def display_sensitivity(t: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    """Markdown view: per dataset and assumption value, the area and energy saving of each variant x bits
    (✓ = reaches the paper's 80 % / 45 %; *(run)* = the run's own setting)."""
    if t.empty:
        return ["dataset", "assumption", "value"], []
    deps = t[["variant", "bits"]].drop_duplicates().sort_values(["variant", "bits"]).itertuples(index=False)
    deps = list(deps)
    heads = ["dataset", "assumption", "value"]
    heads += [f"{v} {b}-bit {q} (%)" for v, b in deps for q in ("area", "energy")]
    rows = []
    for (ds, p), g in t.groupby(["dataset", "parameter"], sort=False):
        for label, gv in g.groupby("value_label", sort=False):
            run = " *(run)*" if gv.configured.any() else ""
            cells = [ds, LABELS[p], f"{label}{run}"]
            for v, b in deps:
                r = gv[(gv.variant == v) & (gv.bits == b)]
                a, e = (r.area_saving_pct.iloc[0], r.energy_saving_pct.iloc[0]) if len(r) else (None, None)
                cells += [_mark(a, AREA_TARGET), _mark(e, ENERGY_TARGET)]
            rows.append(cells)
    return heads, rows


def write_sensitivity(t: pd.DataFrame, csv_path: str | Path, md_path: str | Path) -> list[Path]:
    """``csv_path`` (every column, the component breakdowns too) and ``md_path`` (the savings), atomically."""
    intro = (
        "Savings (%) over the baseline at the same device bits with ONE cost-model assumption moved from the "
        f"run's point; ✓ = reaches the paper's {AREA_TARGET:g} % area / {ENERGY_TARGET:g} % energy. ADC bits, "
        "device preset, ON/OFF ratio: cost only, the accuracy is not re-simulated. n/a: not repriced (the note in "
        "sensitivity.csv says why). Component breakdowns: sensitivity.csv.\n\n"
    )
    write_text(csv_path, t.to_csv(index=False, float_format="%.6g"))
    write_text(md_path, intro + markdown(*display_sensitivity(t)))
    return [Path(csv_path), Path(md_path)]


def reaching(t: pd.DataFrame, column: str) -> tuple[list[str], list[str]]:
    """The assumption values whose row reaches / misses the paper's figure in the boolean ``column``, one item per
    assumption (``ADC bits 7, 8``)."""
    out: tuple[list[str], list[str]] = ([], [])
    for p, g in t.groupby("parameter", sort=False):
        for hit, lst in ((True, out[0]), (False, out[1])):
            labels = g[g[column] == hit].value_label.tolist()
            if labels:
                lst.append(f"{LABELS[p]} {', '.join(labels)}")
    return out


def _which(reach: list[str], miss: list[str]) -> str:
    if not miss:
        return "under every value tried"
    if not reach:
        return "under none of the values tried"
    if len(reach) <= len(miss):
        return "only with " + "; ".join(reach)
    return "under every value tried except " + "; ".join(miss)


def report_section(
    t: pd.DataFrame, variant: str, tables_dir: Path, figures: dict[str, Path], rel: Callable[[Any], str]
) -> list[str]:
    """REPORT.md's "Sensitivity of the savings": per dataset and bits, which assumptions keep ``variant``'s
    savings at the paper's 80 % area and 45 % energy, and which do not; links to the table and the figures."""
    L = [
        "## Sensitivity of the savings",
        "",
        "The cost model's savings over the baseline (same device bits) recomputed with ONE assumption moved from "
        "the run's point at a time, both designs priced alike: the device preset (its G_max, ON/OFF ratio and read "
        "voltage), the ON/OFF ratio, R_on, read voltage, ADC bits, columns per ADC, converter family, pair "
        "subtraction, the activation buffer's input reuse (read per MVM, or once). Cost only: the accuracy is not "
        "re-simulated (not at other ADC bits, not with another "
        "device's noise). The measured input activity is kept and repriced exactly under another device "
        "(cost.json `read_cells_per_mvm`).",
        "",
    ]
    sub = t[t.variant == variant] if len(t) else t
    if sub.empty:
        return L + [f"No `{variant}` deployment with a baseline at the same bits in this report.", ""]
    for (ds, b), g in sub.groupby(["dataset", "bits"], sort=False):
        run = g[g.configured]
        here = (
            f"at the run's point {run.area_saving_pct.iloc[0]:.1f} % area, {run.energy_saving_pct.iloc[0]:.1f} % "
            "energy; "
            if len(run)
            else ""
        )
        priced = g[g.area_saving_pct.notna() & g.energy_saving_pct.notna()]
        area, energy = reaching(priced, "reaches_area_80"), reaching(priced, "reaches_energy_45")
        unpriced = [
            f"{LABELS[p]} {', '.join(u.value_label)}"
            for p, u in g[~g.index.isin(priced.index)].groupby("parameter", sort=False)
        ]
        L.append(
            f"- {DATASET_NAMES.get(ds, ds)}, {b}-bit devices, `{variant}`: {here}area ≥ {AREA_TARGET:g} % "
            f"{_which(*area)}; energy ≥ {ENERGY_TARGET:g} % {_which(*energy)}"
            + (f"; not repriced (see the note in sensitivity.csv): {'; '.join(unpriced)}" if unpriced else "")
            + "."
        )
    flat = [LABELS[p] for p, g in sub.groupby("parameter", sort=False) if _unmoved(g)]
    if flat:
        L.append(f"- No effect on either saving: {', '.join(flat)}.")
    L += ["", f"Table: `{rel(tables_dir / 'sensitivity.csv')}` (also `.md`).", ""]
    for name, path in figures.items():
        if name.startswith("sensitivity_"):
            L += [f"![{name}]({rel(path)})", ""]
    return L


def _unmoved(g: pd.DataFrame) -> bool:
    """True when no value of this assumption changes any saving (e.g. a setting the counts ignore)."""
    cols = ["area_saving_pct", "energy_saving_pct"]
    spread = g.groupby(["dataset", "bits", "variant"])[cols].agg(lambda x: x.max() - x.min())
    return bool((spread.abs() < 1e-9).all().all())
