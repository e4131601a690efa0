"""How far the cost model's savings rest on its assumptions: the numbers of tables/sensitivity.csv (written, with
the .md and REPORT.md's section, by :mod:`.sensitivity_text`) and of the figure sensitivity_<dataset>
(:mod:`.figure_sensitivity`).

For every dataset, device bits and variant, the area and energy saving over the baseline at the same bits
(:func:`nvmxbar.core.cost.improvement`) is recomputed with ONE assumption moved from the run's point at a time
(:data:`GRID`), both designs priced alike by :func:`nvmxbar.core.cost.estimate`: the device (each preset's G_max,
ON/OFF ratio and read voltage), the ON/OFF ratio, the cells' on-resistance (every conductance scales with 1/R_on,
the on/off ratio kept), the chip's read voltage, the ADC resolution, the ADC sharing and the pair subtraction (both
recounted by :func:`nvmxbar.core.layout.count`), the converter family and the activation buffer's input reuse.
Cost only: the accuracy is not
re-simulated (not at other ADC bits, not with another device's noise). Pure functions over mapping.json and
cost.json documents; the measured cell activity that priced cost.json is kept, repriced exactly under another device
(:mod:`.device_repricing`). Every seed's deployment is repriced against the baseline of the same seed and the table
reports the mean over the seeds (the counts do not depend on the seed, the measured read energy barely does).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd

from .. import settings
from ..core.cost import AREA_KEYS, ENERGY_KEYS, estimate, improvement
from ..core.cost_units import FAMILIES, const, load_constants
from ..core.layout import count
from ..devices import PRESETS
from .collect import CONVERTERS as CONVERTERS_KEY
from .collect import converters, read_json, seed_list
from .device_repricing import NotRepriceable, preset_device, preset_of, set_device
from .paper import PAPER_FIGURES
from .seeds import mean_over_seeds

#: The values tried per assumption; the run's own value is added (or replaces one within 1 %).
GRID: dict[str, tuple] = {
    "device": PRESETS,
    "on_off_ratio": (10, 17, 40, 100, 150),
    "r_on_ohm": (6e3, 20e3, 100e3, 1e6),
    "v_read_v": (0.1, 0.2, 0.3, 0.5),
    "adc_bits": (4, 5, 6, 7, 8),
    "adc_mux": (1, 4, 8, 16),
    "family": FAMILIES,
    "subtraction": ("analog", "digital"),
    "buffer_reads": ("per MVM", "once"),
}
LABELS = {
    "device": "device preset",
    "on_off_ratio": "ON/OFF ratio",
    "r_on_ohm": "on-resistance R_on",
    "v_read_v": "read voltage",
    "adc_bits": "ADC bits",
    "adc_mux": "columns per ADC",
    "family": "converter family",
    "subtraction": "pair subtraction",
    "buffer_reads": "activation-buffer reads",
}
NOTES = {
    "device": "the preset's G_max, ON/OFF ratio and read voltage (nvmxbar/resources/devices.yaml) in both designs, "
    "the measured read G repriced with them (read_cells_per_mvm); cost only: the accuracy is not re-simulated with "
    "the preset's noise",
    "on_off_ratio": "G_min = G_max / ratio in both designs, G_max kept, the measured read G repriced "
    "(read_cells_per_mvm); cost only: the accuracy is not re-simulated",
    "r_on_ohm": "every conductance (device range, measured read G) scaled by R_on(run) / R_on, on/off ratio kept",
    "v_read_v": "the chip device's read voltage (the cells' read time is the mux cycle, set by the converters)",
    "adc_bits": "cost only: the accuracy is not re-simulated at these ADC bits",
    "adc_mux": "ADCs, shift-and-add units and subtractors recounted (layout.count)",
    "subtraction": "analog: a pair subtracted before one conversion (a one-device column: its tile's reference "
    "column of G_min cells); digital: both columns converted, then subtracted (a one-device column: its G_min "
    "offset subtracted digitally); recounted by layout.count",
    "buffer_reads": "per MVM: every MVM reads its input vector from the buffer (NeuroSim's convention); once: each "
    "input value read once, a line buffer holding the window (cost_constants.yaml digital.buffer_input_reuse)",
}
AREA_TARGET = float(PAPER_FIGURES["area_combined"]["value"])
ENERGY_TARGET = float(PAPER_FIGURES["energy_combined"]["value"])


@dataclass(frozen=True)
class Repricing:
    """Rule estimate_cost's pricing (:class:`nvmxbar.settings.Pricing`) with its constants loaded: what the
    sensitivity rows pass to :func:`~nvmxbar.core.cost.estimate`, one assumption moved at a time."""

    constants: dict
    family: str = "neurosim"
    tech_nm: float = 22
    cell: str = "1t1r"
    adc_time_share: bool = False

    @classmethod
    def from_settings(cls, p: settings.Pricing) -> Repricing:
        """From rule estimate_cost's pricing settings (:class:`nvmxbar.settings.Pricing`), constants loaded."""
        return cls(load_constants(p.constants), p.family, p.tech_nm, p.cell, p.adc_time_share)

    @classmethod
    def from_cost(cls, cost_doc: dict, constants: dict | None = None) -> Repricing:
        """From what a cost.json states it was priced with (no config at hand)."""
        a = cost_doc.get("assumptions") or {}
        share = (a.get("adc_time_share") or {}).get("requested", False)
        fam = cost_doc.get("family") or a.get("family") or "neurosim"
        return cls(constants or load_constants(), fam, a.get("tech_nm", 22), a.get("cell", "1t1r"), bool(share))

    def cost(self, mapping: dict) -> dict:
        return estimate(
            mapping,
            self.constants,
            family=self.family,
            tech_nm=self.tech_nm,
            cell=self.cell,
            adc_time_share=self.adc_time_share,
        )


