"""REPORT.md's "The cost claims under each device preset" (:func:`preset_claims`): which of the paper's cost figures
(80 % area, 45 % energy, both techniques combined) survive under which device, from the sensitivity table's
``device`` rows (:mod:`.sensitivity`: both designs repriced with each preset's G_max, ON/OFF ratio and read voltage).
Cost only: the accuracy is not re-simulated per preset. A figure holds when the mean saving over the seeds is within
``report.cost_tolerance_pct`` points of the paper's, both ways (as the verdicts of :mod:`.verdicts`; a saving far
beyond the paper's rests on another cost model or baseline); there is no confidence interval here."""

from __future__ import annotations

import math

import pandas as pd

from ..devices import load_presets
from .formatting import markdown, num
from .paper import COMBINED_VARIANTS, DATASET_NAMES, PAPER_FIGURES


def figure_verdict(saving: float, paper: float, tol: float) -> str:
    """'holds (2.1 below)', 'does not hold (12.3 below)' or 'n/a' of a saving (%) against the paper's figure."""
    if saving is None or math.isnan(saving):
        return "n/a"
    gap = saving - paper
    where = f"{abs(gap):.1f} {'above' if gap >= 0 else 'below'}"
    return f"holds ({where})" if abs(gap) <= tol else f"does not hold ({where})"


def _device_text(name: str) -> str:
    p = load_presets().get(name)
    if p is None:
        return name
    return f"`{name}` ({p['g_max_us']:g} µS, ON/OFF {p['on_off_ratio']:g}, {p['v_read_v']:g} V)"


def _direction(verdicts: list[tuple[str, str]]) -> str:
    """Why a figure holds under no preset: every saving beyond it, every one short of it, or both."""
    gaps = [v for _, v in verdicts if v.startswith("does not hold")]
    if gaps and all(v.endswith("above)") for v in gaps):
        return " (our savings exceed the paper's by more than the tolerance under every preset)"
    if gaps and all(v.endswith("below)") for v in gaps):
        return " (our savings fall short of the paper's under every preset)"
    return ""


def preset_claims(sensitivity: pd.DataFrame | None, cfg: dict) -> list[str]:
    """Per dataset and device bits of the combined variant: one row per preset with its area and energy saving and
    the verdict on each of the paper's figures, then one sentence per figure naming the presets it holds under."""
    variant = COMBINED_VARIANTS[0]
    tol = float(cfg["cost_tolerance_pct"])
    area, energy = (float(PAPER_FIGURES[k]["value"]) for k in ("area_combined", "energy_combined"))
    L = [
        "### The cost claims under each device preset",
        "",
        f"The combined (`{variant}`) savings over the baseline repriced with each device preset's G_max, ON/OFF "
        "ratio and read voltage (both designs, the measured input activity kept; sensitivity table, rows "
        "`device`). The device moves the energy only (the cell's area is set by the node and the cell type). "
        "**Cost only: the accuracy is not re-simulated per preset** (a preset's own noise would move it). "
        f"*holds*: the mean over the seeds within ± {tol:g} points of the paper's figure "
        "(`report.cost_tolerance_pct`), both ways; no confidence interval.",
        "",
    ]
    t = sensitivity if sensitivity is not None else pd.DataFrame()
    if t.empty or "parameter" not in t:
        return L + ["No sensitivity table: not assessed.", ""]
    rows = t[(t.variant == variant) & (t.parameter == "device")]
    if rows.empty:
        return L + [f"No `{variant}` deployment with a baseline at the same bits: not assessed.", ""]
    heads = ["dataset", "bits", "device preset", "area saving (%)", "energy saving (%)"]
    heads += [f"paper area up to {area:g} %", f"paper energy up to {energy:g} %"]
    body, holds = [], {"area": {}, "energy": {}}
    for r in rows.itertuples():
        a, e = float(r.area_saving_pct), float(r.energy_saving_pct)
        va, ve = figure_verdict(a, area, tol), figure_verdict(e, energy, tol)
        run = " *(run)*" if bool(r.configured) else ""
        f1 = num(".1f", "n/a")
        body.append([r.dataset, str(int(r.bits)), f"{r.value_label}{run}", f1(a), f1(e), va, ve])
        for what, v in (("area", va), ("energy", ve)):
            holds[what].setdefault((r.dataset, int(r.bits)), []).append((r.value_label, v))
    L.append(markdown(heads, body))
    for what, fig in (("area", area), ("energy", energy)):
        for (ds, b), verdicts in holds[what].items():
            yes = [_device_text(p) for p, v in verdicts if v.startswith("holds")]
            unknown = [p for p, v in verdicts if v == "n/a"]
            where = f"{DATASET_NAMES.get(ds, ds)}, {b}-bit devices"
            said = (
                f"holds under {', '.join(yes)}" + (" only" if len(yes) < len(verdicts) else " (every preset)")
                if yes
                else "holds under no preset" + _direction(verdicts)
            )
            L.append(
                f"- **{what.capitalize()}, up to {fig:g} %** ({where}): {said}"
                + (f"; not repriced: {', '.join(unknown)} (cost.json without read_cells_per_mvm)" if unknown else "")
                + "."
            )
    return L + [""]
