"""Rule ``prepare_data``: find (or download) a dataset's source, prepare it into the split, normalised arrays
(<dataset>.npz) and their provenance (<dataset>.json), and log one MLflow run."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from .. import tracking
from ..config import config_hash
from ..data import find_source, prepare

log = logging.getLogger(__name__)


def run(
    *,
    dataset: str,
    data_dir: str | Path,
    download: bool,
    out_npz: str | Path,
    out_json: str | Path,
    seed: int,
    cfg: dict,
    experiment: str | None = None,
    rule: str = "prepare_data",
) -> dict:
    """The whole rule: :func:`nvmxbar.data.prepare` writes ``out_npz`` and ``out_json`` atomically; then one run
    (params = the config slice, tags = dataset/seed/rule/git commit/config hash/data sha256, metrics = split
    sizes and wall time, artifact = the provenance JSON). ``cfg``: the validated ``prepare_data.<dataset>``
    section. Returns the provenance."""
    t0 = time.time()
    source = find_source(dataset, data_dir, download=download)
    log.info("%s: reading %s %s", dataset, source.kind, source.path)
    if dataset == "har":
        kw = {"input_form": cfg["input_form"], "val_subjects": cfg["val_subjects"]}
    else:  # CIFAR-10 has one input form
        kw = {"input_form": "image", "val_fraction": cfg["val_fraction"]}
    kw["limit"] = cfg["limit"]
    prov = prepare(dataset, source, Path(out_npz), Path(out_json), seed=seed, **kw)
    wall = time.time() - t0
    counts = prov["counts"]
    log.info("%s: train/val/test = %d/%d/%d in %.1f s", dataset, counts["train"], counts["val"], counts["test"], wall)
    params = {"dataset": dataset, "seed": seed, **cfg}
    tags = tracking.standard_tags(
        dataset=dataset,
        variant="data",
        bits=None,
        seed=seed,
        rule=rule,
        config_hash=config_hash(params),
        data_sha256=prov["source"]["sha256"],
        source_kind=source.kind,
    )
    with tracking.stage_run(experiment, run_name=f"prepare_data {dataset}", tags=tags, params=params) as run_:
        for split, n in counts.items():
            run_.log_metric(f"n_{split}", n)
        run_.log_metric("wall_time_s", wall)
        run_.log_artifact(out_json)
    return prov
