"""Rule ``map_crossbar``: trained model -> device levels and conductances on tiles (crossbar.npz) and the
count of every component (mapping.json), and an MLflow run nested under the training's run."""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from .. import files, tracking
from ..core import cost, noise
from ..core.cost_units import load_constants
from ..core.networks import Net
from ..core.schemes import map_network
from ..core.simulator import Simulator
from ..data.arrays import network_inputs
from ..settings import MapSettings, Pricing
from ..settings import params as params_of
from ..training.model_io import load_model

log = logging.getLogger(__name__)


#: The most ADC or weight bits the baseline's fits try (more when the fit starts above it).
MAX_ADC_BITS = MAX_WEIGHT_BITS = 12
#: The fewest ADC and weight bits the fits try (the schema's minima).
MIN_ADC_BITS = MIN_WEIGHT_BITS = 2
#: The most and fewest DAC bits the baseline's DAC fit tries (more or fewer when it starts outside them). Each DAC
#: bit doubles a row driver's energy and area; below 2 bits a multi-bit input is a sign.
MAX_DAC_BITS = 10
MIN_DAC_BITS = 2


def fewest_bits(start: int, lo: int, hi: int, accuracy: Callable[[int], float], target: float) -> tuple[int, bool]:
    """The fewest bits whose ``accuracy`` reaches ``target``, searched from ``start`` both ways: down one bit at a
    time while within (the last width within), or up until within (to ``hi``). None within: the most accurate width
    tried (ties: the fewer bits). Returns (bits, reached)."""
    acc = {start: accuracy(start)}
    if acc[start] >= target:
        w = start
        while w > lo and accuracy(w - 1) >= target:
            w -= 1
        return w, True
    for w in range(start + 1, hi + 1):
        acc[w] = accuracy(w)
        if acc[w] >= target:
            return w, True
    return max(acc, key=lambda w: (acc[w], -w)), False


def price(mapping: dict, pricing: Pricing) -> dict[str, float]:
    """A candidate mapping as estimate_cost prices it (operations analytic, cell reads at the mean conductance):
    energy per inference (pJ) and area (um^2). The one place the baseline's choice meets the cost model."""
    doc = cost.estimate(
        copy.deepcopy(mapping),
        load_constants(pricing.constants),
        family=pricing.family,
        tech_nm=pricing.tech_nm,
        cell=pricing.cell,
        adc_time_share=pricing.adc_time_share,
    )
    return {"energy_pj_per_inference": doc["total"]["energy_pj_per_inference"], "area_um2": doc["total"]["area_um2"]}