# --------------------------------------------------------------------------------------- the inputs
Activity = list[tuple[float, float | None]]  # per layer: (read G per MVM, its G_min coefficient or None)


def read_conductance(mapping: dict, cost_doc: dict) -> Activity | None:
    """Per layer, the measured read conductance per MVM (µS) that priced cost.json's cell energy and the number of
    cells it reads (``read_cells_per_mvm``, None in a cost.json older than it), at the chip's input mode (cost.json
    keeps both per layer); None when cost.json used the upper bound."""
    layers = cost_doc.get("layers") or []
    if not layers or not all("read_g_us_per_mvm" in lay for lay in layers):
        return None
    mode = converters(mapping)["input_mode"]
    out = []
    for lay in layers:
        read = lay["read_g_us_per_mvm"]
        cells = lay.get("read_cells_per_mvm") or read.get("read_cells_per_mvm") or {}
        out.append((float(read[mode]), float(cells[mode]) if mode in cells else None))
    return out


def with_activity(mapping: dict, activity: Activity | list[float] | None) -> dict:
    """A copy of mapping.json with each layer's measured read conductance and its G_min coefficient (as rule
    estimate_cost adds them); a bare float per layer is a conductance without its coefficient."""
    m = copy.deepcopy(mapping)
    if activity is not None:
        mode = converters(m)["input_mode"]
        for layer, act in zip(m["layers"], activity, strict=True):
            g, cells = act if isinstance(act, tuple) else (act, None)
            layer["read_g_us_per_mvm"] = {mode: g}
            if cells is not None:
                layer["read_cells_per_mvm"] = {mode: cells}
    return m


Key = tuple[str, str, int, int]  # (dataset, variant, bits, seed)


def load_deployments(
    files: dict[Key, dict[str, Path]],
    datasets: Iterable[str],
    variants: Iterable[str],
    bits: Iterable[int],
    seeds: Iterable[int],
) -> tuple[dict[Key, dict], dict[Key, dict]]:
    """Every deployment's mapping.json (with the measured activity of its cost.json) and cost.json, by
    (dataset, variant, bits, seed), read from the declared paths ``files`` (key -> {"mapping.json": path,
    "cost.json": path})."""
    maps, costs = {}, {}
    for ds in datasets:
        for v in variants:
            for b in bits:
                for s in seed_list(seeds):
                    key = (ds, v, int(b), s)
                    paths = files.get(key) or {}
                    if "mapping.json" not in paths or "cost.json" not in paths:
                        raise ValueError(f"mapping.json/cost.json of {key} are not among the declared inputs")
                    mp = read_json(paths["mapping.json"], [CONVERTERS_KEY, "layers"])
                    cd = read_json(paths["cost.json"], ["total"])
                    maps[key] = with_activity(mp, read_conductance(mp, cd))
                    costs[key] = cd
    return maps, costs


# --------------------------------------------------------------------------------------- one assumption
def r_on_ohm(mapping: dict, constants: dict) -> float:
    """The on-resistance the mapping's device stands for: 1 / G_max (the constants' R_on without one)."""
    return 1e6 / float(converters(mapping)["device"]["g_max_us"])


