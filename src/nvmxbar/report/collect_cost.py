"""The cost and the baseline's choice among the report's inputs: :func:`read_cost` (cost.json: totals, components,
layers) and :func:`read_baseline_fit` (mapping.json's ``baseline_adc_fit`` and ``baseline_candidates``: every
encoding the baseline's fit priced, which one was deployed and why)."""

from __future__ import annotations

import math
from pathlib import Path

from .readers import ReportInputError, read_json

#: cost.json names a block differently in its area and energy breakdowns ('adcs' / 'adc'); one label, one colour
COMPONENT_LABELS = {
    "adc": "ADCs",
    "dac": "DACs",
    "cell": "cells",
    "subtractor": "subtractors",
    "subtraction": "subtractors",
    "shift_add": "shift-and-add",
    "sample_hold": "sample-and-hold",
    "rescale": "rescale",
    "reference": "references",
}


def component_label(name: str) -> str:
    key = str(name).strip().lower().replace("-", "_").replace(" ", "_")
    for k in (key, key[:-1] if key.endswith("s") else key):
        if k in COMPONENT_LABELS:
            return COMPONENT_LABELS[k]
    return str(name).replace("_", " ")


def read_cost(path: Path, key: dict, cost: list, comps: list, cost_layers: list) -> None:
    """cost.json: one row of ``cost`` (totals, latency and the array's measured power; NaN where an older cost.json
    lacks them), its components (long) and one row per layer."""
    doc = read_json(path, ["total", "layers"])
    try:
        tot = doc["total"]
        ts = doc.get("time_shared") or {}
        cost.append(
            {
                **key,
                "family": doc.get("family", ""),
                "area_um2": float(tot["area_um2"]),
                "energy_pj": float(tot["energy_pj_per_inference"]),
                "latency_ns": float(tot.get("latency_ns_per_inference", math.nan)),
                "array_power_uw": float(tot.get("array_power_uw", math.nan)),
                "time_shared_area_um2": float(ts["area_um2"]) if "area_um2" in ts else math.nan,
                "time_shared_adcs": float(ts["adcs"]) if "adcs" in ts else math.nan,
                "time_share_applied": bool(
                    ((doc.get("assumptions") or {}).get("adc_time_share") or {}).get("applied", False)
                ),
            }
        )
        for quantity, field in (("area_um2", "area_by_component"), ("energy_pj", "energy_by_component")):
            for comp, val in tot[field].items():
                comps.append(
                    {
                        **key,
                        "quantity": quantity,
                        "component": component_label(comp),
                        "component_key": str(comp),
                        "value": float(val),
                    }
                )
        for i, lay in enumerate(doc["layers"]):
            cost_layers.append(
                {
                    **key,
                    "index": i,
                    "name": lay.get("name", f"layers.{i}"),
                    "area_um2": float(lay["area_um2"]),
                    "energy_pj": float(lay["energy_pj_per_inference"]),
                    "latency_ns": float(lay.get("latency_ns", math.nan)),
                }
            )
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise ReportInputError(f"report input {path}: missing or malformed entry {err!r}") from None


def read_baseline_fit(mp: dict, path: Path, key: dict, rows: list) -> None:
    """One row of ``baseline_fit`` per candidate encoding of a baseline mapping.json (none when its bits were not
    fitted): its fitted weight, ADC and DAC bits, slices, devices per slice (``pair``), validation accuracy, whether
    it is within the tolerance of the float network's, its price as map_crossbar priced it, whether it was
    deployed; with the fit's float validation accuracy, tolerance (points) and the reason for the choice."""
    fit, cands = mp.get("baseline_adc_fit"), mp.get("baseline_candidates")
    if not fit or not cands:
        return
    try:
        dac = mp["chip"]["dac_bits"]
        for c in cands["candidates"]:
            rows.append(
                {
                    **key,
                    "encoding": c["encoding"],
                    "weight_bits": int(c["weight_bits"]),
                    "adc_bits": int(c["adc_bits"]),
                    "dac_bits": int(c.get("dac_bits", dac)),
                    "slices": int(c["slices"]),
                    "pair": int(c["pair"]),
                    "val_accuracy": float(c["val_accuracy"]),
                    "within_tolerance": bool(c["within_tolerance"]),
                    "energy_pj": float(c["energy_pj_per_inference"]),
                    "area_um2": float(c["area_um2"]),
                    "deployed": bool(c["deployed"]),
                    "float_val_accuracy": float(fit["float_val_accuracy"]),
                    "tolerance_pct": float(fit["tolerance_pct"]),
                    "reached": bool(fit["reached"]),
                    "tries": len(fit.get("tries") or []),
                    "why": str(cands.get("why", "")),
                }
            )
    except (KeyError, TypeError, ValueError) as err:
        raise ReportInputError(f"report input {path}: malformed baseline fit {err!r}") from None
