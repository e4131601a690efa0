"""Rule ``map_crossbar``: trained model -> device levels and conductances on tiles (crossbar.npz) and the
count of every component (mapping.json), and an MLflow run nested under the training's run."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from .. import files, tracking
from ..core.schemes import map_network
from ..data.arrays import network_inputs
from ..settings import MapSettings
from ..training.model_io import load_model

log = logging.getLogger(__name__)


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
    cfg: dict,
    quant_cfg: dict,
    seed: int,
    experiment: str | None = None,
    rule: str = "map_crossbar",
    device: str = "auto",
) -> dict:
    """Load model.pt, map it onto ``bits``-bit devices, write crossbar.npz + mapping.json atomically.
    ``cfg``: the validated ``map_crossbar`` section; ``quant_cfg`` the model's ``quant`` section (the
    baseline's converters default to its DAC and ADC bits)."""
    t0 = time.time()
    settings = MapSettings.from_config(cfg, quant_cfg)
    net, _ = load_model(model_path)
    x, _ = network_inputs(data_npz, "train", settings.calibration_samples)
    arrays, mapping = map_network(net, bits, settings, calib_x=x, device=device)
    mapping = {"dataset": dataset, "variant": variant, **mapping, "source_model": str(model_path)}
    params = {"map_crossbar": cfg, "bits": bits}
    with tracking.model_stage_run(
        experiment,
        model_metrics=model_metrics,
        rule=rule,
        params=params,
        dataset=dataset,
        variant=variant,
        bits=bits,
        seed=seed,
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
