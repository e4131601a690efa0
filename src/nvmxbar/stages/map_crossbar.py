"""Rule ``map_crossbar``: trained model -> device levels and conductances on tiles (crossbar.npz) and the
count of every component (mapping.json), and an MLflow run nested under the training's run."""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from .. import files, tracking
from ..core import noise
from ..core.networks import Net
from ..core.schemes import map_network
from ..core.simulator import Simulator
from ..data.arrays import network_inputs
from ..settings import MapSettings
from ..settings import params as params_of
from ..training.model_io import load_model

log = logging.getLogger(__name__)


#: The most ADC bits baseline_adc_fit tries.
MAX_ADC_BITS = 12


def fit_baseline_adc(
    net: Net, bits: int, settings: MapSettings, calib_x: torch.Tensor, data_npz: str | Path, device: str
) -> tuple[dict, dict]:
    """The baseline with the ADC it needs: mapped with ``baseline_adc_bits``, then one bit more at a time, until its
    ideal crossbar's validation accuracy is within ``baseline_fit_tolerance_pct`` of its float network's (or
    MAX_ADC_BITS). Chosen on the validation split only; ``mapping["baseline_adc_fit"]`` records every try."""
    xv, yv = network_inputs(data_npz, "val", None)
    with torch.no_grad():
        hits = sum(int((net(xv[a : a + 512]).argmax(-1) == yv[a : a + 512]).sum()) for a in range(0, len(yv), 512))
    float_acc = hits / len(yv)
    base = settings.baseline
    tries, target = [], float_acc - base.fit_tolerance_pct / 100
    for adc_bits in range(base.adc_bits, max(base.adc_bits, MAX_ADC_BITS) + 1):
        s = replace(settings, baseline=replace(base, adc_bits=adc_bits))
        arrays, mapping = map_network(net, bits, s, calib_x=calib_x, device=device)
        acc = noise.ideal_accuracy(Simulator(arrays, mapping, device=device), xv, yv)
        tries.append({"adc_bits": adc_bits, "val_accuracy": acc})
        log.info(
            "baseline/b%d with a %d-bit ADC: validation accuracy %.4f (float %.4f)", bits, adc_bits, acc, float_acc
        )
        if acc >= target:
            break
    mapping["baseline_adc_fit"] = {
        "float_val_accuracy": float_acc,
        "tolerance_pct": base.fit_tolerance_pct,
        "tries": tries,
        "adc_bits": tries[-1]["adc_bits"],
        "reached": tries[-1]["val_accuracy"] >= target,
        "val_samples": len(yv),
    }
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
        if settings.baseline.adc_fit:
            arrays, mapping = fit_baseline_adc(net, bits, settings, x, data_npz, device)
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