def fit_baseline(
    net: Net, bits: int, settings: MapSettings, calib_x: torch.Tensor, data_npz: str | Path, device: str
) -> tuple[dict, dict]:
    """The cheapest baseline that keeps its float network's VALIDATION accuracy within ``baseline_fit_tolerance_pct``.
    For each of ``baseline_encodings``: with ``dac_fit``, first the fewest DAC bits from ``dac_bits``
    (:func:`fewest_bits`) at ``weight_bits`` with the ADC OFF (the column sums exact: the DAC's own loss, the same for
    every encoding, so tried once); with
    ``adc_fit``, the fewest ADC bits from ``adc_bits`` at those DAC bits and ``weight_bits``; with ``weight_fit``, the
    fewest weight bits from ``weight_bits`` at those ADC bits, then the ADC bits fitted again at them. Each try is one
    mapping and one ideal validation pass. Each encoding's fitted candidate is priced (:func:`price`: its DAC bits
    too); the cheapest by energy per inference (ties: area) among those within the tolerance is deployed, none
    within: the most accurate. mapping.json records every try (``baseline_adc_fit``: dac, weight and ADC bits,
    ``adc`` false for the DAC fit's) and the candidates (``baseline_candidates``)."""
    xv, yv = network_inputs(data_npz, "val", None)
    with torch.no_grad():
        hits = sum(int((net(xv[a : a + 512]).argmax(-1) == yv[a : a + 512]).sum()) for a in range(0, len(yv), 512))
    float_acc = hits / len(yv)
    base = settings.baseline
    target = float_acc - base.fit_tolerance_pct / 100
    tries: list[dict] = []
    seen: dict[tuple, float] = {}

    layouts: dict[tuple, tuple[dict, dict]] = {}

    def mapped(encoding: str, dac_bits: int, weight_bits: int, adc_bits: int) -> tuple[dict, dict]:
        """The mapping at these bits. The levels, the calibrated ADC ranges and slice shifts and every count do not
        depend on the ADC bits (only the step, full range / levels, does, which the simulator derives from the
        chip): one mapping per encoding, DAC and weight bits, its chip's ``adc_bits`` set per try."""
        key = (encoding, dac_bits, weight_bits)
        if key not in layouts:
            b = replace(base, encodings=(encoding,), dac_bits=dac_bits, weight_bits=weight_bits, adc_bits=adc_bits)
            layouts[key] = map_network(net, bits, replace(settings, baseline=b), calib_x=calib_x, device=device)
        arrays, mapping = layouts[key]
        mapping = copy.deepcopy(mapping)
        mapping["chip"]["adc_bits"] = int(adc_bits)
        return arrays, mapping

    def accuracy(encoding: str, dac_bits: int, weight_bits: int, adc_bits: int | None) -> float:
        """``adc_bits`` None: the ADC off (the mapping at the starting ADC bits, its sums read exactly). With the ADC
        off every encoding computes the same exact sums of the same weight codes: one try serves them all (recorded
        with ``encoding`` "all")."""
        adc = adc_bits is not None
        key = (encoding if adc else "all", dac_bits, weight_bits, adc_bits)
        if key not in seen:
            arrays, mapping = mapped(encoding, dac_bits, weight_bits, adc_bits if adc else base.adc_bits)
            seen[key] = noise.ideal_accuracy(Simulator(arrays, mapping, device=device), xv, yv, adc=adc)
            tries.append(
                {
                    "encoding": key[0],
                    "dac_bits": dac_bits,
                    "weight_bits": weight_bits,
                    "adc_bits": adc_bits,
                    "adc": adc,
                    "val_accuracy": seen[key],
                }
            )
            msg = "baseline/b%d %s, %d-bit DAC, %d-bit weights, %s ADC: validation accuracy %.4f (float %.4f)"
            adc_s = f"{adc_bits}-bit" if adc else "no"
            log.info(msg, bits, key[0], dac_bits, weight_bits, adc_s, seen[key], float_acc)
        return seen[key]

    def fit_dac(encoding: str, weight_bits: int, start: int) -> int:
        if not base.dac_fit:
            return start
        lo, hi = min(start, MIN_DAC_BITS), max(start, MAX_DAC_BITS)
        return fewest_bits(start, lo, hi, lambda d: accuracy(encoding, d, weight_bits, None), target)[0]

    def fit_adc(encoding: str, dac_bits: int, weight_bits: int, start: int) -> int:
        if not base.adc_fit:
            return start
        hi = max(start, MAX_ADC_BITS)
        return fewest_bits(start, MIN_ADC_BITS, hi, lambda a: accuracy(encoding, dac_bits, weight_bits, a), target)[0]

    candidates = []
    for encoding in base.encodings:
        d = fit_dac(encoding, base.weight_bits, base.dac_bits)
        a = fit_adc(encoding, d, base.weight_bits, base.adc_bits)
        w = base.weight_bits
        if base.weight_fit:
            hi = max(w, MAX_WEIGHT_BITS)
            w = fewest_bits(w, MIN_WEIGHT_BITS, hi, lambda wb, e=encoding, a=a, d=d: accuracy(e, d, wb, a), target)[0]
            a = fit_adc(encoding, d, w, a)
        acc = accuracy(encoding, d, w, a)
        arrays, mapping = mapped(encoding, d, w, a)
        candidates.append(
            {
                "encoding": encoding,
                "dac_bits": d,
                "weight_bits": w,
                "adc_bits": a,
                "slices": mapping["slices"],
                "pair": mapping["pair"],
                "val_accuracy": acc,
                "within_tolerance": acc >= target,
                **price(mapping, base.pricing),
                "arrays_mapping": (arrays, mapping),
            }
        )
    within = [c for c in candidates if c["within_tolerance"]]
    if within:
        best = min(within, key=lambda c: (c["energy_pj_per_inference"], c["area_um2"]))
        why = (
            f"the cheapest by energy per inference (ties: area) of the {len(within)} encoding(s) within "
            f"{base.fit_tolerance_pct} points of the float network's validation accuracy"
        )
    else:
        best = max(candidates, key=lambda c: c["val_accuracy"])
        why = f"no encoding within {base.fit_tolerance_pct} points of the float network: the most accurate"
    arrays, mapping = best.pop("arrays_mapping")
    for c in candidates:
        c.pop("arrays_mapping", None)
        c["deployed"] = c is best
    mapping["baseline_adc_fit"] = {
        "float_val_accuracy": float_acc,
        "tolerance_pct": base.fit_tolerance_pct,
        "start": {"dac_bits": base.dac_bits, "adc_bits": base.adc_bits, "weight_bits": base.weight_bits},
        "fitted": {"dac_bits": base.dac_fit, "adc_bits": base.adc_fit, "weight_bits": base.weight_fit},
        "tries": tries,
        "encoding": best["encoding"],
        "dac_bits": best["dac_bits"],
        "adc_bits": best["adc_bits"],
        "weight_bits": best["weight_bits"],
        "reached": best["within_tolerance"],
        "val_samples": len(yv),
    }
    mapping["baseline_candidates"] = {"deployed": best["encoding"], "why": why, "candidates": candidates}
    return arrays, mapping


