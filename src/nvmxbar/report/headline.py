"""REPORT.md's column-current flags (:func:`current_flags`) and its headline (:func:`headline_section`): the
combined technique's savings against the deployed baseline, which is the cheapest candidate within the tolerance
(or, none within, the most accurate: then said plainly), with the iso-architecture steps beside them so that a
reader sees which saving comes from what."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from ..core.cost_units import const, load_constants
from ..devices import WIRE_PRESETS, load_wire_presets
from .paper import COMBINED_VARIANTS, DATASET_NAMES
from .seeds import first_seed
from .tables import OVER_LIMIT, improvement

#: The iso-architecture steps: (from, to, what changes, the network kept).
ISO_STEPS = (
    ("perlayer", "uniform", "uniform scaling alone (one shared scale)", "the same network, signed weights in pairs"),
    ("signed", "unipolar", "one device per weight (unipolar)", "the same searched network, uniform scaling"),
)
#: The attribution stack's other steps: (from, to, what changes).
OTHER_STEPS = (
    ("baseline", "perlayer", "training at device precision (one slice, no bit-slicing)"),
    ("uniform", "signed", "the searched, smaller network"),
)


def limit_source(constants: dict | None = None) -> str:
    """Where the column-current limit comes from: its formula, the column wire of the default interconnect preset
    (nvmxbar/resources/wires.yaml; map_crossbar reads the chip's) and the drop fraction's source (cost_constants.yaml
    ``column_current``)."""
    c = constants or load_constants()
    wire = load_wire_presets()[WIRE_PRESETS[0]]
    return (
        "derived, not published: I_limit = drop_fraction × V_read / (r_col × (R + 1) / 2), the current at which the "
        "first-order drop along a column wire of R cells reaches drop_fraction of the read voltage "
        f"(chip.wires.col_ohm_per_cell r_col = {wire['col_ohm_per_cell']:g} Ω per cell, preset {WIRE_PRESETS[0]}; "
        f"drop_fraction = {const(c, 'column_current.drop_fraction'):g}: "
        f"{c['column_current']['drop_fraction']['source']})"
    )


def current_flags(cost: pd.DataFrame, constants: dict | None = None) -> list[str]:
    """The paragraph under the cost table: the limit, where it comes from, and one line per design whose largest
    column current (over the seeds) passes it."""
    if "max_column_current_ua" not in cost or cost.max_column_current_ua.isna().all():
        return ["Column currents: not in these mapping.json files (written by map_crossbar since issue 29).", ""]
    limits = sorted({round(float(x), 3) for x in cost.column_current_limit_ua.dropna()})
    fraction = const(constants or load_constants(), "column_current.drop_fraction")
    out = [
        "Column currents (mapping.json, every driven row at the DAC full scale; the largest over the columns and "
        f"the seeds): the limit is {' / '.join(f'{x:,.1f}' for x in limits)} µA, {limit_source(constants)}. "
        f"The limit is proportional to drop_fraction (an assumption): at {fraction / 2.5:g} it is 0.4 ×, at "
        f"{2 * fraction:g} 2 × these values; each flagged design below states the fraction it would need. "
        "Array power: the cells' read energy over the latency at the measured input activity (cost.json).",
        "",
    ]
    over = cost[cost.column_current_over_limit.astype(bool)]
    if over.empty:
        return out + ["No design's column current passes the limit.", ""]
    out.append(
        f"{OVER_LIMIT} **Over the column-current limit** (the drop along its columns would pass the tolerated "
        "fraction of the read voltage: the cost model's ideal-wire read does not hold for these designs, nor does "
        "the simulated accuracy, which ignores wire resistance):"
    )
    for r in over.itertuples():
        ratio = r.max_column_current_ua / r.column_current_limit_ua
        need = ratio * fraction
        out.append(
            f"- {DATASET_NAMES.get(r.dataset, r.dataset)}, `{r.variant}`, {r.bits}-bit devices: "
            f"{r.max_column_current_ua:,.1f} µA against {r.column_current_limit_ua:,.1f} µA ({ratio:.1f} ×); "
            f"within the limit only at drop_fraction ≥ {need:.2f}"
            + (" (more than the read voltage itself: not by any tolerance)" if need >= 1 else "")
            + "."
        )
    return out + [""]


def _candidates(fits: pd.DataFrame, ds: str, bits: int) -> str:
    """The lowest seed's candidates of the baseline's fit at (ds, bits), one clause each."""
    f = first_seed(fits[(fits.dataset == ds) & (fits.bits == bits)]) if len(fits) else fits
    if f.empty:
        return ""
    parts = []
    for c in f.itertuples():
        inside = "within" if c.within_tolerance else "outside"
        parts.append(
            f"{c.encoding} (DAC {c.dac_bits} / ADC {c.adc_bits} / weights {c.weight_bits} bits, {c.slices} slice(s)"
            f"{', differential pairs' if c.pair == 2 else ', one device per slice'}): validation "
            f"{100 * c.val_accuracy:.2f} % ({inside}), {c.energy_pj / 1e3:,.4g} nJ and {c.area_um2:,.0f} µm² as "
            "map_crossbar priced it" + (" — **deployed**" if c.deployed else "")
        )
    r = f.iloc[0]
    seed = f" (seed {int(r.seed)})" if "seed" in f else ""
    return (
        f"Candidates{seed}, float validation accuracy {100 * r.float_val_accuracy:.2f} %, tolerance "
        f"{_points(r.tolerance_pct)}: " + "; ".join(parts) + f". Choice: {r.why}."
    )


def _not_reached(reached: str, fits: pd.DataFrame, ds: str, bits: int) -> str:
    """The plain statement that the fit reached no candidate within the tolerance (at every seed, or at some)."""
    where = reached.removeprefix("no").strip(" ()")
    out = "**no candidate reached the tolerance**" + (f" at {where}" if where else "") + ": the deployed baseline is "
    out += "the most accurate candidate"
    f = fits[(fits.dataset == ds) & (fits.bits == bits)] if len(fits) else fits
    dep = f[f.deployed.astype(bool) & ~f.within_tolerance.astype(bool)] if len(f) else f
    if len(dep):
        d = dep.iloc[0]
        out += (
            f" (seed {int(d.seed)}: validation {100 * d.val_accuracy:.2f} % against the float network's "
            f"{100 * d.float_val_accuracy:.2f} %, {100 * (d.float_val_accuracy - d.val_accuracy):.2f} points below; "
            f"tolerance {_points(d.tolerance_pct)})"
        )
    return out + (
        ", and the savings below are against a baseline that is less accurate than its float network by more than "
        "the tolerance."
    )


def _saving(cost: pd.DataFrame, ds: str, bits: int, a: str, b: str) -> tuple[float, float] | None:
    """(area %, energy %) saved by ``b`` against ``a`` (means over the seeds); None when either did not run."""
    here = cost[(cost.dataset == ds) & (cost.bits == bits)].set_index("variant")
    if a not in here.index or b not in here.index:
        return None
    x, y = here.loc[a], here.loc[b]
    return (
        improvement(y.area_um2, x.area_um2),
        improvement(y.energy_pj_per_inference, x.energy_pj_per_inference),
    )


def _pct(x: float, what: str, bold: bool = False) -> str:
    """'12.3 % area' for a saving, '4.5 % MORE area' for a loss (a negative saving)."""
    v = f"{abs(x):.1f} %"
    return (f"**{v}**" if bold else v) + (f" {what}" if x >= 0 else f" MORE {what}")


def _pair(s: tuple[float, float], bold: bool = False) -> str:
    return f"{_pct(s[0], 'area', bold)}, {_pct(s[1], 'energy', bold)}"


def _points(x: float) -> str:
    return f"{x:g} point" + ("" if x == 1 else "s")


def headline_section(cost: pd.DataFrame, fits: pd.DataFrame, tables_dir: Path, rel: Callable[[Any], str]) -> list[str]:
    """REPORT.md's headline: per dataset and device bits, the deployed baseline (encoding, bits, whether its fit
    reached the tolerance, its candidates), the combined technique's savings against it and the iso-architecture
    steps beside them."""
    combined = COMBINED_VARIANTS[0]
    L = [
        "## Headline: the savings against the cheapest baseline",
        "",
        "The baseline is the float network at its best, not a strawman: map_crossbar fits each encoding's ADC and "
        "weight bits on the validation split and deploys the cheapest candidate (energy per inference, ties: area, as "
        "map_crossbar prices it: analytic operations, cell reads at the mean conductance) "
        "whose validation accuracy stays within the tolerance of the float network's "
        "(`map_crossbar.baseline_fit_tolerance_pct`). The headline savings are against that deployed baseline; the "
        "iso-architecture steps beside them change one thing on the same network, so they show which saving comes "
        "from what (every step: *Where the savings come from*).",
        "",
    ]
    base = cost[cost.variant == "baseline"]
    if base.empty:
        return L + ["No baseline in this report: no headline.", ""]
    for r in base.itertuples():
        ds, b = r.dataset, int(r.bits)
        head = f"- **{DATASET_NAMES.get(ds, ds)}, {b}-bit devices.** Deployed baseline: {r.baseline_design}"
        if r.baseline_reached == "yes":
            head += " — within the tolerance, the cheapest candidate that is."
        elif r.baseline_reached == "not fitted":
            head += " — the configured bits (no fit: `map_crossbar.baseline_adc_fit`/`weight_fit` off, one encoding)."
        else:
            head += " — " + _not_reached(r.baseline_reached, fits, ds, b)
        L.append(head)
        cands = _candidates(fits, ds, b)
        if cands:
            L.append(f"  {cands}")
        s = _saving(cost, ds, b, "baseline", combined)
        if s is None:
            L.append(f"  No `{combined}` deployment at these bits: no headline saving.")
            continue
        line = f"  **Headline**: `{combined}` (uniform scaling + unipolar) saves {_pair(s, bold=True)} against it."
        steps = []
        for a, v, what, kept in ISO_STEPS:
            st = _saving(cost, ds, b, a, v)
            if st is not None:
                steps.append(f"`{a}` → `{v}`, {what} on {kept}: {_pair(st)}")
        if steps:
            line += " Iso-architecture steps: " + "; ".join(steps) + "."
        rest = [
            f"`{a}` → `{v}`, {what}: {_pair(st)}"
            for a, v, what in OTHER_STEPS
            if (st := _saving(cost, ds, b, a, v)) is not None
        ]
        if rest:
            line += " The other steps (not iso-architecture): " + "; ".join(rest) + "."
        L.append(line)
    L += ["", f"Tables: `{rel(tables_dir / 'cost.csv')}`, `{rel(tables_dir / 'attribution.csv')}`.", ""]
    return L