def run_point(variant: dict, baseline: dict, pricing: Repricing) -> dict[str, Any]:
    """The run's own value of every assumption (None where the two designs differ: no row is the run's)."""
    cv, cb = converters(variant), converters(baseline)
    same = lambda k, default=None: cv.get(k, default) if cv.get(k, default) == cb.get(k, default) else None  # noqa: E731
    same_device = lambda k: cv["device"][k] if cv["device"][k] == cb["device"][k] else None  # noqa: E731
    devices = {preset_of(cv["device"]), preset_of(cb["device"])}
    return {
        "device": devices.pop() if len(devices) == 1 else None,
        "on_off_ratio": same_device("on_off_ratio"),
        "r_on_ohm": r_on_ohm(variant, pricing.constants),
        "v_read_v": same_device("v_read_v"),
        "adc_bits": same("adc_bits"),
        "adc_mux": same("adc_mux"),
        "family": pricing.family,
        "subtraction": same("subtraction", "analog"),
        "buffer_reads": "once" if const(pricing.constants, "digital.buffer_input_reuse") else "per MVM",
    }


def values(parameter: str, point: Any) -> list:
    """The values tried for one assumption: :data:`GRID`'s, with the run's own in place of one within 1 %."""
    vals = list(GRID[parameter])
    if point is None or isinstance(point, str):
        return vals if point is None or point in vals else [*vals, point]
    vals = [v for v in vals if not math.isclose(v, point, rel_tol=0.01)] + [point]
    return sorted(vals)


def vary(mapping: dict, pricing: Repricing, parameter: str, value: Any) -> tuple[dict, Repricing]:
    """A copy of the mapping and the pricing with one assumption set to ``value`` (:class:`NotRepriceable` when the
    device moves and cost.json's measured activity cannot follow it)."""
    m = copy.deepcopy(mapping)
    dev = converters(m)["device"]
    if parameter == "device":
        if preset_of(dev) != value:  # the run's own preset stays exactly as mapped
            set_device(m, preset_device(str(value)))
    elif parameter == "on_off_ratio":
        set_device(m, {**dev, "on_off_ratio": float(value)})
    elif parameter == "r_on_ohm":  # every conductance times R_on(run) / R_on: G_max, G_min and dG alike
        set_device(m, {**dev, "g_max_us": 1e6 / float(value)})
    elif parameter == "v_read_v":
        dev["v_read_v"] = float(value)
    elif parameter == "adc_bits":
        converters(m)["adc_bits"] = int(value)
    elif parameter in ("adc_mux", "subtraction"):
        converters(m)[parameter] = int(value) if parameter == "adc_mux" else value
        count(m)
    elif parameter == "family":
        pricing = replace(pricing, family=value)
    elif parameter == "buffer_reads":
        constants = copy.deepcopy(pricing.constants)
        constants["digital"]["buffer_input_reuse"]["value"] = value == "once"
        pricing = replace(pricing, constants=constants)
    else:
        raise ValueError(f"unknown assumption '{parameter}'; known: {list(GRID)}")
    return m, pricing


# --------------------------------------------------------------------------------------- the table
def value_label(parameter: str, value: Any) -> str:
    """A value as a person reads it beside its assumption's label: 6 kΩ, 0.2 V, 10 ns, 6 (bits), 8 (columns)."""
    if isinstance(value, str):
        return value
    if parameter == "r_on_ohm":
        return f"{value / 1e6:g} MΩ" if value >= 1e6 else f"{value / 1e3:.3g} kΩ"
    return f"{value:g}{ {'v_read_v': ' V'}.get(parameter, '') }"


def _unpriced(reason: str) -> dict[str, Any]:
    """A row whose designs could not be repriced: every number NaN, the reason as its note."""
    nan = math.nan
    out: dict[str, Any] = {"area_saving_pct": nan, "energy_saving_pct": nan, **marks(None, None)}
    for k in ("area_um2", "energy_pj", "adcs"):
        out[f"variant_{k}"] = out[f"baseline_{k}"] = nan
    for quantity, keys, unit in (("area", AREA_KEYS, "um2"), ("energy", ENERGY_KEYS, "pj")):
        for k in keys:
            out[f"{quantity}_{k}_variant_{unit}"] = out[f"{quantity}_{k}_baseline_{unit}"] = nan
    return {**out, "note": reason}


def _breakdown(cost_v: dict, cost_b: dict) -> dict[str, float]:
    tv, tb = cost_v["total"], cost_b["total"]
    out: dict[str, float] = {}
    for quantity, keys, field, unit in (
        ("area", AREA_KEYS, "area_by_component", "um2"),
        ("energy", ENERGY_KEYS, "energy_by_component", "pj"),
    ):
        for k in keys:
            out[f"{quantity}_{k}_variant_{unit}"] = float(tv[field][k])
            out[f"{quantity}_{k}_baseline_{unit}"] = float(tb[field][k])
    return out


def marks(area_pct: float | None, energy_pct: float | None) -> dict[str, bool]:
    """Whether a saving reaches the paper's "up to" figure (80 % area, 45 % energy)."""
    return {
        "reaches_area_80": area_pct is not None and area_pct >= AREA_TARGET,
        "reaches_energy_45": energy_pct is not None and energy_pct >= ENERGY_TARGET,
    }


