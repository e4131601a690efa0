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
from .formatting import markdown
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
        f"`device`). **Cost only: the accuracy is not re-simulated per preset** (a preset's own noise would move "
        f"it). *holds*: the mean over the seeds within ± {tol:g} points of the paper's figure "
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
        body.append([r.dataset, str(int(r.bits)), f"{r.value_label}{run}", f"{a:.1f}", f"{e:.1f}", va, ve])
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
                else "holds under no preset"
            )
            L.append(
                f"- **{what.capitalize()}, up to {fig:g} %** ({where}): {said}"
                + (f"; not repriced: {', '.join(unknown)} (cost.json without read_cells_per_mvm)" if unknown else "")
                + "."
            )
    return L + [""]
