"""Rule ``evaluate_noise``: Monte Carlo accuracy of a mapped crossbar under device non-idealities: noise.csv
(one row per setting of the sweep), noise_summary.json (the ideal crossbar's accuracy), an MLflow run."""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from .. import files, tracking
from ..core import noise
from ..core.simulator import Simulator
from ..data.arrays import network_inputs
from ..settings import NOISE_CSV_COLUMNS, MonteCarlo
from ..settings import params as params_of

log = logging.getLogger(__name__)

COLUMNS = list(NOISE_CSV_COLUMNS)


def load_crossbar(crossbar_npz: str | Path, mapping_json: str | Path, device: str = "auto") -> Simulator:
    """The simulator of a mapped network (crossbar.npz + mapping.json) on ``device`` (auto: cuda when present)."""
    with np.load(crossbar_npz, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    return Simulator(arrays, files.read_json(mapping_json), device=device)


def run(
    *,
    crossbar_npz: str | Path,
    mapping_json: str | Path,
    data_npz: str | Path,
    model_metrics: str | Path,
    out_csv: str | Path,
    dataset: str,
    variant: str,
    bits: int,
    mc: MonteCarlo,
    seed: int,
    experiment: str | None = None,
    threads: int = 1,
    rule: str = "evaluate_noise",
    device: str = "auto",
) -> list[dict]:
    """Ideal and noisy crossbar accuracy on the test split. ``mc``: the ``evaluate_noise`` settings."""
    t0 = time.time()
    torch.set_num_threads(max(1, threads))
    sim = load_crossbar(crossbar_npz, mapping_json, device)
    x, y = network_inputs(data_npz, "test", mc.samples)
    params = {"evaluate_noise": params_of(mc), "bits": bits, "device": str(sim.device)}
    with tracking.model_stage_run(
        experiment,
        model_metrics=model_metrics,
        rule=rule,
        params=params,
        dataset=dataset,
        variant=variant,
        bits=bits,
        seed=seed,
        output=out_csv,
    ) as run_:
        steps = noise.loss_breakdown(sim, x, y)  # weights alone, + DAC, + ADC (= the ideal crossbar)
        ideal = steps["adc"]
        with tqdm(desc="evaluate_noise", file=sys.stderr, mininterval=5) as bar:

            def show(done: int, total: int) -> None:
                bar.total = total
                bar.update(done - bar.n)

            rows = noise.evaluate(sim, x, y, mc, seed, progress=show)
        files.write_csv(out_csv, rows, COLUMNS)
        summary = {
            "ideal_crossbar_accuracy": ideal,
            "loss_breakdown": steps,
            "samples": len(y),
            "wall_time_s": round(time.time() - t0, 2),
        }
        for k, v in steps.items():
            run_.log_metric(f"ideal_accuracy_{k}", v)
        files.write_json(Path(out_csv).with_name("noise_summary.json"), summary)
        run_.log_metric("ideal_crossbar_accuracy", ideal)
        for k, r in enumerate(rows):
            run_.log_metric("accuracy_mean", r["accuracy_mean"], step=k)
        run_.log_artifact(out_csv)
    log.info(
        "%s/%s/b%d: ideal crossbar %.4f, %d settings in %.0f s",
        dataset,
        variant,
        bits,
        ideal,
        len(rows),
        summary["wall_time_s"],
    )
    return rows