def saving_row(mv: dict, mb: dict, pricing: Repricing, parameter: str, value: Any) -> dict[str, Any]:
    """The savings of one variant over its baseline with one assumption at ``value``, and both breakdowns; NaN with
    the reason as the row's ``note`` when a design cannot be repriced (:class:`NotRepriceable`)."""
    try:
        (vm, vp), (bm, bp) = vary(mv, pricing, parameter, value), vary(mb, pricing, parameter, value)
    except NotRepriceable as err:
        return _unpriced(str(err))
    cv, cb = vp.cost(vm), bp.cost(bm)
    imp = improvement(cv, cb)
    return {
        "area_saving_pct": imp["area_pct"],
        "energy_saving_pct": imp["energy_pct"],
        **marks(imp["area_pct"], imp["energy_pct"]),
        "variant_area_um2": cv["total"]["area_um2"],
        "baseline_area_um2": cb["total"]["area_um2"],
        "variant_energy_pj": cv["total"]["energy_pj_per_inference"],
        "baseline_energy_pj": cb["total"]["energy_pj_per_inference"],
        "variant_adcs": cv["total"]["adcs"],
        "baseline_adcs": cb["total"]["adcs"],
        **_breakdown(cv, cb),
    }


def deployment_rows(dataset: str, bits: int, variant: str, mv: dict, mb: dict, pricing: Repricing) -> list[dict]:
    """Every row of one variant at one device resolution: each assumption over its values."""
    point = run_point(mv, mb, pricing)
    rows = []
    for parameter in GRID:
        for value in values(parameter, point[parameter]):
            rows.append(
                {
                    "dataset": dataset,
                    "bits": bits,
                    "variant": variant,
                    "parameter": parameter,
                    "value": value,
                    "value_label": value_label(parameter, value),
                    "configured": value == point[parameter],
                    "note": NOTES.get(parameter, ""),
                    **saving_row(mv, mb, pricing, parameter, value),
                }
            )
    return rows


ROW_KEYS = ["dataset", "bits", "variant", "parameter", "value_label"]


def sensitivity_table(mappings: dict[Key, dict], pricing: Repricing) -> pd.DataFrame:
    """One row per (dataset, bits, variant, assumption, value) for every variant whose baseline at the same
    bits and seed is among ``mappings`` (keyed by (dataset, variant, bits, seed)): each seed's variant priced
    against that seed's baseline, then every number averaged over the seeds (``n_seeds``; the marks from the
    mean savings). A key of three items (no seed) is one seed."""
    rows = []
    for key, mv in mappings.items():
        ds, v, b, s = (*key, 0) if len(key) == 3 else key
        mb = mappings.get((ds, "baseline", b, s) if len(key) == 4 else (ds, "baseline", b))
        if v != "baseline" and mb is not None:
            rows += [{**r, "seed": s} for r in deployment_rows(ds, b, v, mv, mb, pricing)]
    if not rows:
        return pd.DataFrame(columns=["dataset", "bits", "variant", "parameter", "value", "value_label", "configured"])
    t = pd.DataFrame(rows)
    flags = list(marks(0.0, 0.0))
    out = mean_over_seeds(t.drop(columns=flags), ROW_KEYS)
    out["configured"] = t.groupby(ROW_KEYS, sort=False).configured.any().to_numpy()  # the same order
    reached = [marks(a, e) for a, e in zip(out.area_saving_pct, out.energy_saving_pct)]
    for k in flags:
        out[k] = [r[k] for r in reached]
    lead = [*ROW_KEYS[:4], "value", "value_label", "configured", "area_saving_pct", "energy_saving_pct", *flags]
    return out[lead + [c for c in out.columns if c not in lead]]


def build_sensitivity(
    files: dict[Key, dict[str, Path]],
    datasets: Iterable[str],
    variants: Iterable[str],
    bits: Iterable[int],
    seeds: Iterable[int],
    pricing_settings: settings.Pricing | None,
) -> pd.DataFrame:
    """The table from the declared mapping.json and cost.json of every deployment and seed (``files``), priced as
    rule estimate_cost did (``pricing_settings``: its pricing; None: as the first cost.json states), averaged
    over the seeds."""
    variants = list(variants)
    if "baseline" not in variants:
        return sensitivity_table({}, Repricing({}))
    pricing = Repricing.from_settings(pricing_settings) if pricing_settings is not None else None
    constants = pricing.constants if pricing else load_constants()
    maps, costs = load_deployments(files, datasets, variants, bits, seeds)
    return sensitivity_table(maps, pricing or Repricing.from_cost(next(iter(costs.values())), constants))
