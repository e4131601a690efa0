"""Rule ``estimate_cost``: price mapping.json's component and operation counts into area, energy and latency per
component, per layer and per inference (cost.json), and an MLflow run nested under the training's run. With
``cell_activity: measured`` the array's read energy follows what training inputs actually read on the crossbar."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from .. import files, tracking
from ..core.cost import analytic_operations, estimate
from ..core.cost_units import const, load_constants
from ..data.arrays import network_inputs
from ..settings import CostSettings
from ..settings import params as params_of
from .evaluate_noise import load_crossbar

log = logging.getLogger(__name__)


def estimate_file(
    mapping_path: str | Path,
    out_path: str | Path,
    constants_path: str | Path | None = None,
    activity: list[dict] | None = None,
    operations: list[dict] | None = None,
    **kwargs: Any,
) -> dict:
    """mapping.json -> cost.json (atomic). kwargs go to :func:`nvmxbar.core.cost.estimate`; adc_time_share
    defaults to the constants file's options.adc_time_share. ``activity``: per layer, the measured read
    conductance per MVM (:meth:`nvmxbar.core.simulator.Simulator.read_activity`); None = the upper bound. Its
    ``read_cells_per_mvm`` (the G_min coefficient of that conductance) is written beside ``read_g_us_per_mvm`` into
    each layer of cost.json, so that the report can reprice the activity under another device.
    ``operations``: per layer, the operations per inference the simulator counted
    (:meth:`~nvmxbar.core.simulator.Simulator.count_operations`), which are then priced; they must equal
    mapping.json's analytic counts (a ValueError names the first that differs: the priced circuit would not be the
    simulated one)."""
    mapping = files.read_json(mapping_path)
    cells = []
    for layer, act in zip(mapping["layers"], activity or [], strict=False):
        act = dict(act)
        cells.append(act.pop("read_cells_per_mvm", None))
        layer["read_g_us_per_mvm"] = act
    for layer, ops in zip(mapping["layers"], operations or [], strict=False):
        check_operations(layer, ops)
        layer["operations"] = ops
    constants = load_constants(constants_path)
    kwargs.setdefault("adc_time_share", bool(const(constants, "options.adc_time_share")))
    doc = estimate(mapping, constants, **kwargs)
    for layer, c in zip(doc["layers"], cells, strict=False):
        if c is not None:  # beside read_g_us_per_mvm: the cells it counts, G_min's coefficient
            layer["read_cells_per_mvm"] = c
    with files.atomic_path(out_path) as tmp:
        tmp.write_text(json.dumps(doc, indent=1))
    return doc


def check_operations(layer: dict, counted: dict) -> None:
    """The simulator's counts of one layer equal mapping.json's analytic ones (relative 1e-9), or ValueError."""
    analytic = analytic_operations(layer)
    for k, v in analytic.items():
        if abs(counted[k] - v) > 1e-9 * max(1.0, abs(v)):
            raise ValueError(
                f"{layer['name']}: the simulator counted {counted[k]:g} {k} per inference, mapping.json's circuit "
                f"has {v:g}: the costed circuit is not the simulated one"
            )


def measured_activity(
    mapping_json: str | Path, crossbar_npz: str | Path, data_npz: str | Path, samples: int, device: str = "auto"
) -> list[dict]:
    """Per layer, what ``samples`` training inputs read on the mapped crossbar (Simulator.read_activity)."""
    x, _ = network_inputs(data_npz, "train", samples)
    return load_crossbar(crossbar_npz, mapping_json, device).read_activity(x)


def counted_operations(
    mapping_json: str | Path, crossbar_npz: str | Path, data_npz: str | Path, samples: int = 8, device: str = "auto"
) -> list[dict]:
    """Per layer, the operations per inference the simulator performs on ``samples`` training inputs."""
    x, _ = network_inputs(data_npz, "train", samples)
    return load_crossbar(crossbar_npz, mapping_json, device).count_operations(x)


def run(
    *,
    mapping_json: str | Path,
    model_metrics: str | Path,
    out_json: str | Path,
    dataset: str,
    variant: str,
    bits: int,
    cs: CostSettings,
    seed: int,
    experiment: str | None = None,
    rule: str = "estimate_cost",
    crossbar_npz: str | Path | None = None,
    data_npz: str | Path | None = None,
    device: str = "auto",
) -> dict:
    """``cs``: the ``estimate_cost`` settings; ``device``: where the activity is simulated."""
    pr = cs.pricing
    if crossbar_npz is None or data_npz is None:
        raise ValueError(
            "estimate_cost needs the crossbar.npz and the prepared data (the simulator counts the operations)"
        )
    activity = None
    if cs.cell_activity == "measured":
        activity = measured_activity(mapping_json, crossbar_npz, data_npz, cs.activity_samples, device)
    operations = counted_operations(mapping_json, crossbar_npz, data_npz, device=device)
    params = {"estimate_cost": params_of(cs), "bits": bits}
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
        doc = estimate_file(
            mapping_json,
            out_json,
            pr.constants,
            activity=activity,
            operations=operations,
            family=pr.family,
            tech_nm=pr.tech_nm,
            cell=pr.cell,
            adc_time_share=pr.adc_time_share,
        )
        t = doc["total"]
        logged = ("area_um2", "energy_pj_per_inference", "cell_energy_upper_bound_pj", "latency_ns_per_inference")
        run_.log_metrics({k: t[k] for k in (*logged, "array_power_uw")})
        run_.log_artifact(out_json)
    log.info(
        "%s/%s/b%d: %.4g um^2, %.4g pJ and %.4g ns per inference (%s)",
        dataset,
        variant,
        bits,
        t["area_um2"],
        t["energy_pj_per_inference"],
        t["latency_ns_per_inference"],
        pr.family,
    )
    return doc