def run(
    *,
    model_path: str | Path,
    model_metrics: str | Path,
    data_npz: str | Path,
    out_npz: str | Path,
    out_json: str | Path,
    dataset: str,
    variant: str,
    bits: int,
    settings: MapSettings,
    seed: int,
    experiment: str | None = None,
    rule: str = "map_crossbar",
    device: str = "auto",
) -> dict:
    """Load model.pt, map it onto ``bits``-bit devices, write crossbar.npz + mapping.json atomically.
    ``settings``: the chip, the bias placement and, for the float baseline alone, its slicing
    (:meth:`MapSettings.for_variant`)."""
    t0 = time.time()
    net, doc = load_model(model_path)
    if net.quant is None:
        if settings.baseline is None:
            raise ValueError(f"{model_path}: a float network needs the baseline's mapping settings (variant baseline)")
        x, _ = network_inputs(data_npz, "train", settings.baseline.calibration_samples)
        b = settings.baseline
        if b.dac_fit or b.adc_fit or b.weight_fit or len(b.encodings) > 1:
            arrays, mapping = fit_baseline(net, bits, settings, x, data_npz, device)
        else:
            arrays, mapping = map_network(net, bits, settings, calib_x=x, device=device)
    else:
        settings.chip.check_trained(doc.get("chip"), str(model_path))
        arrays, mapping = map_network(net, bits, settings, device=device)
    mapping = {"dataset": dataset, "variant": variant, **mapping, "source_model": str(model_path)}
    params = {"map_crossbar": params_of(settings), "bits": bits}
    with tracking.model_stage_run(
        experiment,
        model_metrics=model_metrics,
        rule=rule,
        params=params,
        dataset=dataset,
        variant=variant,
        bits=bits,
        seed=seed,
        output=out_json,
    ) as run_:
        with files.atomic_path(out_npz) as tmp, open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)
        files.write_json(out_json, mapping)
        t = mapping["total"]
        run_.log_metrics(
            {k: t[k] for k in ("devices", "tiles", "used_cells", "adcs", "dacs", "utilisation", "periphery_designs")}
        )
        run_.log_artifact(out_json)
    log.info(
        "%s/%s/b%d: %d tiles, %d devices (%.1f%% used), %d ADCs in %.1f s",
        dataset,
        variant,
        bits,
        t["tiles"],
        t["devices"],
        100 * t["utilisation"],
        t["adcs"],
        time.time() - t0,
    )
    return mapping
